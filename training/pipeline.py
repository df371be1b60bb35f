"""The stages strung together: data → version → ONNX → gate → served pointer.

Library functions behind `tsur train`, `tsur retrain` and `tsur up`; each
stage stays usable on its own.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.gazetteer import Gazetteer
from model.manifest import sha256_file
from model.paths import default_corpus_dir
from model.registry import ModelRegistry
from model.taxonomy import Taxonomy
from model.text import fold_for_dedup
from training.dataset import DatasetReport, expand_paths, load_dataset
from training.export import ParityLimits, export_version
from training.gate import GateResult, promote
from training.messages import ColumnMapping, LabelledMessage
from training.train import Progress, TrainSettings, new_version_id, save_version, train_model


class DataError(ValueError):
    """Training data with errors; the report lists them."""

    def __init__(self, message: str, report: DatasetReport):
        super().__init__(message)
        self.report = report


@dataclass
class TrainingData:
    train: list[LabelledMessage]
    eval: list[LabelledMessage]
    files: list[dict[str, Any]]
    eval_source: str


def default_train_paths() -> list[Path]:
    return [default_corpus_dir() / "train"]


def default_eval_paths() -> list[Path]:
    return [default_corpus_dir() / "test"]


def load_labelled(
    paths: Sequence[Path], taxonomy: Taxonomy, gazetteer: Gazetteer | None, mapping: ColumnMapping | None
) -> DatasetReport:
    report = load_dataset(paths, taxonomy, gazetteer, mapping, require_labels=True)
    if not report.ok:
        raise DataError(f"{len(report.errors)} error(s) in {', '.join(map(str, paths))}", report)
    return report


def merge_corrections(
    base: list[LabelledMessage], *overrides: Sequence[LabelledMessage]
) -> list[LabelledMessage]:
    """Later sources win: a corrected label replaces the one for the same text.

    Text, not id, is the key: ids differ between a region's exports and the queue.
    """
    by_key: dict[str, LabelledMessage] = {}
    for source in (base, *overrides):
        for m in source:
            by_key[fold_for_dedup(m.text)] = m
    return list(by_key.values())


def prepare_data(
    inputs: Sequence[Path] | None,
    eval_paths: Sequence[Path] | None,
    taxonomy: Taxonomy,
    gazetteer: Gazetteer | None,
    mapping: ColumnMapping | None,
    corrections: Sequence[Path] = (),
    eval_fraction: float = 0.15,
    seed: int = 13,
    include_base: bool = False,
) -> TrainingData:
    """Training and evaluation messages, with each file's hash for the manifest.

    With no inputs the bundled corpus is used (train split to learn, test split to
    measure).  A region's own export without an evaluation file has a share of it
    held out, so the numbers in its manifest are measured on unseen messages.
    """
    own_inputs = list(inputs or [])
    train_paths = [*(default_train_paths() if include_base or not own_inputs else []), *own_inputs]
    parts = [load_labelled(train_paths, taxonomy, gazetteer, mapping).messages]
    if corrections:
        parts.append(load_labelled(list(corrections), taxonomy, gazetteer, ColumnMapping.load(None)).messages)
    train = merge_corrections(parts[0], *parts[1:])
    if eval_paths:
        evaluation = load_labelled(list(eval_paths), taxonomy, gazetteer, None).messages
        eval_source = ", ".join(map(str, eval_paths))
    elif not own_inputs:
        evaluation = load_labelled(default_eval_paths(), taxonomy, gazetteer, None).messages
        eval_source = str(default_eval_paths()[0])
    else:
        rng = random.Random(seed)
        shuffled = train[:]
        rng.shuffle(shuffled)
        cut = max(1, int(len(shuffled) * eval_fraction))
        evaluation, train = shuffled[:cut], shuffled[cut:]
        eval_source = f"{eval_fraction:.0%} of the inputs held out (seed {seed})"
    files = [
        {"file": str(p), "sha256": sha256_file(p)} for p, _ in expand_paths([*train_paths, *corrections])
    ]
    return TrainingData(train, evaluation, files, eval_source)


@dataclass
class BuildResult:
    version: str
    path: Path
    metrics: dict[str, Any]
    export: dict[str, Any] | None
    gate: GateResult | None


def build_version(
    data: TrainingData,
    taxonomy: Taxonomy,
    settings: TrainSettings,
    registry: ModelRegistry,
    output: Path | None = None,
    export: bool = True,
    gate: bool = True,
    tolerance: float = 0.01,
    progress: Progress | None = None,
    parity: ParityLimits | None = None,
) -> BuildResult:
    trained = train_model(
        data.train, data.eval, taxonomy, settings, **({"progress": progress} if progress else {})
    )
    version = new_version_id(settings.mode)
    path = output or registry.path(version)
    save_version(trained, path, taxonomy, data.files, version, data.eval_source)
    export_info = export_version(path, data.eval, parity or ParityLimits()) if export else None
    gate_result = None
    if export and gate and output is None:
        gate_result = promote(registry, version, data.eval, taxonomy, tolerance)
    return BuildResult(version, path, trained.metrics, export_info, gate_result)


@contextmanager
def exclusive(lock_path: Path):
    """One retraining at a time; a lock left by a dead process is taken over."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                holder = int(lock_path.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _alive(holder):
                raise RuntimeError(f"another retraining (pid {holder}) holds {lock_path}") from None
            lock_path.unlink(missing_ok=True)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock_path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def summary(result: BuildResult) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                "version": result.version,
                "path": str(result.path),
                "eval": result.metrics.get("eval", {}),
                "export": result.export,
                "gate": None
                if result.gate is None
                else {
                    "promoted": result.gate.passed,
                    "reason": result.gate.reason,
                    "comparisons": result.gate.comparisons,
                },
            },
            default=str,
        )
    )
