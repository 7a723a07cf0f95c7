"""Hugging Face faces of a training run's tokenizers (:mod:`attnlab.data.tokenizers`): the
inspection code calls tokenizers as Hugging Face's (``tokenizer(text, return_tensors="pt")``,
``convert_ids_to_tokens``, ``text_target=``), so a run's model is inspected by the same code as
any other. The ids are the run's own: ``hf_tokenizer(tok)(text)["input_ids"] ==
tok.encode(text)``.

- characters: a WordLevel vocabulary over the run's characters (each with the run's id), a
  pre-tokenizer that isolates every character (newlines and spaces included) and a decoder that
  concatenates; the tokens are the characters;
- byte-level BPE: the stored tokenizer with its <pad>, <bos> and <eos>; tokens are written as
  byte-level BPE writes them (``Ġ`` for a space), as GPT-2's are.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from attnlab.data.tokenizers import BPETokenizer, CharTokenizer

__all__ = ["CharTokenizerFast", "hf_tokenizer"]


class CharTokenizerFast(PreTrainedTokenizerFast):
    """A character tokenizer's face. A text with a character outside the run's vocabulary is
    refused naming the characters (the WordLevel model has no unknown token)."""

    alphabet: CharTokenizer

    def __call__(self, text=None, *args, text_target=None, **kwargs):
        for given in (text, text_target):
            for one in [given] if isinstance(given, str) else given or ():
                self.alphabet.check(one)
        return super().__call__(text, *args, text_target=text_target, **kwargs)


def hf_tokenizer(tokenizer: CharTokenizer | BPETokenizer) -> PreTrainedTokenizerFast:
    """The Hugging Face face of a run's tokenizer, giving the same ids."""
    if isinstance(tokenizer, CharTokenizer):
        vocab = {c: i for i, c in enumerate(tokenizer.chars)}
        backend = Tokenizer(models.WordLevel(vocab=vocab))
        # Oniguruma's (?m) makes "." match a newline too: every character is its own piece.
        backend.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
        backend.decoder = decoders.Fuse()
        face = CharTokenizerFast(tokenizer_object=backend)
        face.alphabet = tokenizer
        return face
    if isinstance(tokenizer, BPETokenizer):
        pad, bos, eos = BPETokenizer.SPECIALS
        backend = Tokenizer.from_str(tokenizer.backend.to_str())  # a copy: the run's is not touched
        return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=pad, bos_token=bos,
                                       eos_token=eos)  # fmt: skip
    raise TypeError(f"expected a CharTokenizer or BPETokenizer; got {type(tokenizer).__name__}")
