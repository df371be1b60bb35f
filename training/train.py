"""Training a multi-task model version from labelled messages.

Modes:
* `fast` — the encoder stays frozen; sentence embeddings are computed once and
  only the heads learn (minutes on 2 cores).
* `full` — the encoder is fine-tuned with the heads; the word-embedding matrix
  stays frozen by default (DESIGN.md measured 1.1 GB and 0.7 s/step at batch 16,
  against 3.4 GB and 3.1 s/step with it trainable).

A validation split is carved from the training data (stratified by topic,
augmented copies kept with their source) for early stopping, temperature
scaling and flag thresholds; the evaluation split only measures.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.heads import FLAG_NAMES, HeadConfig, HeadOutputs, read_heads, sigmoid, softmax
from model.manifest import TOKENIZER_FILE, write_manifest
from model.taxonomy import Taxonomy
from model.text import prepare_for_model
from training.augment import augment
from training.encoders import EncoderSource, load_encoder, load_tokenizer, pad_id_of, resolve_backbone
from training.messages import LabelledMessage
from training.metrics import best_threshold, score_outputs
from training.multitask import Heads, MultiTaskClassifier

log = logging.getLogger("tsur.train")
CHECKPOINT = "checkpoint"
IGNORE = -100


@dataclass
class TrainSettings:
    mode: str = "fast"
    backbone: str = "e5-small"
    trim_vocabulary: bool = True
    max_length: int = 256
    epochs: int | None = None
    batch_size: int = 16
    learning_rate: float | None = None
    seed: int = 13
    patience: int | None = None
    validation_fraction: float = 0.12
    augment_copies: int = 1
    freeze_word_embeddings: bool = True
    # Fine-tune only the top N transformer layers (None: all). Lower layers then need
    # no backward pass, which is most of a step's cost on a CPU.
    train_layers: int | None = None
    class_weighting: bool = True
    head_hidden: int | None = None
    flag_target_precision: float | None = None
    executor_min_examples: int = 3
    threads: int | None = None

    def resolved(self) -> TrainSettings:
        if self.mode not in ("fast", "full"):
            raise ValueError(f"mode must be 'fast' or 'full', not {self.mode!r}")
        fast = self.mode == "fast"
        defaults = {
            "epochs": 300 if fast else 4,
            "learning_rate": 2e-3 if fast else 5e-5,
            "patience": 15 if fast else 2,
            "head_hidden": 512 if fast else 0,
        }
        values = asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        return TrainSettings(**values)


@dataclass
class LabelSpace:
    topics: list[str]
    categories: list[str]
    category_topic: dict[str, str]
    executors: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, taxonomy: Taxonomy, messages: Sequence[LabelledMessage], executor_min_examples: int
    ) -> LabelSpace:
        counts = Counter(m.executor for m in messages if m.executor)
        executors = sorted(e for e, n in counts.items() if n >= executor_min_examples)
        if len(executors) < 2:
            executors = []
        names = {t.code: t.name for t in taxonomy.topics}
        names.update({c: taxonomy.category(c).name for c in taxonomy.category_codes})
        return cls(
            topics=taxonomy.topic_codes,
            categories=taxonomy.category_codes,
            category_topic={c: taxonomy.category(c).topic for c in taxonomy.category_codes},
            executors=executors,
            names=names,
        )

    def head_config(self) -> HeadConfig:
        return HeadConfig(self.topics, self.categories, self.category_topic, self.executors)

    def targets(self, messages: Sequence[LabelledMessage]) -> dict[str, torch.Tensor]:
        topic_index = {c: i for i, c in enumerate(self.topics)}
        category_index = {c: i for i, c in enumerate(self.categories)}
        executor_index = {c: i for i, c in enumerate(self.executors)}
        flags = torch.tensor(
            [
                [float(getattr(m, f)) if getattr(m, f) is not None else math.nan for f in FLAG_NAMES]
                for m in messages
            ]
        )
        return {
            "topic": torch.tensor([topic_index[m.topic] for m in messages]),
            "category": torch.tensor([category_index.get(m.category, IGNORE) for m in messages]),
            "flags": flags,
            "executor": torch.tensor([executor_index.get(m.executor, IGNORE) for m in messages]),
        }


@dataclass
class TrainedModel:
    model: MultiTaskClassifier
    source: EncoderSource
    labels: LabelSpace
    heads: HeadConfig
    settings: TrainSettings
    pad_id: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    sizes: dict[str, int]
    seconds: float


Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def split_validation(
    messages: Sequence[LabelledMessage], fraction: float, seed: int
) -> tuple[list[LabelledMessage], list[LabelledMessage]]:
    """Stratified by topic; every message whose id roots at the same source stays together."""
    rng = random.Random(seed)
    by_topic: dict[str, list[str]] = {}
    for m in messages:
        root = m.augmented_from or m.id
        group = by_topic.setdefault(m.topic, [])
        if root not in group:
            group.append(root)
    held_out: set[str] = set()
    for roots in by_topic.values():
        rng.shuffle(roots)
        held_out.update(roots[: max(1, round(len(roots) * fraction))] if len(roots) > 3 else [])
    train = [m for m in messages if (m.augmented_from or m.id) not in held_out]
    validation = [m for m in messages if (m.augmented_from or m.id) in held_out and not m.augmented_from]
    return train, validation


def train_model(
    messages: Sequence[LabelledMessage],
    eval_messages: Sequence[LabelledMessage],
    taxonomy: Taxonomy,
    settings: TrainSettings,
    progress: Progress = _no_progress,
) -> TrainedModel:
    settings = settings.resolved()
    started = time.time()
    _seed_everything(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    unlabelled = [m.id for m in messages if m.topic is None]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} training message(s) have no topic, e.g. {unlabelled[:3]}")
    train, validation = split_validation(
        [m for m in messages if not m.augmented_from], settings.validation_fraction, settings.seed
    )
    if settings.augment_copies:
        train = train + augment(train, copies=settings.augment_copies, seed=settings.seed)
    labels = LabelSpace.build(taxonomy, train, settings.executor_min_examples)

    source = resolve_backbone(settings.backbone, [m.text for m in messages], trim=settings.trim_vocabulary)
    tokenizer = load_tokenizer(source.tokenizer_json(), settings.max_length)
    pad_id = pad_id_of(tokenizer)
    encoder = load_encoder(source)
    heads = Heads(
        encoder.config.hidden_size,
        len(labels.topics),
        len(labels.categories),
        len(labels.executors),
        head_hidden=settings.head_hidden,
    )
    model = MultiTaskClassifier(encoder, heads)

    def ids(batch: Sequence[LabelledMessage]) -> list[list[int]]:
        texts = [source.prefix + prepare_for_model(m.text) for m in batch]
        return [e.ids for e in tokenizer.encode_batch(texts)]

    encoded = {"train": ids(train), "validation": ids(validation), "eval": ids(eval_messages)}
    targets = {"train": labels.targets(train), "validation": labels.targets(validation)}
    weights = _class_weights(targets["train"], labels, settings.class_weighting)

    if settings.mode == "fast":
        history = _train_fast(model, encoded, targets, weights, settings, pad_id, progress)
    else:
        history = _train_full(model, encoded, targets, weights, settings, pad_id, progress)

    model.eval()
    head_config = labels.head_config()
    validation_logits = run_logits(model, encoded["validation"], pad_id)
    head_config.temperatures = fit_temperatures(validation_logits, targets["validation"], labels)
    validation_outputs = logits_to_outputs(head_config, validation_logits)
    for fi, flag in enumerate(FLAG_NAMES):
        truth = targets["validation"]["flags"][:, fi].numpy()
        known = ~np.isnan(truth)
        head_config.flag_thresholds[flag] = best_threshold(
            validation_outputs.flag_probs[known, fi], truth[known].astype(int), settings.flag_target_precision
        )
    eval_outputs = logits_to_outputs(head_config, run_logits(model, encoded["eval"], pad_id))
    metrics = {
        "validation": score_outputs(validation, validation_outputs, head_config),
        "eval": score_outputs(eval_messages, eval_outputs, head_config),
    }
    sizes = {
        "train": len(train),
        "train_augmented": sum(1 for m in train if m.augmented_from),
        "validation": len(validation),
        "eval": len(eval_messages),
    }
    return TrainedModel(
        model, source, labels, head_config, settings, pad_id, metrics, history, sizes, time.time() - started
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _class_weights(
    targets: dict[str, torch.Tensor], labels: LabelSpace, enabled: bool
) -> dict[str, torch.Tensor | None]:
    """Inverse square-root frequency: rare classes count more without drowning the rest."""

    def inverse_sqrt(values: torch.Tensor, n: int) -> torch.Tensor | None:
        if not enabled:
            return None
        counts = torch.bincount(values[values >= 0], minlength=n).float()
        weights = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))
        return weights * (counts > 0).sum() / weights.sum()

    flags = targets["flags"]
    positives = torch.nansum(flags, dim=0)
    known = (~torch.isnan(flags)).sum(dim=0).float()
    pos_weight = ((known - positives) / positives.clamp(min=1)).sqrt() if enabled else None
    return {
        "topic": inverse_sqrt(targets["topic"], len(labels.topics)),
        "category": inverse_sqrt(targets["category"], len(labels.categories)),
        "executor": inverse_sqrt(targets["executor"], max(len(labels.executors), 1)),
        "flags": pos_weight,
    }


def _loss(
    out: dict[str, torch.Tensor], target: dict[str, torch.Tensor], weights: dict[str, torch.Tensor | None]
) -> torch.Tensor:
    loss = nn.functional.cross_entropy(out["topic"], target["topic"], weight=weights["topic"])
    if (target["category"] >= 0).any():
        loss = loss + nn.functional.cross_entropy(
            out["category"], target["category"], weight=weights["category"], ignore_index=IGNORE
        )
    known = ~torch.isnan(target["flags"])
    if known.any():
        per_item = nn.functional.binary_cross_entropy_with_logits(
            out["flags"], torch.nan_to_num(target["flags"]), pos_weight=weights["flags"], reduction="none"
        )
        loss = loss + (per_item * known).sum() / known.sum()
    if "executor" in out and (target["executor"] >= 0).any():
        loss = loss + 0.5 * nn.functional.cross_entropy(
            out["executor"], target["executor"], weight=weights["executor"], ignore_index=IGNORE
        )
    return loss


def _take(target: dict[str, torch.Tensor], index: torch.Tensor | list[int]) -> dict[str, torch.Tensor]:
    return {k: v[index] for k, v in target.items()}


def _batches(
    sequences: list[list[int]], batch_size: int, shuffle: bool, rng: random.Random | None = None
) -> list[list[int]]:
    """Index batches of similar length: little padding, and shuffled at the batch level."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    if shuffle and rng is not None:
        # Shuffle inside windows of similar length so batches differ between epochs.
        window = batch_size * 8
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            rng.shuffle(chunk)
            order[start : start + window] = sorted(chunk, key=lambda i: len(sequences[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and rng is not None:
        rng.shuffle(batches)
    return batches


def _pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


@torch.no_grad()
def pooled_embeddings(
    model: MultiTaskClassifier,
    sequences: list[list[int]],
    pad_id: int,
    batch_size: int = 32,
    progress: Progress = _no_progress,
    stage: str = "embed",
) -> torch.Tensor:
    model.eval()
    result = torch.zeros((len(sequences), model.encoder.config.hidden_size))
    batches = _batches(sequences, batch_size, shuffle=False)
    for n, batch in enumerate(batches):
        ids, mask = _pad([sequences[i] for i in batch], pad_id)
        result[batch] = model.pooled(ids, mask)
        progress(stage, n + 1, len(batches))
    return result


@torch.no_grad()
def run_logits(
    model: MultiTaskClassifier, sequences: list[list[int]], pad_id: int, batch_size: int = 32
) -> dict[str, np.ndarray]:
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    order: list[int] = []
    for batch in _batches(sequences, batch_size, shuffle=False):
        ids, mask = _pad([sequences[i] for i in batch], pad_id)
        out = model(ids, mask)
        for key, value in out.items():
            collected.setdefault(key, []).append(value)
        order.extend(batch)
    restore = np.argsort(order)
    return {k: torch.cat(v).numpy()[restore] for k, v in collected.items()}


def logits_to_outputs(config: HeadConfig, logits: dict[str, np.ndarray]) -> HeadOutputs:
    return read_heads(config, logits["topic"], logits["category"], logits["flags"], logits.get("executor"))


def _train_fast(model, encoded, targets, weights, settings, pad_id, progress):
    features = {
        split: pooled_embeddings(model, encoded[split], pad_id, progress=progress, stage=f"embed {split}")
        for split in ("train", "validation")
    }
    heads = model.heads
    optimizer = torch.optim.AdamW(heads.parameters(), lr=settings.learning_rate, weight_decay=1e-3)
    rng = torch.Generator().manual_seed(settings.seed)
    best_loss, best_state, stale, history = math.inf, None, 0, []
    n = features["train"].shape[0]
    for epoch in range(settings.epochs):
        heads.train()
        permutation = torch.randperm(n, generator=rng)
        for start in range(0, n, 64):
            index = permutation[start : start + 64]
            loss = _loss(heads(features["train"][index]), _take(targets["train"], index), weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        heads.eval()
        with torch.no_grad():
            val_loss = float(_loss(heads(features["validation"]), targets["validation"], weights))
        history.append({"epoch": epoch + 1, "validation_loss": round(val_loss, 5)})
        progress("train heads", epoch + 1, settings.epochs)
        if val_loss < best_loss - 1e-4:
            best_loss, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in heads.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    heads.load_state_dict(best_state)
    return history


def _train_full(model, encoded, targets, weights, settings, pad_id, progress):
    if settings.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if settings.train_layers is not None:
        layers = _transformer_layers(model.encoder)
        frozen = layers[: max(0, len(layers) - settings.train_layers)]
        for module in [model.encoder.embeddings, *frozen]:
            module.requires_grad_(False)
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": settings.learning_rate},
            {"params": model.heads.parameters(), "lr": settings.learning_rate * 20},
        ],
        weight_decay=0.01,
    )
    rng = random.Random(settings.seed)
    steps_per_epoch = math.ceil(len(encoded["train"]) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / (total - warmup)))
    )
    best_loss, best_state, stale, history, step = math.inf, None, 0, [], 0
    for epoch in range(settings.epochs):
        model.train()
        for batch in _batches(encoded["train"], settings.batch_size, shuffle=True, rng=rng):
            ids, mask = _pad([encoded["train"][i] for i in batch], pad_id)
            loss = _loss(model(ids, mask), _take(targets["train"], batch), weights)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            progress(f"fine-tune epoch {epoch + 1}/{settings.epochs}", step, total)
        logits = run_logits(model, encoded["validation"], pad_id)
        val_loss = float(
            _loss({k: torch.from_numpy(v) for k, v in logits.items()}, targets["validation"], weights)
        )
        history.append({"epoch": epoch + 1, "validation_loss": round(val_loss, 5)})
        if val_loss < best_loss - 1e-4:
            best_loss, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    model.load_state_dict(best_state)
    return history


