"""Tokenizers: characters (exact, reversible, tiny vocabulary) and byte-pair encoding trained on
the corpus with the Hugging Face ``tokenizers`` library.

Both save to / load from JSON (stored inside training checkpoints)."""

from __future__ import annotations

import json
from collections.abc import Iterable

__all__ = ["BPETokenizer", "CharTokenizer", "tokenizer_from_json"]


class CharTokenizer:
    """One id per distinct character of the training text, in sorted order."""

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = sorted(set(chars))
        if not self.chars:
            raise ValueError("cannot build a character tokenizer from an empty text")
        self._ids = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The characters of ``text`` outside the vocabulary, sorted, each once."""
        return sorted({c for c in text if c not in self._ids})

    def check(self, text: str) -> None:
        """Refuse ``text`` if it holds characters outside the vocabulary, naming them."""
        unknown = self.unknown(text)
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]!r}")

    def encode(self, text: str) -> list[int]:
        self.check(text)
        return [self._ids[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "chars": self.chars})


class BPETokenizer:
    """Byte-level BPE trained with the ``tokenizers`` library; ids 0–2 are <pad>, <bos>, <eos>."""

    kind = "bpe"
    SPECIALS = ("<pad>", "<bos>", "<eos>")

    def __init__(self, tokenizer) -> None:  # a tokenizers.Tokenizer
        self._tok = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=list(cls.SPECIALS), show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )  # fmt: skip
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @property
    def backend(self):  # -> the tokenizers.Tokenizer
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def pad_id(self) -> int:
        return self._tok.token_to_id("<pad>")

    @property
    def bos_id(self) -> int:
        return self._tok.token_to_id("<bos>")

    @property
    def eos_id(self) -> int:
        return self._tok.token_to_id("<eos>")

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "tokenizer": self._tok.to_str()})


def tokenizer_from_json(text: str) -> CharTokenizer | BPETokenizer:
    data = json.loads(text)
    if data.get("kind") == "char":
        return CharTokenizer(data["chars"])
    if data.get("kind") == "bpe":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(data["tokenizer"]))
    raise ValueError(f"unknown tokenizer kind {data.get('kind')!r}; expected 'char' or 'bpe'")
