"""A tiny random BERT with a unigram tokenizer trained on the given texts.

Tests train, export and serve real models with it in seconds; what they check
is the machinery, not the quality.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def build_tiny_backbone(
    target: Path,
    texts: Sequence[str],
    vocab_size: int = 800,
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, unk_token="<unk>", special_tokens=["<s>", "<pad>", "</s>", "<unk>"]
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target / "tokenizer.json"))

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=514,
        pad_token_id=1,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(target)
    (target / "tsur-backbone.json").write_text(
        json.dumps({"name": "tiny-test-bert", "prefix": ""}), encoding="utf-8"
    )
    return target
