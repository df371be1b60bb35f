"""From raw head outputs to calibrated, consistent predictions.

Shared by training (to measure), export (to compare) and serving (to answer),
so a number means the same thing everywhere.  Temperatures and thresholds come
from the model version's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLAG_NAMES = ("incident", "conflict", "misinformation")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits / temperature))


@dataclass
class HeadConfig:
    """What a model version says about reading its outputs."""

    topics: list[str]
    categories: list[str]
    category_topic: dict[str, str]
    executors: list[str] = field(default_factory=list)
    temperatures: dict[str, float] = field(default_factory=dict)  # topic, category, executor, flags
    flag_thresholds: dict[str, float] = field(default_factory=dict)
    review: dict[str, float] = field(
        default_factory=lambda: {
            "topic_min_score": 0.5,
            "category_min_score": 0.35,
            "topic_margin": 0.15,
            "executor_min_score": 0.5,
        }
    )

    def __post_init__(self) -> None:
        self._topic_mask = np.array(
            [[self.category_topic[c] == t for c in self.categories] for t in self.topics]
        )

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> HeadConfig:
        labels = manifest["labels"]
        heads = manifest.get("heads", {})
        return cls(
            topics=labels["topics"],
            categories=labels["categories"],
            category_topic=labels["category_topic"],
            executors=labels.get("executors", []),
            temperatures=heads.get("temperatures", {}),
            flag_thresholds=heads.get("flag_thresholds", {}),
            review=heads.get("review", cls.__dataclass_fields__["review"].default_factory()),
        )

    def to_manifest(self) -> dict[str, Any]:
        return {
            "temperatures": self.temperatures,
            "flag_thresholds": self.flag_thresholds,
            "review": self.review,
        }


@dataclass
class HeadOutputs:
    topic_probs: np.ndarray  # (n, topics)
    category_probs: np.ndarray  # (n, categories), joint: P(topic) × P(category | topic)
    flag_probs: np.ndarray  # (n, 3)
    executor_probs: np.ndarray | None  # (n, executors)


def read_heads(
    config: HeadConfig,
    topic_logits: np.ndarray,
    category_logits: np.ndarray,
    flag_logits: np.ndarray,
    executor_logits: np.ndarray | None = None,
) -> HeadOutputs:
    t = config.temperatures
    topic_probs = softmax(topic_logits, t.get("topic", 1.0))
    # Category given topic: a softmax over that topic's categories only, so the
    # category always belongs to the topic; its score is the joint probability.
    scaled = category_logits / t.get("category", 1.0)
    joint = np.zeros_like(scaled)
    for ti in range(len(config.topics)):
        members = config._topic_mask[ti]
        joint[:, members] = softmax(scaled[:, members]) * topic_probs[:, ti : ti + 1]
    flag_temps = np.array([t.get(f"flag.{f}", 1.0) for f in FLAG_NAMES])
    flag_probs = sigmoid(flag_logits, flag_temps)
    executor_probs = None
    if executor_logits is not None and config.executors:
        executor_probs = softmax(executor_logits, t.get("executor", 1.0))
    return HeadOutputs(topic_probs, joint, flag_probs, executor_probs)


def top_labels(config: HeadConfig, outputs: HeadOutputs) -> tuple[np.ndarray, np.ndarray]:
    """Index of the top topic, and of the top category inside that topic, per message."""
    topics = outputs.topic_probs.argmax(axis=1)
    inside = np.where(config._topic_mask[topics], outputs.category_probs, -1.0)
    return topics, inside.argmax(axis=1)


def decide(config: HeadConfig, outputs: HeadOutputs, names: dict[str, str]) -> list[dict[str, Any]]:
    """One result per message, in the format of `tsur predict` and the HTTP API."""
    results = []
    top_topics, top_categories = top_labels(config, outputs)
    for i in range(outputs.topic_probs.shape[0]):
        topic_p = outputs.topic_probs[i]
        order = np.argsort(-topic_p)
        top = int(top_topics[i])
        topic = config.topics[top]
        cat_index = int(top_categories[i])
        category = config.categories[cat_index]
        result: dict[str, Any] = {
            "topic": {"code": topic, "name": names.get(topic, topic), "score": _r(topic_p[top])},
            "topic_scores": {code: _r(p) for code, p in zip(config.topics, topic_p, strict=True)},
            "category": {
                "code": category,
                "name": names.get(category, category),
                "score": _r(outputs.category_probs[i, cat_index]),
            },
        }
        reasons = []
        for fi, flag in enumerate(FLAG_NAMES):
            score = float(outputs.flag_probs[i, fi])
            flagged = score >= config.flag_thresholds.get(flag, 0.5)
            result[flag] = {"flag": bool(flagged), "score": _r(score)}
            if flagged:
                reasons.append(flag)
        review = config.review
        if topic_p[top] < review["topic_min_score"]:
            reasons.append("low_topic_confidence")
        elif len(order) > 1 and topic_p[top] - topic_p[order[1]] < review["topic_margin"]:
            reasons.append("ambiguous_topic")
        if outputs.category_probs[i, cat_index] < review["category_min_score"]:
            reasons.append("low_category_confidence")
        if outputs.executor_probs is not None:
            ei = int(np.argmax(outputs.executor_probs[i]))
            score = float(outputs.executor_probs[i, ei])
            result["executor"] = {"code": config.executors[ei], "score": _r(score)}
            if score < review["executor_min_score"]:
                reasons.append("low_executor_confidence")
        result["needs_review"] = bool(reasons)
        result["review_reasons"] = reasons
        results.append(result)
    return results


def _r(value: float) -> float:
    return round(float(value), 4)
