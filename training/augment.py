"""Noisy copies of hand-written messages: how real people mistype the same complaint.

Each copy keeps its source's labels and split and records `augmented_from`, so
copies never cross splits and can be told apart in statistics.  Typos never
touch capitalised words (places, names) or digits (addresses, phones), and
hyphens stay, because place matching and routing read them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from training.messages import LabelledMessage

# Neighbouring keys on the Russian ЙЦУКЕН layout: the typos a phone keyboard makes.
_ROWS = ("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю")
_NEIGHBOURS: dict[str, str] = {}
for _row in _ROWS:
    for _i, _ch in enumerate(_row):
        _NEIGHBOURS[_ch] = _row[max(0, _i - 1) : _i] + _row[_i + 1 : _i + 2]

_WORD = re.compile(r"[А-Яа-яЁё]{4,}")
_PUNCT = re.compile(r"[.,;:!?«»\"()—–]+")


def typos(text: str, rng: random.Random, rate: float = 0.08) -> str:
    """Swap, drop, double or mistype one letter in some of the longer lower-case words."""

    def mistype(match: re.Match[str]) -> str:
        word = match.group(0)
        if word[0].isupper() or rng.random() > rate:
            return word
        i = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if kind == 1:
            return word[:i] + word[i + 1 :]
        if kind == 2:
            return word[:i] + word[i] + word[i:]
        near = _NEIGHBOURS.get(word[i].lower())
        return word[:i] + (rng.choice(near) if near else word[i]) + word[i + 1 :]

    return _WORD.sub(mistype, text)


def no_punctuation(text: str, rng: random.Random) -> str:
    return re.sub(r"[ \t]+", " ", _PUNCT.sub(" ", text)).strip()


def lower_case(text: str, rng: random.Random) -> str:
    return text.lower().replace("ё", "е")


def caps(text: str, rng: random.Random) -> str:
    return text.upper() + rng.choice(["!!!", "!!", "", "!!!!!"])


def truncate(text: str, rng: random.Random) -> str:
    """Keep the opening sentences of a long message, as a preview or a cut-off paste."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    if len(sentences) < 4:
        return text
    keep = rng.randrange(2, len(sentences) - 1)
    return " ".join(sentences[:keep])


AUGMENTERS: dict[str, Callable[[str, random.Random], str]] = {
    "typos": typos,
    "no_punctuation": no_punctuation,
    "lower_case": lower_case,
    "caps": caps,
    "truncate": truncate,
}


def augment(
    messages: Sequence[LabelledMessage],
    copies: int = 1,
    seed: int = 13,
    kinds: Sequence[str] = tuple(AUGMENTERS),
) -> list[LabelledMessage]:
    """`copies` noisy variants per message; variants equal to their source are skipped."""
    unknown = sorted(set(kinds) - set(AUGMENTERS))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {sorted(AUGMENTERS)}")
    rng = random.Random(seed)
    out: list[LabelledMessage] = []
    for m in messages:
        if m.augmented_from:
            continue
        seen = {m.text}
        for k in range(copies):
            kind = rng.choice(list(kinds))
            text = AUGMENTERS[kind](m.text, rng)
            if kind == "caps" and len(text) > 300:
                text = typos(m.text, rng)  # a whole long post in capitals is rare
            if text in seen or not text.strip():
                continue
            seen.add(text)
            out.append(
                replace(m, id=f"{m.id}~{k + 1}", text=text, augmented_from=m.id, origin=f"{m.origin}~{kind}")
            )
    return out
