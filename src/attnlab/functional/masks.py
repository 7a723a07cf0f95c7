"""Attention masks. One convention everywhere in attnlab: **True = may attend**.

This is PyTorch SDPA's convention. ``torch.nn.MultiheadAttention`` uses the opposite one
(True = masked out); convert its masks with :func:`from_masked_out`, whose name says which way
the input points.

Dimension legend: B batch, Lq queries, Lk keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.functional.bias import AttentionBias, merge
from attnlab.functional.checks import check_has_values, check_one_device

__all__ = [
    "MaskReport",
    "causal",
    "combine",
    "describe",
    "from_key_padding",
    "from_masked_out",
    "padding_from_lengths",
    "sliding_window",
]


def causal(lq: int, lk: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """Boolean causal mask (Lq, Lk), True = may attend, **aligned to the end**.

    Query i may attend key j when j <= i + (Lk - Lq): the last query sees every key. With
    Lq == Lk this is the usual lower triangle; with Lq < Lk it is the decoding-with-cache case
    (new queries come after Lk - Lq cached keys).
    """
    lk = lq if lk is None else lk
    for name, size in (("lq", lq), ("lk", lk)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(
                f"causal mask sizes must be non-negative integers; got {name}={size!r}"
            )
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(diagonal=lk - lq)


def from_masked_out(masked_out: Tensor) -> Tensor:
    """Convert a mask where **True = masked out** (``nn.MultiheadAttention``'s ``attn_mask`` and
    ``key_padding_mask``) into attnlab's convention, True = may attend. Float masks are additive
    in both conventions and are returned unchanged."""
    if masked_out.dtype == torch.bool:
        return ~masked_out
    if not masked_out.is_floating_point():
        raise ValueError(
            f"masked_out must be bool (True = masked out) or float (additive); got dtype "
            f"{masked_out.dtype}: which way an integer mask points is unknown, use .bool()"
        )
    return masked_out


def sliding_window(
    lq: int, lk: int | None = None, *, window: int, device: torch.device | str | None = None
) -> Tensor:
    """Causal sliding-window mask (Lq, Lk), True = may attend, aligned to the end like
    :func:`causal`: query i sees the ``window`` most recent keys up to and including its own
    position (Longformer / Mistral-style local attention)."""
    if window <= 0:
        raise ValueError(f"window must be a positive number of keys; got {window}")
    lk = lq if lk is None else lk
    offset = lk - lq
    return causal(lq, lk, device=device) & ~causal(lq, lk, device=device).tril(offset - window)


def padding_from_lengths(
    lengths: Tensor | list[int],
    max_len: int | None = None,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """Key-padding mask (B, 1, 1, Lk) from sequence lengths: True for the first ``lengths[b]``
    keys of each row (real tokens), False for the padding after them."""
    lengths = torch.as_tensor(lengths, device=device)
    check_has_values("lengths", lengths)
    if lengths.is_floating_point():
        fractional = lengths[lengths != lengths.round()]
        if fractional.numel():
            raise ValueError(f"lengths must be whole numbers; got {fractional[0].item()}")
        lengths = lengths.long()
    if max_len is not None and (not isinstance(max_len, int) or max_len < 0):
        raise ValueError(f"max_len must be a non-negative integer; got {max_len!r}")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,); got shape {tuple(lengths.shape)}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if lengths.numel() and (int(lengths.min()) < 0 or longest > max_len):
        raise ValueError(
            f"lengths must lie in [0, max_len={max_len}]; got min {int(lengths.min())}, "
            f"max {longest}"
        )
    positions = torch.arange(max_len, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Lk)


def from_key_padding(attention_mask: Tensor) -> Tensor:
    """Key padding ``attention_mask`` (B, Lk), True/1 = **real token** (Hugging Face's
    convention) → broadcastable attention mask (B, 1, 1, Lk), True = may attend. (Attention
    also takes ``attention_mask=`` directly.)"""
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must have shape (B, Lk); got {tuple(attention_mask.shape)}"
        )
    if attention_mask.is_floating_point():
        raise ValueError(f"attention_mask must be bool or integer 0/1; got {attention_mask.dtype}")
    return (attention_mask != 0)[:, None, None, :]


def combine(*masks: Tensor | None) -> Tensor | None:
    """Combine masks so a key is visible only where every mask allows it. Booleans are ANDed,
    float masks summed; a mix turns the booleans into 0/−inf first. ``None`` entries are
    skipped; all ``None`` gives ``None``."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    for m in present:
        if m.dtype != torch.bool and not m.is_floating_point():
            raise ValueError(
                f"masks must be bool (True = may attend) or float (additive); got dtype {m.dtype}"
            )
    check_one_device("one device", **{f"mask {i}": m for i, m in enumerate(present)})
    try:
        torch.broadcast_shapes(*(m.shape for m in present))
    except RuntimeError:
        shapes = ", ".join(str(tuple(m.shape)) for m in present)
        raise ValueError(f"masks must broadcast to one shape; got {shapes}") from None
    bools = [m for m in present if m.dtype == torch.bool]
    floats = [m for m in present if m.dtype != torch.bool]
    if not floats:
        return merge(bools, [], torch.bool, present[0].device)  # stays boolean
    return merge(bools, floats, floats[0].dtype, present[0].device)


