"""One attention layer, step by step, from the real Q, K, V to the layer's output.

    scores   = q·kᵀ                         (H, T, T)
    scaled   = scores / √d_k                 (skipped when ``scale`` is off: the pitfall)
    masked   = scaled, −∞ where j > i        (only when ``causal``)
    weights  = softmax(masked) over keys     (H, T, T), rows sum to 1
    context  = weights·V                     (H, T, d_h)
    concat   = (H, T, d_h) → (T, H·d_h)      the heads side by side, no non-linearity
    attn_out = concat·W_O + b_O              (T, D), the model's own W_O module
    post-norm (BERT): resid = LN(x + attn_out); out = LN(resid + FFN(resid))
    pre-norm  (GPT):  resid = x + attn_out;    out = resid + FFN(LN(resid))

Every variant (scaling on/off × causal mask on/off) runs the same code from the same Q, K, V,
so a variant differs from the model's own computation exactly in the steps its change reaches.

Dimension legend: T positions, D model width, H heads, d_h = D / H, d_ff feed-forward width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab import masks
from attnlab.explain.anatomy import Anatomy
from attnlab.functional.checks import default_scale

__all__ = ["Variant", "heads_of", "walk"]


@dataclass(frozen=True)
class Variant:
    scale: bool  # divide the scores by √d_k
    causal: bool  # hide later keys (j > i) from query i

    @property
    def key(self) -> str:  # the page's name for it: "s1m0" = scaled, no mask
        return f"s{int(self.scale)}m{int(self.causal)}"


def heads_of(x: Tensor, n_heads: int) -> Tensor:
    """(T, D) → (H, T, d_h): the notes' split, D = H × d_h, heads are column blocks."""
    T, D = x.shape
    return x.view(T, n_heads, D // n_heads).transpose(0, 1)  # (T, H, d_h) → (H, T, d_h)


@torch.no_grad()
def walk(anatomy: Anatomy, variant: Variant) -> dict[str, Tensor]:
    """Every step's tensor for every query token and head under ``variant``."""
    a = anatomy
    q, k, v = (heads_of(a.parts[n], a.n_heads) for n in ("q", "k", "v"))  # (H, T, d_h) each
    T = q.shape[1]
    scores = q @ k.transpose(-1, -2)  # (H, T, d_h) @ (H, d_h, T) → (H, T, T)
    scaled = scores * default_scale(a.d_head) if variant.scale else scores
    # causal: query i sees keys j ≤ i (attnlab.masks.causal, True = may attend)
    masked = scaled.masked_fill(~masks.causal(T), float("-inf")) if variant.causal else scaled
    weights = torch.softmax(masked, dim=-1)  # (H, T, T)
    context = weights @ v  # (H, T, T) @ (H, T, d_h) → (H, T, d_h)
    concat = context.transpose(0, 1).reshape(T, a.d_model)  # (T, H, d_h) → (T, D)
    attn_out = a.out_proj(concat)  # (T, D)
    x = a.parts["x"]
    if a.norm_first:  # pre-norm: x + f(LN(x))
        resid = x + attn_out
        ff_in = a.norm_ff(resid)
    else:  # post-norm: LN(x + f(x))
        resid = a.norm_attn(x + attn_out)
        ff_in = resid
    ff_hidden = a.ff_hidden(ff_in)  # (T, d_ff)
    ff_out = a.ff_out(ff_hidden)  # (T, D)
    final = resid + ff_out if a.norm_first else a.norm_ff(resid + ff_out)
    return {
        "scaled": scaled, "masked": masked, "weights": weights, "context": context,
        "concat": concat, "attn_out": attn_out, "resid": resid, "ff_in": ff_in,
        "ff_hidden": ff_hidden, "ff_out": ff_out, "final": final,
    }  # fmt: skip


def raw_scores(anatomy: Anatomy) -> Tensor:
    """q·kᵀ per head (H, T, T): the same in every variant."""
    q, k = (heads_of(anatomy.parts[n], anatomy.n_heads) for n in ("q", "k"))
    return q @ k.transpose(-1, -2)
