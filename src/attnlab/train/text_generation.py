"""Text from a training checkpoint: continue a prompt with a language model (sliding past its
context, :func:`attnlab.models.generation.generate_sliding`) or translate it greedily."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from attnlab.models.generation import generate_sliding
from attnlab.train.tasks import DEFAULT_NEW_TOKENS, source_limit, target_limit
from attnlab.train.trained import load_trained

__all__ = ["generate_text"]


@torch.no_grad()
def generate_text(
    checkpoint: str | Path, prompt: str, *, max_new_tokens: int | None = None,
    temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None, seed: int = 0,
) -> str:  # fmt: skip
    """The prompt and ``max_new_tokens`` tokens after it (language model; default
    :data:`~attnlab.train.tasks.DEFAULT_NEW_TOKENS`, the window sliding past the context), or
    the translation of the prompt (translation model: greedy, its source cut to
    :func:`~attnlab.train.tasks.source_limit` as training cut it, with a warning, up to
    ``max_new_tokens``
    tokens, at most and by default :func:`~attnlab.train.tasks.target_limit`; sampling options
    unused)."""
    trained = load_trained(checkpoint)
    model, tokenizers, context = trained.model, trained.tokenizers, trained.config.context
    if trained.config.task == "lm":
        (tok,) = tokenizers
        ids = torch.tensor([tok.encode(prompt)])  # (1, T)
        g = torch.Generator().manual_seed(seed)
        new = DEFAULT_NEW_TOKENS if max_new_tokens is None else max_new_tokens
        out = generate_sliding(model, ids, new, temperature=temperature, top_k=top_k,
                               top_p=top_p, generator=g)  # fmt: skip
        return tok.decode(out[0].tolist())
    src_tok, tgt_tok = tokenizers
    ids, limit = src_tok.encode(prompt), source_limit(context)
    if len(ids) > limit:
        warnings.warn(f"prompt is {len(ids)} tokens; the model reads at most {limit} source "
                      f"tokens (training cut its sources so): translating the first {limit}",
                      stacklevel=2)  # fmt: skip
    src = torch.tensor([ids[:limit]])  # (1, S)
    new = target_limit(context) if max_new_tokens is None else max_new_tokens  # after <bos>
    out = model.generate(src, new, tgt_tok.bos_id, tgt_tok.eos_id)
    return tgt_tok.decode(out[0].tolist())
