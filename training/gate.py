"""Promotion gate: a new version is served only if it is not worse than the current one.

Both versions are measured again, through the same onnxruntime path serving
uses, on one fixed evaluation set; every head's score must stay within the
tolerance of the current version's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from model.manifest import ModelVersionError
from model.predictor import Predictor
from model.registry import ModelRegistry
from model.taxonomy import Taxonomy
from training.messages import LabelledMessage
from training.metrics import score_outputs

GATED = (
    ("topic", "macro_f1"),
    ("category", "macro_f1"),
    ("incident", "f1"),
    ("conflict", "f1"),
    ("misinformation", "f1"),
    ("executor", "macro_f1"),
)


@dataclass
class GateResult:
    version: str
    passed: bool
    reason: str
    candidate: dict[str, Any]
    current_version: str | None = None
    current: dict[str, Any] | None = None
    comparisons: list[dict[str, Any]] = field(default_factory=list)


def evaluate_version(predictor: Predictor, messages: Sequence[LabelledMessage]) -> dict[str, Any]:
    outputs = predictor.run([m.text for m in messages]).heads
    return score_outputs(messages, outputs, predictor.heads)


def check_promotion(
    registry: ModelRegistry,
    version: str,
    eval_messages: Sequence[LabelledMessage],
    taxonomy: Taxonomy,
    tolerance: float = 0.01,
) -> GateResult:
    candidate = Predictor(registry.path(version), taxonomy=taxonomy)  # hashes, taxonomy, ONNX
    candidate_scores = evaluate_version(candidate, eval_messages)
    current_version = registry.current()
    if current_version is None:
        return GateResult(version, True, "no version is served yet", candidate_scores)
    if current_version == version:
        return GateResult(
            version, False, f"{version} is already the current version", candidate_scores, current_version
        )
    try:
        current = Predictor(registry.path(current_version), taxonomy=taxonomy)
    except ModelVersionError as exc:
        return GateResult(
            version,
            True,
            f"the current version cannot serve this taxonomy or "
            f"is broken ({exc}); nothing to compare against",
            candidate_scores,
            current_version,
        )
    current_scores = evaluate_version(current, eval_messages)
    comparisons, failed = [], []
    for head, metric in GATED:
        if head not in candidate_scores or head not in current_scores:
            continue
        new, old = candidate_scores[head][metric], current_scores[head][metric]
        ok = new >= old - tolerance
        comparisons.append({"head": head, "metric": metric, "candidate": new, "current": old, "passed": ok})
        if not ok:
            failed.append(f"{head} {metric} {new:.4f} < {old:.4f} - {tolerance}")
    passed = not failed
    reason = (
        "not worse than the current version on any head"
        if passed
        else "worse than the current version: " + "; ".join(failed)
    )
    return GateResult(version, passed, reason, candidate_scores, current_version, current_scores, comparisons)


def promote(
    registry: ModelRegistry,
    version: str,
    eval_messages: Sequence[LabelledMessage],
    taxonomy: Taxonomy,
    tolerance: float = 0.01,
    force: bool = False,
) -> GateResult:
    result = check_promotion(registry, version, eval_messages, taxonomy, tolerance)
    if result.passed or (force and result.current_version != version):
        reason = result.reason if result.passed else f"forced: {result.reason}"
        registry.set_current(version, reason=reason, kind="promote")
        result.passed = True
        result.reason = reason
    return result
