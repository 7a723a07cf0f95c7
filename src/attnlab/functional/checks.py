"""Input checks shared by the attention kernels: every error names the argument, what was
expected and what was given."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "all_finite",
    "check_attention_inputs",
    "check_bias_arguments",
    "check_flags",
    "check_has_values",
    "check_one_device",
    "default_scale",
    "is_common_case",
    "leading_shape",
    "needs_autograd_ops",
    "needs_grad",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_one_device(what: str, **tensors: Tensor) -> None:
    """All ``tensors`` on one device, or a ValueError naming each one's device, e.g. "q, k and v
    must be on one device: q is on cpu, k is on meta, v is on cpu". A few attribute reads."""
    devices = [t.device for t in tensors.values()]
    if all(d == devices[0] for d in devices):
        return
    names = list(tensors)
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    where = ", ".join(f"{n} is on {d}" for n, d in zip(names, devices, strict=True))
    raise ValueError(f"{listed} must be on {what}: {where}")


def check_has_values(name: str, t: Tensor) -> None:
    """Functions that read a tensor's values (not only its shape) refuse a ``meta`` tensor."""
    if t.device.type == "meta":
        raise ValueError(
            f"{name} must hold values (it is read, not only its shape); got a tensor on meta"
        )


def all_finite(*tensors: Tensor | None) -> bool:
    """True when no tensor holds a NaN or ±inf: one sum per tensor (a sum that overflows counts as
    non-finite, which only sends the call to the exact route). Meta tensors count as finite."""
    total = 0.0
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        t = t.detach() if t.requires_grad else t
        half = t.dtype in (torch.float16, torch.bfloat16)
        total += float(t.sum(dtype=torch.float32) if half else t.sum())  # inf − inf is NaN too
    return math.isfinite(total)


def needs_grad(*tensors: Tensor) -> bool:
    """True when autograd will record an operation on these tensors: grad mode on and one of
    them requires grad."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def needs_autograd_ops(*tensors: Tensor | None) -> bool:
    """True where a custom autograd Function with only a backward (no setup_context, no jvp)
    cannot run: inside torch.func transforms (grad, vjp, vmap), or when a tensor carries a
    forward-mode tangent (``torch.autograd.forward_ad``). Callers then use autograd's own
    operations."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    if active is not None and active():
        return True
    unpack = torch.autograd.forward_ad.unpack_dual
    return any(t is not None and unpack(t).tangent is not None for t in tensors)


def default_scale(d_k: int) -> float:
    """1/√d_k; 1.0 for d_k = 0, where every score is 0 whatever the scale (PyTorch's SDPA then
    averages the values uniformly, and so does attnlab)."""
    return d_k**-0.5 if d_k else 1.0


def leading_shape(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[int, ...]:
    """The broadcast leading (batch-like) shape of q, k, v and the mask."""
    if q.shape[:-2] == k.shape[:-2] == v.shape[:-2] and (mask is None or mask.dim() <= 2):
        return tuple(q.shape[:-2])
    shapes = [q.shape[:-2], k.shape[:-2], v.shape[:-2]]
    if mask is not None and mask.dim() > 2:
        shapes.append(mask.shape[:-2])
    return tuple(torch.broadcast_shapes(*shapes))


def check_attention_inputs(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None, dropout: float
) -> None:
    """Raise ValueError for any input that attention would otherwise reject cryptically or,
    worse, accept silently."""
    if is_common_case(q, k, v, mask, scale, dropout):
        return  # a few attribute reads: attention on short sequences must not pay for checks
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 dimensions (..., L, d); got shape {_shape(t)}"
            )
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating-point tensor; got dtype {t.dtype}")
    check_one_device("one device", q=q, k=k, v=v)
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"q, k and v must share one dtype; got q {q.dtype}, k {k.dtype}, v {v.dtype}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the last dimension d_k: q has {q.shape[-1]}, k has "
            f"{k.shape[-1]} (q {_shape(q)}, k {_shape(k)})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys Lk (dimension -2): k has "
            f"{k.shape[-2]}, v has {v.shape[-2]} (k {_shape(k)}, v {_shape(v)})"
        )
    try:
        if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
            torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "the leading (batch, head) dimensions of q, k and v must broadcast; got "
            f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}"
        ) from None
    if mask is not None:
        _check_mask(mask, q, k)
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not (scale > 0 and scale != float("inf"))
    ):
        raise ValueError(f"scale must be a positive finite number; got {scale!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")


