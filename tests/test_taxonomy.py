import pytest

from model.taxonomy import MANDATORY_TOPICS, load_taxonomy
from model.yaml_source import DataFileError
from tests.conftest import DATA


def test_bundled_taxonomy_has_the_mandatory_blocks_with_enough_categories(taxonomy):
    assert taxonomy.topic_codes == list(MANDATORY_TOPICS)
    names = {t.code: t.name for t in taxonomy.topics}
    assert names["housing"] == "ЖКХ" and names["waste"] == "ТКО" and names["other"] == "прочее"
    for topic in taxonomy.topics:
        assert len(topic.categories) >= 5, topic.code
        assert sum(c.catch_all for c in topic.categories) == 1
        assert all(c.code.startswith(topic.code + ".") for c in topic.categories)


def test_labels_resolve_from_codes_and_russian_names(taxonomy):
    assert taxonomy.resolve_topic("ЖКХ") == "housing"
    assert taxonomy.resolve_topic("  Социальная Защита ") == "social"
    assert taxonomy.resolve_topic("дорогии") is None
    assert taxonomy.resolve_category("отопление") == ["housing.heating"]
    assert taxonomy.resolve_category("heating", "housing") == ["housing.heating"]
    # «прочее по направлению» exists in every topic: only the topic decides
    assert len(taxonomy.resolve_category("прочее по направлению")) == 8
    assert taxonomy.resolve_category("прочее по направлению", "roads") == ["roads.other"]


def test_deadlines_default_to_the_federal_30_days(taxonomy):
    assert taxonomy.deadline_days_for("roads.potholes") == 30
    assert taxonomy.incident_deadline_hours > 0


def test_hash_follows_codes_not_descriptions(tmp_path):
    source = (DATA / "taxonomy.yaml").read_text(encoding="utf-8")
    base = load_taxonomy(DATA / "taxonomy.yaml").hash
    reworded = tmp_path / "reworded.yaml"
    reworded.write_text(source.replace("Ямы, разбитый асфальт", "Выбоины"), encoding="utf-8")
    assert load_taxonomy(reworded).hash == base
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(source.replace("code: roads.potholes", "code: roads.holes"), encoding="utf-8")
    assert load_taxonomy(renamed).hash != base


def test_a_region_extends_the_taxonomy_without_code_changes(write):
    path = write(
        "region/taxonomy.yaml",
        f"""
extends: {DATA / "taxonomy.yaml"}
topics:
  - code: tourism
    name: туризм
    categories:
      - {{code: tourism.hotels, name: гостиницы}}
      - {{code: tourism.routes, name: туристические маршруты}}
      - {{code: tourism.other, name: прочее по направлению, catch_all: true}}
  - code: roads
    categories:
      - {{code: roads.ferries, name: паромные переправы}}
""",
    )
    extended = load_taxonomy(path)
    assert "tourism" in extended.topic_codes
    assert extended.has_category("roads.ferries")
    assert extended.category("roads.ferries").topic == "roads"
    assert extended.resolve_topic("Туризм") == "tourism"
    assert extended.hash != load_taxonomy(DATA / "taxonomy.yaml").hash


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "topics:\n  - code: health\n    name: здравоохранение\n    categories: []\n",
            "mandatory topic 'education' is missing",
        ),
        ("topics:\n  - code: Health\n    name: x\n", "topic code must be lower-case"),
        ("topics:\n  - code: health\n    name: a: b\n", "line 3, column 12: invalid YAML"),
        (
            "topics:\n  - code: health\n    name: здравоохранение\n    colour: red\n",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_broken_taxonomies_say_what_and_where(write, body, expected):
    with pytest.raises(DataFileError) as error:
        load_taxonomy(write("t.yaml", body))
    assert expected in str(error.value)
    assert "t.yaml" in str(error.value)


def test_extension_errors_name_the_category(write):
    path = write(
        "ext.yaml",
        f"""
extends: {DATA / "taxonomy.yaml"}
topics:
  - code: roads
    categories:
      - {{code: transport.ferries, name: паромы}}
      - {{code: roads.potholes, name: ямы ещё раз}}
""",
    )
    with pytest.raises(DataFileError) as error:
        load_taxonomy(path)
    message = str(error.value)
    assert "'transport.ferries'" in message and "must be 'roads.<slug>'" in message
    assert "'roads.potholes'" in message and "duplicate category code" in message


def test_circular_extends_is_refused(write):
    a = write("a.yaml", "extends: b.yaml\ntopics: []\n")
    write("b.yaml", "extends: a.yaml\ntopics: []\n")
    with pytest.raises(DataFileError, match="circular"):
        load_taxonomy(a)


def test_the_bundled_example_region_extension_loads():
    extended = load_taxonomy(DATA / "regions" / "example-tourism.yaml")
    assert extended.topic_codes[-1] == "tourism"
    assert extended.category("transport.ferries").topic == "transport"
    assert len(extended.category_codes) == len(load_taxonomy().category_codes) + 4
