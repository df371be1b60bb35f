"""Exact and near-duplicate detection over message texts.

Exact duplicates share their folded text (case, ё, punctuation and emoji
ignored).  Near duplicates are found with MinHash LSH over character 5-grams
and confirmed by their true Jaccard similarity, so a candidate pair the sketch
lets through by chance is not reported.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from model.text import fold_for_dedup
from training.messages import FLAGS, LabelledMessage

SHINGLE = 5
NUM_PERM = 128
# The sketch index is queried below the reporting threshold so that true pairs
# near the threshold are not lost to the sketch's randomness; every candidate is
# then checked exactly.
CANDIDATE_MARGIN = 0.2
# Texts this short are only compared exactly: two short complaints about the same
# thing look alike without being copies.
MIN_NEAR_CHARS = 40


@dataclass(frozen=True)
class Duplicate:
    kept: LabelledMessage
    duplicate: LabelledMessage
    kind: str  # "exact" or "near"
    similarity: float

    @property
    def labels_conflict(self) -> bool:
        return _labels(self.kept) != _labels(self.duplicate)


def _labels(m: LabelledMessage) -> tuple:
    return (m.topic, m.category, *(getattr(m, f) for f in FLAGS))


def _shingles(folded: str) -> set[str]:
    return {folded[i : i + SHINGLE] for i in range(max(1, len(folded) - SHINGLE + 1))}


# One set of permutations for every sketch: building them is most of the cost.
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=7, hashfunc=zlib.crc32)


def _minhash(shingles: set[str]) -> MinHash:
    sketch = MinHash(
        num_perm=NUM_PERM, hashfunc=zlib.crc32, permutations=_TEMPLATE.permutations, scheme=_TEMPLATE.scheme
    )
    sketch.update_batch([s.encode("utf-8") for s in shingles])
    return sketch


def find_duplicates(messages: Sequence[LabelledMessage], near_threshold: float = 0.85) -> list[Duplicate]:
    """Each later copy paired with the first message it repeats, in input order."""
    duplicates: list[Duplicate] = []
    first_by_text: dict[str, int] = {}
    folded = [fold_for_dedup(m.text) for m in messages]
    survivors: list[int] = []
    for i, key in enumerate(folded):
        if key in first_by_text:
            duplicates.append(Duplicate(messages[first_by_text[key]], messages[i], "exact", 1.0))
        else:
            first_by_text[key] = i
            survivors.append(i)
    if near_threshold >= 1.0:
        return duplicates

    lsh = MinHashLSH(threshold=max(0.3, near_threshold - CANDIDATE_MARGIN), num_perm=NUM_PERM)
    shingle_sets: dict[int, set[str]] = {}
    for i in survivors:
        if len(folded[i]) < MIN_NEAR_CHARS:
            continue
        shingles = _shingles(folded[i])
        sketch = _minhash(shingles)
        best, best_similarity = None, 0.0
        for j in lsh.query(sketch):
            similarity = _jaccard(shingles, shingle_sets[j])
            if similarity >= near_threshold and similarity > best_similarity:
                best, best_similarity = j, similarity
        if best is not None:
            duplicates.append(Duplicate(messages[best], messages[i], "near", round(best_similarity, 3)))
            continue
        shingle_sets[i] = shingles
        lsh.insert(i, sketch)
    return duplicates


def find_cross_split_overlap(
    first: Sequence[LabelledMessage], second: Sequence[LabelledMessage], threshold: float = 0.7
) -> list[Duplicate]:
    """Pairs of messages from two splits that are the same text or close to it.

    The threshold is lower than for deduplication: a test message that shares most
    of its wording with a training one does not measure generalisation.
    """
    lsh = MinHashLSH(threshold=max(0.3, threshold - CANDIDATE_MARGIN), num_perm=NUM_PERM)
    index: dict[int, tuple[str, set[str]]] = {}
    for i, m in enumerate(first):
        key = fold_for_dedup(m.text)
        shingles = _shingles(key)
        index[i] = (key, shingles)
        lsh.insert(i, _minhash(shingles))
    exact = {key: i for i, (key, _) in index.items()}
    overlaps = []
    for m in second:
        key = fold_for_dedup(m.text)
        if key in exact:
            overlaps.append(Duplicate(first[exact[key]], m, "exact", 1.0))
            continue
        if len(key) < MIN_NEAR_CHARS:
            continue
        shingles = _shingles(key)
        scored = [(_jaccard(shingles, index[j][1]), j) for j in lsh.query(_minhash(shingles))]
        scored = [s for s in scored if s[0] >= threshold]
        if scored:
            similarity, j = max(scored)
            overlaps.append(Duplicate(first[j], m, "near", round(similarity, 3)))
    return overlaps


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
