"""Checks on models: input ids before any compute, and ``check_causal(model)``: does any
position's output depend on later tokens?

A language model must not read the future: the output at position t may depend only on tokens
0..t. :func:`check_causal` changes every token after a cut point t (to other random ids) and
compares the outputs at positions ≤ t; any change is a leak (for example a missing or inverted
causal mask). It works for any callable mapping ids (B, T) to outputs (B, T, ...): attnlab's GPT,
a Hugging Face causal LM (its ``.logits`` are used), or a plain function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CausalityReport", "check_causal", "check_ids"]


def check_ids(name: str, ids: Tensor, vocab_size: int, max_len: int, offset: int = 0) -> None:
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int):
        shape = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be an integer tensor of shape (B, T); got {shape}")
    if ids.numel() == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(ids.shape)}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name} must lie in [0, vocab_size={vocab_size}); got values from {low} to {high}"
        )
    if offset + ids.shape[1] > max_len:
        raise ValueError(
            f"{name} is too long: {offset + ids.shape[1]} positions"
            + (f" ({offset} cached + {ids.shape[1]} new)" if offset else "")
            + f", max_len is {max_len}"
        )


@dataclass(frozen=True)
class CausalityReport:
    leaks: tuple[tuple[int, int], ...]  # (cut t, earliest position ≤ t whose output changed)
    max_change: float  # largest absolute change seen at positions ≤ t
    cuts_tested: int

    @property
    def causal(self) -> bool:
        return not self.leaks

    def __str__(self) -> str:
        if self.causal:
            return (f"causal: no output at positions ≤ t changed when tokens after t changed "
                    f"({self.cuts_tested} cut points tested)")  # fmt: skip
        t, pos = self.leaks[0]
        return (
            f"LEAK: changing tokens after position {t} changed the output at position {pos} "
            f"(max change {self.max_change:.3g}; {len(self.leaks)} of {self.cuts_tested} cut "
            "points leak): the model reads the future"
        )


def _outputs(model: Callable, ids: Tensor) -> Tensor:
    out = model(ids)
    out = getattr(out, "logits", out)
    if isinstance(out, tuple):
        out = out[0]
    if not isinstance(out, Tensor) or out.shape[:2] != ids.shape:
        raise ValueError(
            f"model must map ids {tuple(ids.shape)} to outputs (B, T, ...); got "
            f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}"
        )
    return out.float()


@torch.no_grad()
def check_causal(
    model: Callable, vocab_size: int, *, length: int = 16, batch: int = 2, cuts: int = 6,
    atol: float = 1e-5, seed: int = 0,
) -> CausalityReport:  # fmt: skip
    """Perturb the tokens after ``cuts`` cut points and report outputs at earlier positions
    that changed by more than ``atol``."""
    if length < 2:
        raise ValueError(f"length must be at least 2 to have a future; got {length}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2 to change a token; got {vocab_size}")
    if hasattr(model, "eval"):
        model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, length), generator=g)
    base = _outputs(model, ids)
    leaks, worst = [], 0.0
    points = torch.linspace(0, length - 2, min(cuts, length - 1)).round().long().unique().tolist()
    for t in points:
        changed = ids.clone()
        shift = torch.randint(1, vocab_size, (batch, length - t - 1), generator=g)
        changed[:, t + 1 :] = (ids[:, t + 1 :] + shift) % vocab_size  # every later token differs
        diff = (_outputs(model, changed)[:, : t + 1] - base[:, : t + 1]).abs()  # (B, t+1, ...)
        per_position = diff.flatten(2).amax(dim=(0, 2)) if diff.dim() > 2 else diff.amax(0)
        worst = max(worst, float(per_position.max()))
        bad = (per_position > atol).nonzero().flatten()
        if len(bad):
            leaks.append((t, int(bad[0])))
    return CausalityReport(tuple(leaks), worst, len(points))
