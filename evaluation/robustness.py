"""How a model version holds up when people write the way they do.

Variants of the held-out test split — typos, no punctuation, all lower case,
CAPS, the first few words only, long posts cut short — and the hand-written
two-topic set, all through the served onnxruntime path.  Reported as the same
scores as on clean text, so the drop is visible at a glance.

    python -m evaluation.robustness [--model VERSION] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from model.gazetteer import load_gazetteer
from model.paths import default_corpus_dir
from model.predictor import Predictor
from model.registry import ModelRegistry
from model.taxonomy import load_taxonomy
from training.augment import caps, lower_case, no_punctuation, typos
from training.dataset import load_dataset
from training.messages import LabelledMessage
from training.metrics import score_outputs


def _first_words(n: int) -> Callable[[str, random.Random], str]:
    def cut(text: str, rng: random.Random) -> str:
        return " ".join(text.split()[:n])

    return cut


VARIANTS: dict[str, Callable[[str, random.Random], str]] = {
    "clean": lambda text, rng: text,
    "typos (≈1 in 4 words)": lambda text, rng: typos(text, rng, rate=0.25),
    "no punctuation": no_punctuation,
    "lower case, ё→е": lower_case,
    "CAPS": caps,
    "first 6 words": _first_words(6),
}


def variant_scores(
    predictor: Predictor, messages: Sequence[LabelledMessage], seed: int = 5
) -> dict[str, dict[str, Any]]:
    results = {}
    for name, change in VARIANTS.items():
        rng = random.Random(seed)
        changed = [replace(m, text=change(m.text, rng)) for m in messages]
        outputs = predictor.run([m.text for m in changed]).heads
        results[name] = score_outputs(changed, outputs, predictor.heads)
    long_posts = [m for m in messages if len(m.text.split()) >= 80]
    if long_posts:
        outputs = predictor.run([m.text for m in long_posts]).heads
        results[f"long posts only ({len(long_posts)})"] = score_outputs(long_posts, outputs, predictor.heads)
    return results


def two_topic_scores(predictor: Predictor, path: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    probs = predictor.run([r["text"] for r in rows]).heads.topic_probs
    topics = predictor.heads.topics
    order = np.argsort(-probs, axis=1)
    main_top1 = np.mean([topics[order[i, 0]] == r["topic"] for i, r in enumerate(rows)])
    either_top1 = np.mean(
        [topics[order[i, 0]] in (r["topic"], r["second_topic"]) for i, r in enumerate(rows)]
    )
    both_top2 = np.mean(
        [
            {topics[order[i, 0]], topics[order[i, 1]]} == {r["topic"], r["second_topic"]}
            for i, r in enumerate(rows)
        ]
    )
    return {
        "n": len(rows),
        "main_topic_top1": round(float(main_top1), 4),
        "either_topic_top1": round(float(either_top1), 4),
        "both_topics_in_top2": round(float(both_top2), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="version name or directory (default: the current one)")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    registry = ModelRegistry(args.models_dir)
    path = (
        Path(args.model)
        if args.model and Path(args.model).is_dir()
        else (registry.path(args.model) if args.model else registry.current_path())
    )
    if path is None:
        print("no model version is served yet: run `tsur train`", file=sys.stderr)
        return 1
    taxonomy = load_taxonomy()
    predictor = Predictor(path, taxonomy=taxonomy)
    test = load_dataset([default_corpus_dir() / "test"], taxonomy, load_gazetteer()).messages
    report = {
        "model": predictor.version,
        "test_split": variant_scores(predictor, test),
        "two_topics": two_topic_scores(predictor, default_corpus_dir() / "robustness" / "two_topics.jsonl"),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0
    print(f"model {report['model']} on the test split ({len(test)} messages)")
    print(
        f"{'variant':28} {'topic F1':>9} {'category F1':>12} {'incident':>9} {'conflict':>9} {'misinfo':>9}"
    )
    for name, s in report["test_split"].items():
        print(
            f"{name:28} {s['topic']['macro_f1']:9.3f} {s['category']['macro_f1']:12.3f} "
            f"{s['incident']['f1']:9.3f} {s['conflict']['f1']:9.3f} {s['misinformation']['f1']:9.3f}"
        )
    t = report["two_topics"]
    print(
        f"two-topic messages ({t['n']}): main topic top-1 {t['main_topic_top1']:.3f}, "
        f"either topic top-1 {t['either_topic_top1']:.3f}, both in top-2 {t['both_topics_in_top2']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
