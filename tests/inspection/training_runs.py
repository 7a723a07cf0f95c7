"""Tiny training runs written as `attnlab train` writes them (``RUN/checkpoint.safetensors``:
weights, optimizer state, and the config and tokenizer(s) as training metadata), with random
weights, built directly and saved with the training checkpoint writer (no corpus is read):

- an "lm" run: a GPT with a character tokenizer over ``ALPHABET``;
- a BPE "lm" run: a GPT with a byte-level BPE of 300 tokens (``BPE_VOCAB``), so most words are
  split into pieces, while "fué" is one token (``ĠfuÃ©`` as byte-level BPE writes it);
- a "translate" run: an EncoderDecoder with byte-level BPE tokenizers trained on a few English
  and Spanish sentences.

Weights are scaled up so attention is peaked and top keys are clear of ties."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from attnlab.data.tokenizers import BPETokenizer, CharTokenizer
from attnlab.train.checkpoint import save_training
from attnlab.train.config import TrainConfig
from attnlab.train.tasks import build_model_and_tokenizers

ALPHABET = "\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ENGLISH = ["And God said, Let there be light: and there was light.",
           "In the beginning God created the heaven and the earth.",
           "the cat sat on the mat and the dog sat on the log"]  # fmt: skip
SPANISH = ["Y dijo Dios: Sea la luz: y fué la luz.",
           "En el principio crió Dios los cielos y la tierra.",
           "el gato se sentó en la alfombra y el perro en el tronco"]  # fmt: skip
BPE_VOCAB = 300  # the 256 bytes, 3 special tokens and 41 merges
BPE_EXTRA = "y fué, y fué: qué fué él"  # makes "Ġfué" (and "ué") pieces
SIZES = dict(n_layers=2, n_heads=2, d_model=16, d_ff=32, context=64, seed=0)


def write_run(folder: Path, config: TrainConfig, tokenizer_json: str, scale: float) -> Path:
    """Build the run's model from its config and tokenizer(s) as a resumed run would, scale its
    matrices, and save it with the training checkpoint writer."""
    torch.manual_seed(0)
    model, _ = build_model_and_tokenizers(config, tokenizer_json)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale if p.dim() == 2 else 1)
    optimizer = torch.optim.AdamW(model.parameters())
    return save_training(folder / "checkpoint.safetensors", model, optimizer, 0, config,
                         tokenizer_json)  # fmt: skip


def lm_run(folder: Path) -> Path:
    config = TrainConfig(task="lm", corpus="corpus.txt", tokenizer="char", out_dir=str(folder),
                         **SIZES)  # fmt: skip
    return write_run(folder, config, CharTokenizer(ALPHABET).to_json(), scale=8.0)


def bpe_lm_run(folder: Path) -> Path:
    config = TrainConfig(task="lm", corpus="corpus.txt", tokenizer="bpe", bpe_vocab=BPE_VOCAB,
                         out_dir=str(folder), **SIZES)  # fmt: skip
    tokenizer = BPETokenizer.train([*SPANISH, *ENGLISH, BPE_EXTRA], BPE_VOCAB)
    return write_run(folder, config, tokenizer.to_json(), scale=8.0)


def translation_run(folder: Path) -> Path:
    config = TrainConfig(task="translate", corpus="bible-en-es", tokenizer="bpe", bpe_vocab=1000,
                         out_dir=str(folder), **SIZES)  # fmt: skip
    # Every merge these sentences allow: whole words, accented letters included.
    both = {"src": BPETokenizer.train(ENGLISH, 1000).to_json(),
            "tgt": BPETokenizer.train(SPANISH, 1000).to_json()}  # fmt: skip
    return write_run(folder, config, json.dumps(both), scale=3.0)
