"""One shared encoder, one head per task.

Heads: topic (softmax), category (softmax over all categories; inference
keeps the categories of the chosen topic), three flags (independent
sigmoids), and optionally the executor (softmax over responsible bodies).  The
pooled sentence embedding is an output too: event clustering uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from model.heads import FLAG_NAMES  # noqa: F401  (one list of flags everywhere)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class Heads(nn.Module):
    def __init__(
        self,
        hidden: int,
        n_topics: int,
        n_categories: int,
        n_executors: int = 0,
        head_hidden: int = 0,
        dropout: float = 0.1,
    ):
        super().__init__()
        if head_hidden:
            self.neck: nn.Module = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(hidden, head_hidden), nn.GELU()
            )
            width = head_hidden
        else:
            self.neck = nn.Identity()
            width = hidden
        self.dropout = nn.Dropout(dropout)
        self.topic = nn.Linear(width, n_topics)
        self.category = nn.Linear(width, n_categories)
        self.flags = nn.Linear(width, len(FLAG_NAMES))
        self.executor = nn.Linear(width, n_executors) if n_executors else None

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.dropout(self.neck(pooled))
        out = {
            "topic": self.topic(features),
            "category": self.category(features),
            "flags": self.flags(features),
        }
        if self.executor is not None:
            out["executor"] = self.executor(features)
        return out


class MultiTaskClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, heads: Heads):
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.pooled(input_ids, attention_mask)
        out = self.heads(pooled)
        out["embedding"] = nn.functional.normalize(pooled, dim=-1)
        return out


class ExportWrapper(nn.Module):
    """Positional outputs in a fixed order for ONNX."""

    def __init__(self, model: MultiTaskClassifier):
        super().__init__()
        self.model = model

    def output_names(self) -> list[str]:
        names = ["topic_logits", "category_logits", "flag_logits"]
        if self.model.heads.executor is not None:
            names.append("executor_logits")
        return [*names, "embedding"]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.model(input_ids, attention_mask)
        values = [out["topic"], out["category"], out["flags"]]
        if "executor" in out:
            values.append(out["executor"])
        return (*values, out["embedding"])
