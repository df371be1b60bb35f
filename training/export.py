"""ONNX export, INT8 quantisation and the parity gate.

One graph returns every head and the pooled embedding.  Quantisation schemes
are tried from the fastest to the most faithful; the first whose graph agrees
with the PyTorch model — top-1 topic agreement at least 99% and topic
macro-F1 at most one point lower on the evaluation texts — is kept.  If none
does, the export fails and the version stays without a servable graph.

The schemes:
* `dynamic` — INT8 weights per tensor, activations quantised per tensor at run
  time (onnxruntime's dynamic quantisation): the fastest on CPUs;
* `dynamic-per-channel` — the same with one weight scale per output channel;
* `blockwise` — INT8 weights in blocks of 32 with their own scales, activations
  quantised block-wise inside the kernel (MatMulNBits, accuracy level 4):
  slower than `dynamic`, but it keeps small decision margins intact, which a
  frozen encoder with trained heads needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.heads import HeadConfig
from model.manifest import ONNX_FILE, read_manifest, write_manifest
from model.predictor import Predictor
from training.messages import LabelledMessage
from training.metrics import macro_f1, score_outputs
from training.multitask import ExportWrapper
from training.train import load_checkpoint, logits_to_outputs, run_logits

OPSET = 17
FP32_FILE = "model.fp32.onnx"


class ExportGateError(RuntimeError):
    """No quantised graph behaves like the model it came from."""


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


def _dynamic(per_channel: bool) -> Callable[[Path, Path], None]:
    def quantize(source: Path, target: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)

    return quantize


def _blockwise(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(source)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)


SCHEMES: dict[str, tuple[str, Callable[[Path, Path], None]]] = {
    "dynamic": ("dynamic INT8, per-tensor weights and activations", _dynamic(False)),
    "dynamic-per-channel": ("dynamic INT8, per-channel weights", _dynamic(True)),
    "blockwise": ("INT8 weights in blocks of 32, block-wise INT8 activations (MatMulNBits)", _blockwise),
}


def export_version(
    version_dir: Path,
    eval_messages: Sequence[LabelledMessage],
    limits: ParityLimits | None = None,
    schemes: Sequence[str] = tuple(SCHEMES),
    keep_fp32: bool = False,
) -> dict[str, Any]:
    """Export, quantise and gate a trained version; updates its manifest on success."""
    limits = limits or ParityLimits()
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise ValueError(f"unknown quantisation scheme(s) {unknown}; known: {list(SCHEMES)}")
    if not eval_messages:
        raise ExportGateError("no evaluation texts to check the exported graph against")
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    manifest.pop("export", None)
    model = load_checkpoint(version_dir, manifest)
    started = time.time()
    fp32 = version_dir / FP32_FILE
    graph = version_dir / ONNX_FILE
    export_onnx(model, fp32)

    head_config = HeadConfig.from_manifest(manifest)
    texts = [m.text for m in eval_messages]
    truth = [m.topic for m in eval_messages]
    reference: np.ndarray | None = None
    tried = []
    for name in schemes:
        description, quantize = SCHEMES[name]
        quantize(fp32, graph)
        write_manifest(version_dir, manifest)  # the predictor checks every file's hash
        predictor = Predictor(version_dir)
        if reference is None:
            logits = run_logits(model, predictor.encode(texts), predictor.pad_id)
            reference = logits_to_outputs(head_config, logits).topic_probs.argmax(axis=1)
        outputs = predictor.run(texts).heads
        quantized = outputs.topic_probs.argmax(axis=1)
        parity = _parity(reference, quantized, truth, head_config, limits)
        tried.append({"scheme": name, **parity})
        if parity["passed"]:
            if not keep_fp32:
                fp32.unlink(missing_ok=True)
            manifest["export"] = {
                "opset": OPSET,
                "quantization": {"scheme": name, "description": description},
                "parity": parity,
                "schemes_tried": tried,
                # the scores of the graph that will actually serve
                "metrics": score_outputs(eval_messages, outputs, predictor.heads),
                "seconds": round(time.time() - started, 1),
                "size_bytes": graph.stat().st_size,
            }
            write_manifest(version_dir, manifest)
            return manifest["export"]
    graph.unlink(missing_ok=True)
    fp32.unlink(missing_ok=True)
    write_manifest(version_dir, manifest)
    summary = "; ".join(
        f"{t['scheme']}: topic agreement {t['topic_agreement']:.4f}, macro-F1 drop {t['macro_f1_drop']:.4f}"
        for t in tried
    )
    raise ExportGateError(
        f"no INT8 graph passes the parity gate (agreement ≥ {limits.min_topic_agreement}, "
        f"macro-F1 drop ≤ {limits.max_macro_f1_drop}): {summary}"
    )


def _parity(
    reference: np.ndarray,
    quantized: np.ndarray,
    truth: Sequence[str],
    head_config: HeadConfig,
    limits: ParityLimits,
) -> dict[str, Any]:
    agreement = float(np.mean(reference == quantized))
    f1_torch = macro_f1(truth, [head_config.topics[i] for i in reference])
    f1_int8 = macro_f1(truth, [head_config.topics[i] for i in quantized])
    drop = f1_torch - f1_int8
    return {
        "texts": len(truth),
        "topic_agreement": round(agreement, 4),
        "topic_macro_f1_torch": round(f1_torch, 4),
        "topic_macro_f1_int8": round(f1_int8, 4),
        "macro_f1_drop": round(drop, 4),
        "limits": {
            "min_topic_agreement": limits.min_topic_agreement,
            "max_macro_f1_drop": limits.max_macro_f1_drop,
        },
        "passed": agreement >= limits.min_topic_agreement and drop <= limits.max_macro_f1_drop,
    }
