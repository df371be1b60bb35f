import numpy as np
import pytest

from model.heads import HeadConfig, decide, read_heads
from training.messages import LabelledMessage
from training.metrics import best_threshold, expected_calibration_error, macro_f1
from training.pipeline import merge_corrections
from training.train import split_validation


@pytest.fixture
def config():
    return HeadConfig(
        topics=["a", "b"],
        categories=["a.x", "a.y", "b.z", "b.w"],
        category_topic={"a.x": "a", "a.y": "a", "b.z": "b", "b.w": "b"},
        flag_thresholds={"incident": 0.7, "conflict": 0.5, "misinformation": 0.5},
    )


def test_category_always_belongs_to_the_chosen_topic(config):
    rng = np.random.default_rng(0)
    topic = rng.normal(size=(50, 2))
    category = rng.normal(size=(50, 4)) * 5
    outputs = read_heads(config, topic, category, rng.normal(size=(50, 3)))
    results = decide(config, outputs, {})
    for r in results:
        assert r["category"]["code"].split(".")[0] == r["topic"]["code"]
        # joint probability: never above the topic's own
        assert r["category"]["score"] <= r["topic"]["score"] + 1e-6
        assert abs(sum(r["topic_scores"].values()) - 1) < 1e-3


def test_flags_use_their_thresholds_and_raise_review(config):
    logits = np.log(np.array([[0.65 / 0.35, 0.6 / 0.4, 0.1 / 0.9]]))
    outputs = read_heads(config, np.array([[5.0, 0.0]]), np.array([[3.0, 0.0, 0.0, 0.0]]), logits)
    [result] = decide(config, outputs, {"a": "А"})
    assert result["incident"] == {"flag": False, "score": 0.65}  # below its 0.7 threshold
    assert result["conflict"]["flag"] is True
    assert result["misinformation"]["flag"] is False
    assert result["topic"]["name"] == "А"
    assert result["needs_review"] and result["review_reasons"] == ["conflict"]


def test_uncertain_topic_needs_review(config):
    outputs = read_heads(config, np.array([[0.1, 0.0]]), np.zeros((1, 4)), np.full((1, 3), -5.0))
    [result] = decide(config, outputs, {})
    assert "ambiguous_topic" in result["review_reasons"] or "low_topic_confidence" in result["review_reasons"]


def test_temperature_scales_confidence_not_the_decision(config):
    topic = np.array([[2.0, 0.5]])
    sharp = read_heads(config, topic, np.zeros((1, 4)), np.zeros((1, 3)))
    config.temperatures = {"topic": 3.0}
    soft = read_heads(config, topic, np.zeros((1, 4)), np.zeros((1, 3)))
    assert soft.topic_probs.argmax() == sharp.topic_probs.argmax()
    assert soft.topic_probs.max() < sharp.topic_probs.max()


def test_threshold_for_a_target_precision():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    truth = np.array([0, 0, 1, 0, 1, 0, 1, 1, 1])
    assert best_threshold(scores, truth, target_precision=1.0) == pytest.approx(0.7)
    f1_threshold = best_threshold(scores, truth)
    assert f1_threshold == pytest.approx(0.3)  # recall 1, precision 5/7: the best F1
    assert best_threshold(scores, np.zeros(9, dtype=int)) == 0.5


def test_calibration_error_and_macro_f1():
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([1, 1])) == pytest.approx(0.1)
    assert macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx((2 / 3 + 2 / 3) / 2)


def _m(i, text, topic, augmented_from=None):
    return LabelledMessage(id=i, text=text, topic=topic, augmented_from=augmented_from)


def test_validation_split_keeps_copies_with_their_source():
    messages = [_m(f"t{i}", f"текст {i}", "a" if i % 2 else "b") for i in range(40)]
    messages += [_m(f"t{i}~1", f"ТЕКСТ {i}", m.topic, f"t{i}") for i, m in enumerate(messages)]
    train, validation = split_validation(messages, 0.25, seed=3)
    held = {m.id for m in validation}
    assert held and all(m.augmented_from is None for m in validation)
    assert not any(m.augmented_from in held for m in train)
    assert {m.topic for m in validation} == {"a", "b"}


def test_corrections_override_labels_of_the_same_text():
    base = [_m("1", "Нет воды на Садовой", "housing"), _m("2", "Яма", "roads")]
    corrected = [_m("q7", "нет воды на садовой!", "energy")]
    merged = merge_corrections(base, corrected)
    assert sorted((m.text, m.topic) for m in merged) == [("Яма", "roads"), ("нет воды на садовой!", "energy")]
