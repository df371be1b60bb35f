"""ONNX export, dynamic INT8 quantisation and the parity gate.

One graph returns every head and the pooled embedding.  The INT8 graph is kept
only if it agrees with the PyTorch model: top-1 topic agreement at least 99%
and topic macro-F1 at most one point lower on the evaluation texts.  Otherwise
the export fails and the version stays without a servable graph.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.heads import HeadConfig
from model.manifest import ONNX_FILE, read_manifest, write_manifest
from model.predictor import Predictor
from training.messages import LabelledMessage
from training.metrics import macro_f1
from training.multitask import ExportWrapper
from training.train import load_checkpoint, logits_to_outputs, run_logits

OPSET = 17
FP32_FILE = "model.fp32.onnx"


class ExportGateError(RuntimeError):
    """The quantised graph does not behave like the model it came from."""


@dataclass(frozen=True)
class ParityLimits:
    min_topic_agreement: float = 0.99
    max_macro_f1_drop: float = 0.01


def export_onnx(model, path: Path) -> list[str]:
    wrapper = ExportWrapper(model).eval()
    names = wrapper.output_names()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    dynamic.update({name: {0: "batch"} for name in names})
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return names


def quantize_int8(source: Path, target: Path, per_channel: bool = False) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)


def export_version(
    version_dir: Path,
    eval_messages: Sequence[LabelledMessage],
    limits: ParityLimits = ParityLimits(),
    per_channel: bool = False,
    keep_fp32: bool = False,
) -> dict[str, Any]:
    """Export, quantise and gate a trained version; updates its manifest on success."""
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    model = load_checkpoint(version_dir, manifest)
    started = time.time()
    fp32 = version_dir / FP32_FILE
    int8 = version_dir / ONNX_FILE
    staged = version_dir / (ONNX_FILE + ".tmp")
    export_onnx(model, fp32)
    quantize_int8(fp32, staged, per_channel=per_channel)

    texts = [m.text for m in eval_messages]
    if not texts:
        raise ExportGateError("no evaluation texts to check the exported graph against")
    head_config = HeadConfig.from_manifest(manifest)
    staged.replace(int8)
    try:
        parity = _parity(version_dir, manifest, model, head_config, eval_messages, limits)
    except ExportGateError:
        int8.unlink(missing_ok=True)
        fp32.unlink(missing_ok=True)
        write_manifest(version_dir, {**manifest, "export": None})
        raise
    if not keep_fp32:
        fp32.unlink(missing_ok=True)
    manifest["export"] = {
        "opset": OPSET,
        "quantization": "dynamic INT8 (QInt8 weights"
        + (", per channel)" if per_channel else ", per tensor)"),
        "parity": parity,
        "seconds": round(time.time() - started, 1),
        "size_bytes": int8.stat().st_size,
    }
    write_manifest(version_dir, manifest)
    return manifest["export"]


def _parity(
    version_dir: Path,
    manifest: dict[str, Any],
    model,
    head_config: HeadConfig,
    messages: Sequence[LabelledMessage],
    limits: ParityLimits,
) -> dict[str, Any]:
    # The manifest does not list model.onnx yet; the predictor checks hashes, so record them first.
    write_manifest(version_dir, manifest)
    predictor = Predictor(version_dir)
    texts = [m.text for m in messages]
    onnx_topics = predictor.run(texts).heads.topic_probs.argmax(axis=1)
    torch_logits = run_logits(model, predictor.encode(texts), predictor.pad_id)
    torch_topics = logits_to_outputs(head_config, torch_logits).topic_probs.argmax(axis=1)
    agreement = float(np.mean(onnx_topics == torch_topics))
    truth = [m.topic for m in messages]
    f1_torch = macro_f1(truth, [head_config.topics[i] for i in torch_topics])
    f1_onnx = macro_f1(truth, [head_config.topics[i] for i in onnx_topics])
    parity = {
        "texts": len(texts),
        "topic_agreement": round(agreement, 4),
        "topic_macro_f1_torch": round(f1_torch, 4),
        "topic_macro_f1_int8": round(f1_onnx, 4),
        "macro_f1_drop": round(f1_torch - f1_onnx, 4),
        "limits": {
            "min_topic_agreement": limits.min_topic_agreement,
            "max_macro_f1_drop": limits.max_macro_f1_drop,
        },
    }
    if agreement < limits.min_topic_agreement or f1_torch - f1_onnx > limits.max_macro_f1_drop:
        raise ExportGateError(
            f"INT8 graph fails the parity gate: topic agreement {agreement:.4f} "
            f"(needs ≥ {limits.min_topic_agreement}), macro-F1 {f1_onnx:.4f} vs {f1_torch:.4f} "
            f"(drop ≤ {limits.max_macro_f1_drop} allowed)"
        )
    return parity
