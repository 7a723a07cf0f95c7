"""Generating past a GPT's context: a sliding window.

A GPT with learned positions has embeddings for positions 0 … ``max_len - 1`` only, so
:meth:`GPT.generate` stops at ``max_len`` tokens. To go on, each further token is predicted
from the last ``max_len`` tokens only, the longest context the model was trained on (the
window slides one token per step; positions restart at 0):

    ids_{t+1} ~ p(· | ids[t - max_len + 1 : t + 1])

While the text still fits, tokens come from :meth:`GPT.generate` and its KV cache; once it
slides, every step is one forward pass over the window (a cache cannot slide: every cached key
was computed at a position that has now shifted).

Dimension legend: B batch, T tokens so far, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.models.gpt import GPT
from attnlab.models.sampling import next_token

__all__ = ["generate_sliding"]


@torch.no_grad()
def generate_sliding(
    model: GPT, prompt_ids: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
    top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:  # fmt: skip
    """Extend prompt_ids (B, T) by max_new_tokens → (B, T + new), each new token sampled
    (:func:`attnlab.models.sampling.next_token`) from the last ``max_len`` tokens at most.
    The prompt may be longer than the window: only its last ``max_len`` tokens are read."""
    window = model.config.max_len
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0; got {max_new_tokens}")
    ids = prompt_ids
    fits = min(max_new_tokens, max(0, model.config.max_len - ids.shape[1]))
    if fits:  # the first tokens see their whole prefix: generate with the KV cache
        ids = model.generate(ids, fits, temperature=temperature, top_k=top_k, top_p=top_p,
                             generator=generator)  # fmt: skip
    for _ in range(max_new_tokens - fits):
        logits = model(ids[:, -window:]).logits[:, -1]  # (B, V) from the last max_len
        ids = torch.cat((ids, next_token(logits, temperature, top_k, top_p, generator)), dim=1)
    return ids
