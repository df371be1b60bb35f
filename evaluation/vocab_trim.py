"""What trimming the default backbone's vocabulary does to size, speed and quality.

Compares the full rebuilt multilingual-e5-small with the trimmed copy on the
bundled corpus: same token ids?  same embeddings?  how large?  how fast (both
timed in one run, reported as a ratio)?

    python -m evaluation.vocab_trim [--texts 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model.gazetteer import load_gazetteer
from model.paths import default_corpus_dir
from model.taxonomy import load_taxonomy
from training.backbone import QUERY_PREFIX, build_default_backbone
from training.dataset import load_dataset
from training.encoders import load_tokenizer, quiet_transformers
from training.multitask import mean_pool
from training.vocab import trim_backbone


def _embed(path: Path, texts: Sequence[str]) -> tuple[np.ndarray, list[list[int]], float]:
    from transformers import BertModel

    tokenizer = load_tokenizer(path / "tokenizer.json", 256)
    model = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    ids = [e.ids for e in tokenizer.encode_batch([QUERY_PREFIX + t for t in texts])]
    vectors = []
    started = time.perf_counter()
    with torch.no_grad():
        for seq in ids:
            tensor = torch.tensor([seq])
            mask = torch.ones_like(tensor)
            hidden = model(input_ids=tensor, attention_mask=mask).last_hidden_state
            vectors.append(torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)[0])
    seconds = time.perf_counter() - started
    return torch.stack(vectors).numpy(), ids, seconds


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=300, help="texts to embed for speed and cosine")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    quiet_transformers()
    torch.set_num_threads(2)
    taxonomy = load_taxonomy()
    corpus = load_dataset([default_corpus_dir()], taxonomy, load_gazetteer()).messages
    train_texts = [m.text for m in corpus if m.split == "train"]
    test_texts = [m.text for m in corpus if m.split == "test"]
    full = build_default_backbone()
    with tempfile.TemporaryDirectory() as tmp:
        trimmed = Path(tmp) / "trimmed"
        info = trim_backbone(full, trimmed, [QUERY_PREFIX + t for t in train_texts])
        # Tokenisation of the whole test split: the trimming used only the train split.
        full_tok = load_tokenizer(full / "tokenizer.json", 256)
        trim_tok = load_tokenizer(trimmed / "tokenizer.json", 256)
        full_ids = full_tok.encode_batch([QUERY_PREFIX + t for t in test_texts])
        trim_ids = trim_tok.encode_batch([QUERY_PREFIX + t for t in test_texts])
        unk = trim_tok.token_to_id("<unk>")
        same_segmentation = np.mean(
            [len(a.ids) == len(b.ids) for a, b in zip(full_ids, trim_ids, strict=True)]
        )
        unknown_share = np.mean(
            [unk in b.ids and unk not in a.ids for a, b in zip(full_ids, trim_ids, strict=True)]
        )
        sample = test_texts[: args.texts]
        full_vectors, _, full_seconds = _embed(full, sample)
        trim_vectors, _, trim_seconds = _embed(trimmed, sample)
        cosine = (full_vectors * trim_vectors).sum(axis=1)
        report = {
            "pieces": {"full": info["original_pieces"], "trimmed": info["kept_pieces"]},
            "size_mb": {"full": round(_size(full) / 1e6, 1), "trimmed": round(_size(trimmed) / 1e6, 1)},
            "test_split_texts": len(test_texts),
            "same_segmentation_share": round(float(same_segmentation), 4),
            "texts_gaining_unk_share": round(float(unknown_share), 4),
            "embedding_cosine": {
                "min": round(float(cosine.min()), 6),
                "mean": round(float(cosine.mean()), 6),
            },
            "speed_texts": len(sample),
            "speed_ratio_trimmed_over_full": round(full_seconds / trim_seconds, 3),
        }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
