"""Trimming the multilingual vocabulary to what Russian messages use.

A unigram tokenizer can only use a piece whose every character occurs in the
text.  Keeping every piece made of Cyrillic letters, digits, punctuation and
symbols therefore changes nothing for Cyrillic text: the same pieces, the same
segmentation, the same embeddings.  Latin pieces are kept when the corpus uses
them or when they are one or two letters long, so any Latin word (brands,
URLs, «wi-fi») still tokenizes, in shorter pieces at worst.  Other scripts
become `<unk>`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

_SYMBOL_RANGES = (
    (0x0020, 0x0040),
    (0x005B, 0x0060),
    (0x007B, 0x007E),  # ASCII digits and punctuation
    (0x00A0, 0x00BF),
    (0x00D7, 0x00D7),
    (0x00F7, 0x00F7),  # Latin-1 punctuation: «» ° ±
    (0x2000, 0x206F),  # general punctuation: — – … “ ”
    (0x20A0, 0x20CF),  # currency: ₽
    (0x2100, 0x214F),  # letterlike: №
    (0x2190, 0x21FF),  # arrows
    (0x2600, 0x27BF),  # symbols and dingbats
    (0x1F300, 0x1FAFF),  # emoji
    (0xFE0F, 0xFE0F),  # emoji variation selector
)
_CYRILLIC = (0x0400, 0x052F)
_LATIN = ((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x00FF))
_WORD_START = "▁"
SHORT_LATIN = 2


def _in(code: int, ranges) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def is_core_char(ch: str) -> bool:
    code = ord(ch)
    return ch == _WORD_START or _in(code, (_CYRILLIC,)) or _in(code, _SYMBOL_RANGES)


def is_latin_char(ch: str) -> bool:
    return _in(ord(ch), _LATIN)


def kept_piece_ids(pieces: list[str], special_ids: set[int], used_ids: set[int]) -> list[int]:
    keep = []
    for i, piece in enumerate(pieces):
        letters = piece.replace(_WORD_START, "")
        core = all(map(is_core_char, piece))
        short_latin = len(letters) <= SHORT_LATIN and all(is_core_char(c) or is_latin_char(c) for c in piece)
        if i in special_ids or i in used_ids or core or short_latin:
            keep.append(i)
    return keep


def trim_backbone(source: Path, target: Path, texts: Iterable[str] = ()) -> dict:
    """Copy a backbone directory with the vocabulary and embedding matrix trimmed.

    `texts` (the training corpus) adds every piece they use, whatever its script.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    tokenizer_doc = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    model_doc = tokenizer_doc["model"]
    if model_doc.get("type") != "Unigram":
        raise ValueError(f"vocabulary trimming supports unigram tokenizers, not {model_doc.get('type')}")
    pieces = [p for p, _ in model_doc["vocab"]]
    special = {t["id"] for t in tokenizer_doc.get("added_tokens", [])}
    special.add(model_doc["unk_id"])
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    used = {i for encoding in tokenizer.encode_batch(list(texts)) for i in encoding.ids}
    keep = kept_piece_ids(pieces, special, used)
    new_id = {old: new for new, old in enumerate(keep)}

    model_doc["vocab"] = [model_doc["vocab"][i] for i in keep]
    model_doc["unk_id"] = new_id[model_doc["unk_id"]]
    for token in tokenizer_doc.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_post_processor(tokenizer_doc.get("post_processor"), new_id)

    model = BertModel.from_pretrained(source, add_pooling_layer=False)
    old_embeddings = model.get_input_embeddings().weight.detach()
    index = torch.tensor(keep, dtype=torch.long)
    model.resize_token_embeddings(len(keep))
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(old_embeddings[index])
    model.config.pad_token_id = new_id.get(model.config.pad_token_id, 0)

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, staging / name)
    (staging / "tokenizer.json").write_text(json.dumps(tokenizer_doc, ensure_ascii=False), encoding="utf-8")
    provenance_path = source / "tsur-backbone.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.exists() else {}
    provenance["trimmed_vocabulary"] = {
        "kept_pieces": len(keep),
        "original_pieces": len(pieces),
        "rule": "every Cyrillic/digit/symbol/emoji piece, Latin pieces of up to "
        f"{SHORT_LATIN} letters, and every piece the training texts use; "
        "lossless for Cyrillic text",
    }
    (staging / "tsur-backbone.json").write_text(json.dumps(provenance, indent=1), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return provenance["trimmed_vocabulary"]


def _remap_post_processor(node, new_id: dict[int, int]) -> None:
    """Special-token ids sit inside the post-processor too (TemplateProcessing, RobertaProcessing)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                node[key] = [new_id.get(v, v) for v in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2:
                node[key] = [value[0], new_id.get(value[1], value[1])]
            else:
                _remap_post_processor(value, new_id)
    elif isinstance(node, list):
        for item in node:
            _remap_post_processor(item, new_id)
