"""The bundled corpus keeps the promises of its dataset card."""

from collections import Counter

import pytest

from tests.conftest import DATA
from training.dataset import load_dataset
from training.messages import FLAGS

CORPUS = DATA / "corpus"


@pytest.fixture(scope="module")
def corpus(taxonomy, gazetteer):
    return load_dataset([CORPUS], taxonomy, gazetteer)


def test_corpus_validates_without_errors_duplicates_or_leaks(corpus):
    assert corpus.errors == []
    assert corpus.duplicates == []
    assert corpus.leaks == []


def test_train_split_meets_the_minimum_counts(corpus, taxonomy):
    train = corpus.split("train")
    topics = Counter(m.topic for m in train)
    categories = Counter(m.category for m in train)
    for topic in taxonomy.topic_codes:
        assert topics[topic] >= 300, topic
    for category in taxonomy.category_codes:
        assert categories[category] >= 40, category
    for flag in FLAGS:
        assert sum(getattr(m, flag) for m in train) >= 300, flag


def test_test_split_covers_every_category_and_flag(corpus, taxonomy):
    test = corpus.split("test")
    categories = Counter(m.category for m in test)
    for category in taxonomy.category_codes:
        assert categories[category] >= 10, category
    for flag in FLAGS:
        positives = sum(getattr(m, flag) for m in test)
        assert 50 <= positives < len(test) / 2, flag


def test_every_row_is_fully_labelled(corpus):
    for m in corpus.messages:
        assert m.category is not None and m.source is not None, m.id
        assert all(getattr(m, f) in (0, 1) for f in FLAGS), m.id
        assert m.id.startswith(f"{m.topic}-{m.split}-"), m.id


def test_municipality_labels_match_the_places_the_text_names(corpus, gazetteer):
    """Where the gazetteer finds exactly one municipality, the label agrees with it."""
    checked = disagreements = 0
    for m in corpus.messages:
        found = {p.municipality for p in gazetteer.find(m.text)}
        if len(found) == 1:
            checked += 1
            disagreements += m.municipality not in found
    assert checked > 500
    assert disagreements / checked < 0.03


def test_registers_are_varied(corpus):
    sources = Counter(m.source for m in corpus.messages)
    assert {"pos", "vk", "telegram", "ok"} <= set(sources)
    words = sorted(len(m.text.split()) for m in corpus.messages)
    assert words[len(words) // 10] <= 8  # many very short complaints
    assert words[-len(words) // 20] >= 100  # and long posts