def _transformer_layers(encoder: nn.Module) -> list[nn.Module]:
    for path in ("encoder.layer", "layers", "transformer.layer", "h"):
        node = encoder
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList):
            return list(node)
    raise ValueError(f"cannot find the transformer layers of {type(encoder).__name__} to freeze")


def fit_temperatures(
    logits: dict[str, np.ndarray], target: dict[str, torch.Tensor], labels: LabelSpace
) -> dict[str, float]:
    """Temperature scaling per head: the scalar that minimises validation log-loss."""
    grid = np.exp(np.linspace(math.log(0.2), math.log(10.0), 120))

    def pick(nll: Callable[[float], float]) -> float:
        return float(round(min(grid, key=nll), 4))

    temperatures: dict[str, float] = {}
    topic = target["topic"].numpy()
    temperatures["topic"] = pick(
        lambda t: -np.log(softmax(logits["topic"], t)[np.arange(len(topic)), topic] + 1e-12).mean()
    )

    category = target["category"].numpy()
    rows = np.flatnonzero(category >= 0)
    if rows.size:
        category_topic = np.array([labels.topics.index(labels.category_topic[c]) for c in labels.categories])

        def category_nll(t: float) -> float:
            total = 0.0
            for r in rows:
                members = np.flatnonzero(category_topic == category_topic[category[r]])
                probs = softmax(logits["category"][r, members], t)
                total -= math.log(probs[list(members).index(category[r])] + 1e-12)
            return total / rows.size

        temperatures["category"] = pick(category_nll)

    flags = target["flags"].numpy()
    for fi, flag in enumerate(FLAG_NAMES):
        known = ~np.isnan(flags[:, fi])
        if known.sum() and 0 < flags[known, fi].sum() < known.sum():
            y = flags[known, fi]
            z = logits["flags"][known, fi]
            temperatures[f"flag.{flag}"] = pick(
                lambda t, y=y, z=z: (
                    -np.mean(y * np.log(sigmoid(z, t) + 1e-12) + (1 - y) * np.log(1 - sigmoid(z, t) + 1e-12))
                )
            )

    if "executor" in logits:
        executor = target["executor"].numpy()
        rows = np.flatnonzero(executor >= 0)
        if rows.size:
            temperatures["executor"] = pick(
                lambda t: (
                    -np.log(
                        softmax(logits["executor"][rows], t)[np.arange(rows.size), executor[rows]] + 1e-12
                    ).mean()
                )
            )
    return temperatures