@dataclass(frozen=True)
class MaskReport:
    """What :func:`describe` found in a mask (True = may attend)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    fraction_open: float  # share of (query, key) pairs that may attend
    fully_masked_rows: int  # query rows that see no key: output 0 there
    first_fully_masked: tuple[tuple[int, ...], ...]  # up to 8 indices (..., query)
    all_open: bool
    all_closed: bool
    warnings: tuple[str, ...]

    def __str__(self) -> str:
        lines = [
            f"mask {self.shape} {self.dtype}: {self.fraction_open:.1%} of (query, key) pairs open",
            f"fully masked query rows: {self.fully_masked_rows}"
            + (f" (first: {list(self.first_fully_masked)})" if self.fully_masked_rows else ""),
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def describe(mask: Tensor | AttentionBias) -> MaskReport:
    """Check a mask (bool True = may attend, float additive with −inf = blocked, or a whole
    :class:`~attnlab.functional.bias.AttentionBias`) for the mistakes people make most: inverted
    masks (PyTorch's two conventions), masks that block everything, rows that see no key."""
    if isinstance(mask, AttentionBias):
        mask = _visibility(mask)
    check_has_values("mask", mask)
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(
            f"mask must be bool (True = may attend) or float (additive); got dtype {mask.dtype}"
        )
    open_ = mask if mask.dtype == torch.bool else mask > float("-inf")
    if open_.dim() < 2:
        raise ValueError(
            f"mask must have at least 2 dimensions (..., Lq, Lk); got {tuple(mask.shape)}"
        )
    row_open = open_.any(dim=-1)  # (..., Lq)
    empty = (~row_open).nonzero()
    fraction = float(open_.float().mean()) if open_.numel() else 0.0
    warnings: list[str] = []
    all_open, all_closed = bool(open_.all()), not bool(open_.any())
    if all_closed:
        warnings.append(
            "every position is blocked: is this a torch.nn.MultiheadAttention mask (True = "
            "masked out)? Convert it with attnlab.masks.from_masked_out"
        )
    lq, lk = open_.shape[-2:]
    if lq == lk and lq > 1 and not all_closed:
        diagonal = open_.diagonal(dim1=-2, dim2=-1)  # (..., L)
        if not bool(diagonal.any()):
            upper = bool(open_.triu(1).any())
            hint = " (it looks like an upper triangle: inverted causal mask?)" if upper else ""
            warnings.append(
                "no query may attend to its own position: a self-attention mask with the "
                f"diagonal blocked is usually inverted{hint}; attnlab uses True = may attend, "
                "use attnlab.masks.from_masked_out for PyTorch's True = masked out"
            )
    if len(empty) and not all_closed:
        warnings.append(
            f"{len(empty)} query row(s) see no key at all: their output and weights will be 0"
        )
    return MaskReport(
        shape=tuple(mask.shape),
        dtype=mask.dtype,
        fraction_open=fraction,
        fully_masked_rows=len(empty),
        first_fully_masked=tuple(tuple(int(i) for i in row) for row in empty[:8]),
        all_open=all_open,
        all_closed=all_closed,
        warnings=tuple(warnings),
    )


def _visibility(bias: AttentionBias) -> Tensor:
    """Which (query, key) pairs an AttentionBias lets through: (B, Lq, Lk) bool with key
    padding, else (..., Lq, Lk) as its mask."""
    tensors = [t for t in (bias.mask, bias.attention_mask) if t is not None]
    device = tensors[0].device if tensors else "cpu"
    visible = bias.visible(device, n_lead=1)
    full = torch.ones(bias.lq, bias.lk, dtype=torch.bool, device=device)
    return full if visible is None else full & visible
