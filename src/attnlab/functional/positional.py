"""Positional information for attention, which by itself is blind to order.

* Sinusoidal (Vaswani et al., 2017, §3.5): PE(pos, 2i) = sin(pos / 10000^(2i/d)),
  PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), added to the token embeddings.
* Rotary, RoPE (Su et al., 2021): rotate each pair (x_{2i}, x_{2i+1}) of a query/key by the angle
  pos·θ_i, θ_i = base^(−2i/d), so q·k depends on positions only through their difference.
* ALiBi (Press et al., 2022): no embedding; add −m_h·(i − j) to the scores of head h, with
  slopes m_h a geometric sequence starting at 2^(−8/H).

Dimension legend: T positions, D model width, H heads, d head size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attnlab.functional.checks import check_one_device

__all__ = ["alibi_bias", "alibi_slopes", "apply_rope", "sinusoidal_table"]


def sinusoidal_table(max_len: int, d_model: int, *, base: float = 10000.0) -> Tensor:
    """The (max_len, d_model) sinusoidal table: even columns sin, odd columns cos."""
    if max_len <= 0 or d_model <= 0 or d_model % 2:
        raise ValueError(
            f"max_len must be positive and d_model positive and even; got max_len={max_len}, "
            f"d_model={d_model}"
        )
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (D/2,)
    angle = pos / base ** (two_i / d_model)  # (T, D/2)
    table = torch.empty(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table.float()


def apply_rope(x: Tensor, positions: Tensor, *, base: float = 10000.0) -> Tensor:
    """Rotate interleaved pairs of ``x`` (..., T, d) by pos·θ_i; ``positions`` is (T,)."""
    d = x.shape[-1]
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor; got dtype {x.dtype}")
    check_one_device("one device", x=x, positions=positions)
    if d % 2:
        raise ValueError(f"RoPE needs an even head size; got d={d}")
    if positions.shape != (x.shape[-2],):
        raise ValueError(
            f"positions must have shape (T,) = ({x.shape[-2]},); got {tuple(positions.shape)}"
        )
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)  # (d/2,)
    angle = positions.to(torch.float64)[:, None] * theta  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def alibi_slopes(n_heads: int) -> Tensor:
    """Per-head slopes m_h. For H a power of two: 2^(−8h/H), h = 1..H; otherwise the paper's
    recipe: the slopes of the nearest lower power of two, then every other slope of twice it."""
    if n_heads <= 0:
        raise ValueError(f"n_heads must be positive; got {n_heads}")

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (h + 1) for h in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    lower = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * lower)[0::2][: n_heads - lower]
    return torch.tensor(power_of_two(lower) + extra)


def alibi_bias(
    n_heads: int, lq: int, lk: int | None = None, *, device: torch.device | str | None = None
) -> Tensor:
    """Additive bias (H, Lq, Lk): −m_h·(i − j) for keys at or before the query (end-aligned,
    like the causal mask), 0 for later keys (combine with a causal mask to block them). The same
    numbers attention adds for ``alibi_slopes=alibi_slopes(H)``
    (:class:`attnlab.functional.bias.AttentionBias`)."""
    from attnlab.functional.bias import AttentionBias

    slopes = alibi_slopes(n_heads).to(device)
    bias = AttentionBias.build(lq, lq if lk is None else lk, alibi_slopes=slopes)
    return bias.dense(torch.float32, slopes.device)  # (H, Lq, Lk)