def new_version_id(mode: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{mode}-{random.Random().randrange(16**4):04x}"


def save_version(
    trained: TrainedModel,
    version_dir: Path,
    taxonomy: Taxonomy,
    data_files: Sequence[dict[str, Any]],
    version: str,
    eval_source: str = "",
) -> Path:
    """Write the checkpoint, the tokenizer and the manifest into a new version directory."""
    version_dir = Path(version_dir)
    if version_dir.exists() and any(version_dir.iterdir()):
        raise FileExistsError(f"{version_dir} exists and is not empty")
    checkpoint = version_dir / CHECKPOINT
    checkpoint.mkdir(parents=True, exist_ok=True)
    trained.model.encoder.save_pretrained(checkpoint / "encoder")
    torch.save(trained.model.heads.state_dict(), checkpoint / "heads.pt")
    (version_dir / TOKENIZER_FILE).write_bytes(trained.source.tokenizer_json().read_bytes())
    config = trained.model.encoder.config
    manifest = {
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "taxonomy_hash": taxonomy.hash,
        "taxonomy_sources": list(taxonomy.sources),
        "labels": {
            "topics": trained.labels.topics,
            "categories": trained.labels.categories,
            "category_topic": trained.labels.category_topic,
            "executors": trained.labels.executors,
            "names": trained.labels.names,
        },
        "backbone": {
            "spec": trained.source.spec,
            "provenance": trained.source.provenance,
            "prefix": trained.source.prefix,
            "max_length": trained.settings.max_length,
            "pad_id": trained.pad_id,
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
            "vocabulary": config.vocab_size,
        },
        "heads": trained.heads.to_manifest(),
        "head_architecture": {"head_hidden": trained.settings.head_hidden},
        "metrics": {**trained.metrics, "eval_source": eval_source},
        "training": {
            "settings": asdict(trained.settings),
            "data": list(data_files),
            "sizes": trained.sizes,
            "history": trained.history,
            "seconds": round(trained.seconds, 1),
        },
    }
    (version_dir / "training-log.json").write_text(
        json.dumps({"history": trained.history, "metrics": trained.metrics}, indent=1), encoding="utf-8"
    )
    write_manifest(version_dir, manifest)
    return version_dir


def load_checkpoint(version_dir: Path, manifest: dict[str, Any]) -> MultiTaskClassifier:
    from transformers import AutoModel

    checkpoint = Path(version_dir) / CHECKPOINT
    if not (checkpoint / "heads.pt").exists():
        raise FileNotFoundError(f"{version_dir}: no training checkpoint to export from")
    try:
        encoder = AutoModel.from_pretrained(checkpoint / "encoder", add_pooling_layer=False)
    except TypeError:
        encoder = AutoModel.from_pretrained(checkpoint / "encoder")
    labels = manifest["labels"]
    heads = Heads(
        encoder.config.hidden_size,
        len(labels["topics"]),
        len(labels["categories"]),
        len(labels.get("executors", [])),
        head_hidden=manifest.get("head_architecture", {}).get("head_hidden", 0),
    )
    heads.load_state_dict(torch.load(checkpoint / "heads.pt", weights_only=True))
    model = MultiTaskClassifier(encoder, heads)
    model.eval()
    return model
