"""Quality numbers shared by training, export gates, promotion gates and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from model.heads import FLAG_NAMES, HeadConfig, HeadOutputs, top_labels


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Macro F1 over the labels that occur in the truth (absent classes would score 0)."""
    if labels is None:
        labels = sorted(set(y_true))
    return float(f1_score(y_true, y_pred, labels=list(labels), average="macro", zero_division=0))


def binary_scores(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(np.sum(y_true))}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Gap between stated confidence and observed accuracy, weighted by bin size."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def best_threshold(scores: np.ndarray, truth: np.ndarray, target_precision: float | None = None) -> float:
    """Threshold on validation scores: the lowest reaching `target_precision`, else the F1 optimum."""
    scores = np.asarray(scores, dtype=float)
    truth = np.asarray(truth, dtype=int)
    positives = int(truth.sum())
    if positives == 0 or positives == truth.size:
        return 0.5
    rows = []
    for threshold in np.unique(np.round(scores, 4)):
        predicted = scores >= threshold
        tp = float((predicted & (truth == 1)).sum())
        precision = tp / max(int(predicted.sum()), 1)
        recall = tp / positives
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        rows.append((float(threshold), precision, recall, f1))
    if target_precision is not None:
        reaching = [t for t, p, r, _ in rows if p >= target_precision and r > 0]
        if reaching:
            return min(reaching)
    return max(rows, key=lambda row: row[3])[0]


def score_outputs(messages: Sequence, outputs: HeadOutputs, config: HeadConfig) -> dict:
    """Per-head quality of calibrated outputs against labelled messages."""
    if not len(messages):
        return {}
    topic_index, category_index = top_labels(config, outputs)
    topic_pred = [config.topics[i] for i in topic_index]
    topic_true = [m.topic for m in messages]
    topic_conf = outputs.topic_probs.max(axis=1)
    scores: dict = {
        "n": len(messages),
        "topic": {
            "macro_f1": round(macro_f1(topic_true, topic_pred), 4),
            "accuracy": round(
                float(np.mean([a == b for a, b in zip(topic_true, topic_pred, strict=True)])), 4
            ),
            "ece": round(
                expected_calibration_error(topic_conf, np.array(topic_true) == np.array(topic_pred)), 4
            ),
        },
    }
    rows = [i for i, m in enumerate(messages) if m.category]
    if rows:
        truth = [messages[i].category for i in rows]
        predicted = [config.categories[category_index[i]] for i in rows]
        confidence = outputs.category_probs[rows, category_index[rows]]
        scores["category"] = {
            "macro_f1": round(macro_f1(truth, predicted), 4),
            "accuracy": round(float(np.mean([a == b for a, b in zip(truth, predicted, strict=True)])), 4),
            "ece": round(expected_calibration_error(confidence, np.array(truth) == np.array(predicted)), 4),
        }
    for fi, flag in enumerate(FLAG_NAMES):
        rows = [i for i, m in enumerate(messages) if getattr(m, flag) is not None]
        if not rows:
            continue
        truth = np.array([getattr(messages[i], flag) for i in rows])
        predicted = (outputs.flag_probs[rows, fi] >= config.flag_thresholds.get(flag, 0.5)).astype(int)
        scores[flag] = {
            k: round(v, 4) if isinstance(v, float) else v for k, v in binary_scores(truth, predicted).items()
        }
    if outputs.executor_probs is not None:
        rows = [i for i, m in enumerate(messages) if m.executor in config.executors]
        if rows:
            truth = [messages[i].executor for i in rows]
            predicted = [config.executors[j] for j in outputs.executor_probs[rows].argmax(axis=1)]
            scores["executor"] = {
                "macro_f1": round(macro_f1(truth, predicted), 4),
                "accuracy": round(float(np.mean([a == b for a, b in zip(truth, predicted, strict=True)])), 4),
            }
    return scores
