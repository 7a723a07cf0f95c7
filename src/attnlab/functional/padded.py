"""Fast path for padded batches.

A boolean key-padding mask (B, 1, 1, Lk) whose visible keys are a prefix of each row (real
tokens first, padding after) is what every padded batch produces. Given such a mask, PyTorch's
SDPA still computes scores for every padded key and pays for the mask. Here each sample runs the
fused kernel on its unpadded keys only, so the cost follows the real lengths.

Dimension legend: B batch, H heads, Lq queries, Lk keys, d head size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.functional.backends import flash_cpu_kernel

__all__ = ["padded_flash", "prefix_lengths"]


def prefix_lengths(attention_mask: Tensor, batch: int, lk: int) -> Tensor | None:
    """Per-sample number of real keys when the boolean key-padding mask ``attention_mask``
    (B, Lk), True = real token, is a prefix of each row; otherwise None. Costs O(B·Lk)."""
    if attention_mask.dtype != torch.bool or tuple(attention_mask.shape) != (batch, lk):
        return None
    rows = attention_mask
    lengths = rows.sum(dim=-1)  # (B,)
    if bool((lengths == lk).all()):
        return None  # nothing padded: the plain fused path is as fast
    prefix = torch.arange(lk, device=attention_mask.device)[None, :] < lengths[:, None]
    return lengths if torch.equal(rows, prefix) else None


def padded_flash(
    q: Tensor,  # (B, H, Lq, d)
    k: Tensor,  # (B, H, Lk, d)
    v: Tensor,  # (B, H, Lk, d)
    lengths: Tensor,  # (B,) visible keys per sample
    causal: bool,
    scale: float,
) -> tuple[Tensor, Tensor]:
    """Per-sample fused attention on the first ``lengths[b]`` keys. Returns output
    (B, H, Lq, d) and log-sum-exp (B, H, Lq); rows of a sample with no visible key get output 0.

    With ``causal`` (Lq == Lk, start-aligned) the kernel's own ``is_causal`` on the truncated
    keys is exactly causal ∧ padding: query i sees keys j ≤ i with j < length.
    """
    flash = flash_cpu_kernel()
    B, H, Lq, _ = q.shape
    out = q.new_empty(B, H, Lq, v.shape[-1])
    lse_dtype = torch.float32 if q.dtype != torch.float64 else q.dtype
    lse = torch.empty(B, H, Lq, dtype=lse_dtype, device=q.device)
    for b, n in enumerate(lengths.tolist()):
        if n == 0:
            out[b].zero_()
            lse[b].zero_()
            continue
        o, s = flash(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n], 0.0, causal,
                      scale=scale)  # fmt: skip
        out[b] = o[0]
        lse[b] = s[0]
    return out, lse