def is_common_case(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None, dropout: float
) -> bool:
    """True for the everyday input, which passes every check below: 4-D float32 q/k/v with one
    (B, H), q and k sharing d_k, k and v sharing Lk, no mask, a valid scale. Covers decoding
    with a KV cache (Lq = 1 < Lk), where per-call checks are a visible share of each token."""
    return (
        mask is None
        and dropout == 0.0
        and (scale is None or (type(scale) is float and 0.0 < scale < math.inf))
        and type(q) is type(k) is type(v) is torch.Tensor
        and q.dtype == k.dtype == v.dtype == torch.float32
        and q.dim() == k.dim() == v.dim() == 4
        and q.device == k.device == v.device
        and q.shape[:2] == k.shape[:2] == v.shape[:2]
        and q.shape[3] == k.shape[3]
        and k.shape[2] == v.shape[2]
    )


def _check_mask(mask: Tensor, q: Tensor, k: Tensor) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None; got {type(mask).__name__}")
    if mask.dtype != torch.bool and mask.dtype not in _FLOAT_DTYPES:
        raise ValueError(
            "mask must be bool (True = may attend) or floating point (added to the scores); "
            f"got dtype {mask.dtype}. For 0/1 integer masks use mask.bool()"
        )
    check_one_device("one device", q=q, mask=mask)
    lq, lk = q.shape[-2], k.shape[-2]
    expected = (*leading_shape(q, k, k, None), lq, lk)
    if mask.dim() < 1 or mask.dim() > len(expected):
        ok = False
    else:
        try:
            ok = tuple(torch.broadcast_shapes(mask.shape, expected)) == expected
        except RuntimeError:
            ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {_shape(mask)} cannot broadcast to (..., Lq, Lk) = {expected}"
        )


def check_bias_arguments(
    q: Tensor,
    k: Tensor,
    mask: object,
    causal: bool,
    causal_alignment: str,
    window: int | None,
    attention_mask: Tensor | None,
    alibi_slopes: Tensor | None,
    softcap: float | None,
    plain: bool,
) -> None:
    """Check the bias arguments of attention (see :class:`attnlab.functional.bias.AttentionBias`)
    before any work is done."""
    from attnlab.functional.bias import ALIGNMENTS, AttentionBias

    lq, lk = q.shape[-2], k.shape[-2]
    if isinstance(mask, AttentionBias):
        if not plain or causal:
            raise ValueError(
                "mask is an AttentionBias: give causal, causal_alignment, window, "
                "attention_mask, alibi_slopes and softcap inside it, not as arguments"
            )
        if (mask.lq, mask.lk) != (lq, lk):
            raise ValueError(
                f"mask (an AttentionBias) was built for (Lq, Lk) = ({mask.lq}, {mask.lk}); the "
                f"inputs have ({lq}, {lk})"
            )
        return
    if causal_alignment not in ALIGNMENTS:
        raise ValueError(f"causal_alignment must be one of {ALIGNMENTS}; got {causal_alignment!r}")
    if window is not None:
        if not causal:
            raise ValueError(
                f"window={window} needs causal=True (a sliding window over earlier keys)"
            )
        if not isinstance(window, int) or window <= 0:
            raise ValueError(f"window must be a positive number of keys; got {window!r}")
    if attention_mask is not None:
        batch = q.shape[0] if q.dim() > 2 else None
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.is_floating_point():
            raise ValueError(
                "attention_mask must be a bool or integer 0/1 tensor (True/1 = real token); got "
                f"{getattr(attention_mask, 'dtype', type(attention_mask).__name__)}"
            )
        check_one_device("one device", q=q, attention_mask=attention_mask)
        if batch is None or tuple(attention_mask.shape) != (batch, lk):
            raise ValueError(
                f"attention_mask must have shape (B, Lk) = ({batch}, {lk}) (q {_shape(q)}, "
                f"k {_shape(k)}); got {_shape(attention_mask)}"
            )
    if alibi_slopes is not None:
        heads = q.shape[-3] if q.dim() > 2 else None
        if not isinstance(alibi_slopes, torch.Tensor) or tuple(alibi_slopes.shape) != (heads,):
            raise ValueError(
                f"alibi_slopes must have shape (H,) = ({heads},), one slope per head (dimension "
                f"-3 of q {_shape(q)}); got {getattr(alibi_slopes, 'shape', alibi_slopes)}"
            )
        if not alibi_slopes.is_floating_point():
            raise ValueError(
                f"alibi_slopes must be floating point (one slope per head); got dtype "
                f"{alibi_slopes.dtype}"
            )
        check_one_device("one device", q=q, alibi_slopes=alibi_slopes)
    if softcap is not None and not (isinstance(softcap, int | float) and 0 < softcap < math.inf):
        raise ValueError(f"softcap must be a positive finite number; got {softcap!r}")


def check_flags(**flags: object) -> None:
    """Boolean switches must be booleans: ``causal="no"`` would otherwise count as True."""
    for name, value in flags.items():
        if type(value) is not bool:
            raise ValueError(f"{name} must be True or False; got {value!r}")
