"""Loading labelled data from files and corpus directories, with a full report.

A corpus directory holds `train/` and `test/` sub-directories of JSONL files;
a plain directory is read file by file; a file is read as it is.  Nothing is
dropped silently: rejected rows keep their original values and reasons, removed
duplicates are listed with the message they repeat.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.gazetteer import Gazetteer
from model.taxonomy import Taxonomy
from training.dedup import Duplicate, find_cross_split_overlap, find_duplicates
from training.messages import FLAGS, ColumnMapping, LabelledMessage, ReadResult, RowValidator
from training.tables import SUPPORTED_SUFFIXES, RowIssue

SPLITS = ("train", "test")


@dataclass
class DatasetReport:
    messages: list[LabelledMessage] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    leaks: list[Duplicate] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[RowIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[RowIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def split(self, name: str) -> list[LabelledMessage]:
        return [m for m in self.messages if m.split == name]


def expand_paths(paths: Iterable[Path | str]) -> list[tuple[Path, str | None]]:
    """Files to read, each with the split its place in a corpus directory gives it."""
    found: list[tuple[Path, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            split_dirs = [path / s for s in SPLITS if (path / s).is_dir()]
            if split_dirs:
                for split_dir in split_dirs:
                    found.extend((f, split_dir.name) for f in _data_files(split_dir))
            else:
                found.extend((f, None) for f in _data_files(path))
        else:
            split = path.parent.name if path.parent.name in SPLITS else None
            found.append((path, split))
    return found


def _data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def load_dataset(
    paths: Sequence[Path | str],
    taxonomy: Taxonomy,
    gazetteer: Gazetteer | None = None,
    mapping: ColumnMapping | None = None,
    require_labels: bool = True,
    near_threshold: float = 0.85,
    leak_threshold: float = 0.7,
) -> DatasetReport:
    mapping = mapping or ColumnMapping.load(None)
    validator = RowValidator(taxonomy, gazetteer, require_labels=require_labels)
    report = DatasetReport()
    files = expand_paths(paths)
    if not files:
        report.issues.append(RowIssue(", ".join(map(str, paths)), None, None, "no data files found"))
        return report
    read = ReadResult()
    for path, split in files:
        report.files.append(str(path))
        read.extend(validator.read_file(path, mapping, split))
    report.rejected = read.rejected
    report.issues = read.issues
    report.issues.extend(_duplicate_ids(read.messages))

    # Duplicates are looked for inside each split; across splits they are leaks.
    splits = sorted({m.split for m in read.messages}, key=lambda s: (s is None, s or ""))
    removed: set[int] = set()
    for split in splits:
        members = [m for m in read.messages if m.split == split]
        for dup in find_duplicates(members, near_threshold):
            report.duplicates.append(dup)
            removed.add(id(dup.duplicate))
            file, _, row = dup.duplicate.origin.rpartition(":")
            conflict = ", with different labels" if dup.labels_conflict else ""
            report.issues.append(
                RowIssue(
                    file,
                    int(row),
                    "text",
                    f"{dup.kind} duplicate (similarity {dup.similarity:.2f}) of {dup.kept.id} "
                    f"at {dup.kept.origin}{conflict}; removed",
                    severity="warning",
                )
            )
    report.messages = [m for m in read.messages if id(m) not in removed]

    train, test = report.split("train"), report.split("test")
    if train and test:
        report.leaks = find_cross_split_overlap(train, test, leak_threshold)
        for leak in report.leaks:
            file, _, row = leak.duplicate.origin.rpartition(":")
            report.issues.append(
                RowIssue(
                    file,
                    int(row),
                    "text",
                    f"test message overlaps train message {leak.kept.id} at {leak.kept.origin} "
                    f"(similarity {leak.similarity:.2f}); the test split must be written separately",
                )
            )
    return report


def _duplicate_ids(messages: Sequence[LabelledMessage]) -> list[RowIssue]:
    first: dict[str, LabelledMessage] = {}
    issues = []
    for m in messages:
        if m.id in first:
            file, _, row = m.origin.rpartition(":")
            issues.append(RowIssue(file, int(row), "id", f"id {m.id!r} already used at {first[m.id].origin}"))
        else:
            first[m.id] = m
    return issues


def write_jsonl(messages: Iterable[LabelledMessage] | Iterable[dict], path: Path | str) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for m in messages:
            record = m.to_record() if isinstance(m, LabelledMessage) else m
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def statistics(messages: Sequence[LabelledMessage], taxonomy: Taxonomy) -> dict[str, Any]:
    """Counts a dataset card needs: per split, topic, category, flag, source, length."""
    splits = sorted({m.split or "unsplit" for m in messages})

    def per_split(key) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for m in messages:
            value = key(m)
            if value is None:
                continue
            row = table.setdefault(value, dict.fromkeys(splits, 0))
            row[m.split or "unsplit"] += 1
        return table

    topics = per_split(lambda m: m.topic)
    categories = per_split(lambda m: m.category)
    ordered_topics = {t: topics.get(t, dict.fromkeys(splits, 0)) for t in taxonomy.topic_codes}
    ordered_categories = {c: categories.get(c, dict.fromkeys(splits, 0)) for c in taxonomy.category_codes}
    flags = {
        f: per_split(lambda m, f=f: str(getattr(m, f)) if getattr(m, f) is not None else None) for f in FLAGS
    }
    lengths = sorted(len(m.text.split()) for m in messages)
    return {
        "total": len(messages),
        "splits": dict(Counter(m.split or "unsplit" for m in messages)),
        "topics": ordered_topics,
        "categories": ordered_categories,
        "flags": {
            f: {
                "positive": v.get("1", dict.fromkeys(splits, 0)),
                "negative": v.get("0", dict.fromkeys(splits, 0)),
            }
            for f, v in flags.items()
        },
        "sources": per_split(lambda m: m.source),
        "with_municipality": sum(1 for m in messages if m.municipality),
        "words": _quantiles(lengths),
        "augmented": sum(1 for m in messages if m.augmented_from),
    }


def _quantiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"min": values[0], "p10": pick(0.1), "median": pick(0.5), "p90": pick(0.9), "max": values[-1]}
