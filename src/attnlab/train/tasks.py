"""What is trained: data, tokenizers, batches and the model for each task.

Batches are a pure function of (seed, step, split): a resumed run draws exactly the batches the
uninterrupted run would have, with no data-loader state to save. Under data parallelism every
process builds the same global batch and keeps its own slice.

Dimension legend: B batch, T tokens (target side for translation), S source tokens.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from attnlab.data.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_json
from attnlab.data.windows import sample_windows
from attnlab.models.config import EncoderDecoderConfig, GPTConfig
from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.models.gpt import GPT
from attnlab.train.config import TrainConfig

__all__ = [
    "DEFAULT_NEW_TOKENS", "LMTask", "TranslationTask", "build_task", "limits", "source_limit",
    "target_limit", "tokenizers_from_json",
]  # fmt: skip

DEFAULT_NEW_TOKENS = 300  # what generation writes unless told (or fewer where positions end)


def source_limit(context: int) -> int:
    """The most source tokens a translation model of ``context`` positions reads: training cuts
    every source to context − 1 tokens. Translating (``attnlab generate``) and inspecting hold
    sources to the same limit."""
    return context - 1


def target_limit(context: int) -> int:
    """The most target tokens a translation model of ``context`` positions writes: training cuts
    every target to context − 1 tokens, so that the decoder's input (<bos> first) and its
    targets (<eos> last) fill the context. Generation writes at most (and by default) as many."""
    return context - 1


def limits(task: str, context: int) -> tuple[int, int]:
    """(the most tokens a model of ``task`` with ``context`` positions reads of a text — a
    translation's source —, the most decoder tokens, its start token included): a GPT's
    ``context`` for both; a translation's :func:`source_limit`, and its start token with
    :func:`target_limit` tokens after it."""
    if task == "translate":
        return source_limit(context), 1 + target_limit(context)
    return context, context


def tokenizers_from_json(config: TrainConfig, tokenizer_json: str) -> tuple:
    """The tokenizer(s) a run of ``config``'s task saved as ``tokenizer_json``: ``(tok,)`` for a
    language model, ``(source, target)`` for translation."""
    if config.task == "lm":
        return (tokenizer_from_json(tokenizer_json),)
    both = json.loads(tokenizer_json)
    return tuple(tokenizer_from_json(both[k]) for k in ("src", "tgt"))


def _read_text_corpus(name: str) -> str:
    if name == "shakespeare":
        from attnlab.data.shakespeare import read_plays

        return read_plays()
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"corpus {name!r} is neither 'shakespeare' nor a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (invalid byte at offset {err.start}); convert it, e.g. "
            "`iconv -f latin1 -t utf-8`"
        ) from None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _generator(seed: int, step: int, split: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 2 + (split == "val"))


@dataclass
class LMTask:
    """Next-token prediction on one text with a GPT."""

    config: TrainConfig
    tokenizer: CharTokenizer | BPETokenizer
    train_ids: Tensor  # (N_train,) int64
    val_ids: Tensor  # (N_val,)
    corpus_sha256: str | None = None  # of the text (a resumed run must train on the same)

    @classmethod
    def prepare(cls, config: TrainConfig, tokenizer_json: str | None = None) -> LMTask:
        text = _read_text_corpus(config.corpus)
        cut = int(len(text) * (1 - config.val_fraction))
        if tokenizer_json is not None:
            (tokenizer,) = tokenizers_from_json(config, tokenizer_json)
        elif config.tokenizer == "char":
            tokenizer = CharTokenizer.from_text(text)
        else:
            tokenizer = BPETokenizer.train([text[:cut]], config.bpe_vocab)
        train = torch.tensor(tokenizer.encode(text[:cut]), dtype=torch.long)
        val = torch.tensor(tokenizer.encode(text[cut:]), dtype=torch.long)
        need = config.context + 1
        for name, ids in (("training", train), ("validation", val)):
            if len(ids) < need + config.batch:
                raise ValueError(
                    f"the {name} split of {config.corpus!r} has {len(ids)} tokens: too few for "
                    f"one batch of {config.batch} sequences of {need} tokens"
                )
        return cls(config, tokenizer, train, val, sha256(text))

    def build_model(self) -> nn.Module:
        c = self.config
        return GPT(GPTConfig(
            vocab_size=self.tokenizer.vocab_size, max_len=c.context, n_layers=c.n_layers,
            n_heads=c.n_heads, d_model=c.d_model, d_ff=c.d_ff, dropout=c.dropout,
            activation=c.activation,
        ))  # fmt: skip

    def batch(self, step: int, split: str = "train") -> dict[str, Tensor]:
        ids = self.train_ids if split == "train" else self.val_ids
        g = _generator(self.config.seed, step, split)
        inputs, targets = sample_windows(ids, self.config.batch, self.config.context, g)
        return {"input_ids": inputs, "targets": targets}  # (B, T) each

    def tokenizer_json(self) -> str:
        return self.tokenizer.to_json()


@dataclass
class TranslationTask:
    """English → Spanish verse pairs with an EncoderDecoder (BPE on each side)."""

    config: TrainConfig
    src_tok: BPETokenizer
    tgt_tok: BPETokenizer
    train_pairs: list[tuple[list[int], list[int]]]
    val_pairs: list[tuple[list[int], list[int]]]
    val_text: list[tuple[str, str]]
    corpus_sha256: str | None = None  # of the verse pairs

    @classmethod
    def prepare(
        cls, config: TrainConfig, tokenizer_json: str | None = None, *,
        tokenizers: tuple | None = None,
    ) -> TranslationTask:  # fmt: skip
        """The verse pairs, split and encoded with new tokenizers, or a run's: ``tokenizers``
        (source, target) or their ``tokenizer_json``."""
        from attnlab.data.sword import parallel_verses

        if config.corpus != "bible-en-es":
            raise ValueError(f"translation supports corpus 'bible-en-es'; got {config.corpus!r}")
        pairs = parallel_verses("en", "es", max_words=config.max_words)
        random.Random(config.seed).shuffle(pairs)  # deterministic split
        n_val = max(1, int(len(pairs) * config.val_fraction))
        train, val = pairs[:-n_val], pairs[-n_val:]
        if tokenizers is None and tokenizer_json is not None:
            tokenizers = tokenizers_from_json(config, tokenizer_json)
        if tokenizers is not None:
            src_tok, tgt_tok = tokenizers
        else:
            src_tok = BPETokenizer.train([s for s, _ in train], config.bpe_vocab)
            tgt_tok = BPETokenizer.train([t for _, t in train], config.bpe_vocab)

        def encode(items: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
            src_n, tgt_n = source_limit(config.context), target_limit(config.context)
            return [(src_tok.encode(s)[:src_n], tgt_tok.encode(t)[:tgt_n]) for s, t in items]

        digest = sha256(json.dumps(pairs, ensure_ascii=False))
        return cls(config, src_tok, tgt_tok, encode(train), encode(val), val, digest)

    def build_model(self) -> nn.Module:
        c = self.config
        return EncoderDecoder(EncoderDecoderConfig(
            src_vocab_size=self.src_tok.vocab_size, tgt_vocab_size=self.tgt_tok.vocab_size,
            max_len=c.context, n_encoder_layers=c.n_layers, n_decoder_layers=c.n_layers,
            n_heads=c.n_heads, d_model=c.d_model, d_ff=c.d_ff, dropout=c.dropout,
            activation=c.activation,
        ))  # fmt: skip

    def batch(self, step: int, split: str = "train") -> dict[str, Tensor]:
        pairs = self.train_pairs if split == "train" else self.val_pairs
        g = _generator(self.config.seed, step, split)
        chosen = [pairs[i] for i in torch.randint(0, len(pairs), (self.config.batch,), generator=g)]
        return collate(chosen, self.src_tok, self.tgt_tok)

    def tokenizer_json(self) -> str:
        return json.dumps({"src": self.src_tok.to_json(), "tgt": self.tgt_tok.to_json()})


def collate(pairs: list[tuple[list[int], list[int]]], src_tok: BPETokenizer,
            tgt_tok: BPETokenizer) -> dict[str, Tensor]:  # fmt: skip
    """Pad a list of (source ids, target ids) into model inputs; targets −100 on padding."""
    S = max(len(s) for s, _ in pairs)
    T = max(len(t) for _, t in pairs) + 1
    src = torch.full((len(pairs), S), src_tok.pad_id, dtype=torch.long)
    tgt_in = torch.full((len(pairs), T), tgt_tok.pad_id, dtype=torch.long)
    targets = torch.full((len(pairs), T), -100, dtype=torch.long)
    for i, (s, t) in enumerate(pairs):
        src[i, : len(s)] = torch.tensor(s)
        tgt_in[i, : len(t) + 1] = torch.tensor([tgt_tok.bos_id, *t])
        targets[i, : len(t) + 1] = torch.tensor([*t, tgt_tok.eos_id])
    return {
        "src_ids": src, "tgt_ids": tgt_in, "targets": targets,
        "attention_mask": src != src_tok.pad_id, "decoder_attention_mask": tgt_in != tgt_tok.pad_id,
    }  # fmt: skip


def build_task(config: TrainConfig, tokenizer_json: str | None = None) -> LMTask | TranslationTask:
    cls = LMTask if config.task == "lm" else TranslationTask
    return cls.prepare(config, tokenizer_json)


def build_model_and_tokenizers(config: TrainConfig, tokenizer_json: str) -> tuple[nn.Module, tuple]:
    """The model and tokenizer(s) of a checkpoint, without reading the corpus."""
    tokenizers = tokenizers_from_json(config, tokenizer_json)
    if config.task == "lm":
        task = LMTask(config, *tokenizers, torch.empty(0, dtype=torch.long), torch.empty(0))
    else:
        task = TranslationTask(config, *tokenizers, [], [], [])
    return task.build_model(), tokenizers
