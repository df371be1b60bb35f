"""Text folding shared by label lookup, place matching and deduplication."""

import re
import unicodedata

_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]+")


def fold(value: str) -> str:
    """Case- and ё-insensitive form of a short label or place name."""
    value = unicodedata.normalize("NFC", value).casefold().replace("ё", "е")
    return _SPACES.sub(" ", value).strip()


def fold_for_dedup(text: str) -> str:
    """Folded text without punctuation or emoji: what two copies of a message share."""
    return _SPACES.sub(" ", _NON_WORD.sub(" ", fold(text))).strip()
