"""Inference on a model version with onnxruntime: the one code path for CLI and HTTP.

Loading verifies the version's file hashes and its taxonomy; the session is
created once, with thread counts set explicitly.  Texts are tokenized with the
version's own tokenizer, sorted by length into batches so padding stays small.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.heads import HeadConfig, HeadOutputs, decide, read_heads
from model.manifest import (
    ONNX_FILE,
    TOKENIZER_FILE,
    ModelVersionError,
    check_taxonomy,
    read_manifest,
    verify_files,
)
from model.taxonomy import Taxonomy
from model.text import prepare_for_model


@dataclass
class RawOutputs:
    heads: HeadOutputs
    embeddings: np.ndarray


class Predictor:
    def __init__(
        self,
        version_dir: Path | str,
        taxonomy: Taxonomy | None = None,
        threads: int | None = None,
        batch_size: int = 32,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.version_dir = Path(version_dir)
        self.manifest = read_manifest(self.version_dir)
        verify_files(self.version_dir, self.manifest, required=(ONNX_FILE, TOKENIZER_FILE))
        if taxonomy is not None:
            check_taxonomy(self.manifest, taxonomy.hash, str(self.version_dir))
        self.version = self.manifest["version"]
        self.heads = HeadConfig.from_manifest(self.manifest)
        self.names: dict[str, str] = self.manifest["labels"].get("names", {})
        backbone = self.manifest["backbone"]
        self.prefix = backbone.get("prefix", "")
        self.max_length = int(backbone.get("max_length", 256))
        self.batch_size = batch_size

        self.tokenizer = Tokenizer.from_file(str(self.version_dir / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        self.pad_id = int(backbone.get("pad_id", 0))

        options = ort.SessionOptions()
        threads = threads or int(os.environ.get("TSUR_ORT_THREADS", 0)) or (os.cpu_count() or 1)
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.version_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelVersionError(
                f"{self.version_dir / ONNX_FILE}: onnxruntime cannot load it: {exc}"
            ) from None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        prepared = [self.prefix + prepare_for_model(t) for t in texts]
        return [e.ids for e in self.tokenizer.encode_batch(prepared)]

    def run(self, texts: Sequence[str]) -> RawOutputs:
        ids = self.encode(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        collected: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, len(order), self.batch_size):
            batch = [ids[i] for i in order[start : start + self.batch_size]]
            width = max(len(x) for x in batch)
            input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, seq in enumerate(batch):
                input_ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            outputs = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            for name, value in zip(self.output_names, outputs, strict=True):
                collected[name].append(value)
        restore = np.argsort(order)
        merged = {
            name: np.concatenate(parts)[restore] if parts else np.zeros((0,))
            for name, parts in collected.items()
        }
        heads = read_heads(
            self.heads,
            merged["topic_logits"],
            merged["category_logits"],
            merged["flag_logits"],
            merged.get("executor_logits"),
        )
        return RawOutputs(heads=heads, embeddings=merged["embedding"])

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        if not texts:
            return []
        return decide(self.heads, self.run(texts).heads, self.names)
