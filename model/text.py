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


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\ufeff]")


_MIN_SHOUTING_LETTERS = 12
_SHOUTING_SHARE = 0.7


def prepare_for_model(text: str) -> str:
    """The form a text is encoded in, the same at training and at inference.

    Case, ё and punctuation stay, except that a message written in capitals is
    lower-cased: the subword vocabulary splits capitalised Russian into pieces the
    encoder rarely saw, and the robustness report showed topic macro-F1 falling by
    a fifth on CAPS text.  «!!!» still carries the urgency.
    """
    text = _SPACES.sub(" ", _CONTROL.sub(" ", unicodedata.normalize("NFC", text))).strip()
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) >= _MIN_SHOUTING_LETTERS:
        upper = sum(ch.isupper() for ch in letters)
        if upper / len(letters) >= _SHOUTING_SHARE:
            return text.lower()
    return text
