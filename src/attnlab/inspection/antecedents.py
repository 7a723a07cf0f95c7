"""Which heads make a token (e.g. "it") attend to one candidate word over another.

Reads the attention of a Hugging Face BERT-family model for one sentence and, for every
layer × head, the weight the query token puts on each candidate word. Attention is an
illustration here, not proof of coreference: compare "...because it was tired" with
"...because it was wide" before concluding anything.

Dimension legend: L layers, H heads, T tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TokenAttention", "token_attention"]


@dataclass(frozen=True)
class TokenAttention:
    """Attention of one query token to candidate words in one sentence."""

    text: str
    tokens: tuple[str, ...]
    query: str
    candidates: tuple[str, ...]
    weights: Tensor  # (L, H, len(candidates)): weight from the query token to each candidate

    def top_heads(
        self, favour: str, against: str, k: int = 5
    ) -> list[tuple[int, int, float, float]]:
        """The k (layer, head) pairs with the largest weight margin of ``favour`` over
        ``against``, as (layer, head, weight on favour, weight on against)."""
        i, j = self.candidates.index(favour), self.candidates.index(against)
        margin = self.weights[..., i] - self.weights[..., j]  # (L, H)
        order = margin.flatten().argsort(descending=True)[:k]
        H = self.weights.shape[1]
        return [
            (int(o) // H, int(o) % H, float(self.weights.flatten(0, 1)[o, i]),
             float(self.weights.flatten(0, 1)[o, j]))
            for o in order
        ]  # fmt: skip


def _word_index(tokens: list[str], word: str, text: str) -> int:
    if word not in tokens:
        raise ValueError(f"token {word!r} is not in the text {text!r}; its tokens are {tokens}")
    return tokens.index(word)


@torch.no_grad()
def token_attention(
    model, tokenizer, text: str, query: str, candidates: tuple[str, ...]
) -> TokenAttention:
    """Weights from ``query`` to each of ``candidates`` in every layer and head of ``model``
    (a Hugging Face encoder run with ``output_attentions=True``)."""
    if not text.strip():
        raise ValueError("text must not be empty")
    enc = tokenizer(text, return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    qi = _word_index(tokens, query, text)
    ci = [_word_index(tokens, c, text) for c in candidates]
    out = model(**enc, output_attentions=True)
    maps = torch.stack([a[0] for a in out.attentions])  # L × (1, H, T, T) → (L, H, T, T)
    return TokenAttention(
        text=text, tokens=tuple(tokens), query=query, candidates=tuple(candidates),
        weights=maps[:, :, qi, ci],  # (L, H, len(candidates))
    )  # fmt: skip
