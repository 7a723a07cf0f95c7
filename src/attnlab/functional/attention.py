"""Scaled dot-product attention: one entry point, selectable backends.

``scaled_dot_product_attention`` turns its mask arguments into one
:class:`~attnlab.functional.bias.AttentionBias`, picks a route on the selected backend (see
:func:`attnlab.backend`) and reports the choice, and why, to shape tracing:

* **flash-cpu** – PyTorch's CPU flash kernel (the one ``F.scaled_dot_product_attention`` runs on
  the CPU), called directly because it also returns the per-row log-sum-exp (LSE). O(N·d) memory.
  With weights asked for while ``attnlab.capture`` records (**flash-cpu+lse**), the exact weights
  exp(q·kᵀ·scale + bias − lse) are written from that LSE.
* **blocked** – weights asked for, no gradient needed: :mod:`attnlab.functional.blocked` computes
  scores, softmax and the value product one cache-sized block of query rows at a time, straight
  into the one (..., Lq, Lk) result tensor.
* **reference** – the readable softmax(QKᵀ·scale + bias)·V of
  :mod:`attnlab.functional.reference`, used when the weights must carry gradients, or with
  dropout in training when weights are asked for.
* **portable** – public operations only (:mod:`attnlab.functional.portable`): PyTorch's SDPA for
  the output, a blocked log-sum-exp where exact weights are wanted. Any device.

``"auto"`` (the default) takes flash-cpu on the CPU without weights, blocked with weights,
reference when weights need gradients, and portable everywhere else (other devices, d_k ≠ d_v,
dropout, softcap). Every route reports its call to an active capture: nothing is missed.

Mask convention: **True = may attend** (SDPA's). Fully masked query rows give output 0 and
weights 0, never NaN, on every route. Empty inputs give empty or zero results on every route.
NaN/±inf inputs (on the CPU) run the exact reference kernel: NaN reaches exactly the rows that see
it (see :func:`attnlab.functional.reference.reference_attention`).

Dimension legend: B batch, H heads, Lq queries, Lk keys, d_k / d_v head sizes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from attnlab import observe
from attnlab.functional import portable
from attnlab.functional.backends import current_backend, flash_cpu_kernel
from attnlab.functional.bias import AttentionBias
from attnlab.functional.blocked import attention_with_weights, weights_dtype
from attnlab.functional.checks import (
    all_finite,
    check_attention_inputs,
    check_bias_arguments,
    check_flags,
    default_scale,
    is_common_case,
    leading_shape,
    needs_grad,
)
from attnlab.functional.padded import padded_flash, prefix_lengths
from attnlab.functional.reference import reference_attention

__all__ = ["AttentionResult", "attention_weights_from_lse", "scaled_dot_product_attention"]


class AttentionResult(NamedTuple):
    output: Tensor  # (..., Lq, d_v)
    weights: Tensor | None  # (..., Lq, Lk) when need_weights=True, else None


def scaled_dot_product_attention(
    q: Tensor,  # (..., Lq, d_k)
    k: Tensor,  # (..., Lk, d_k)
    v: Tensor,  # (..., Lk, d_v)
    mask: Tensor | AttentionBias | None = None,  # broadcastable to (..., Lq, Lk)
    *,
    causal: bool = False,
    causal_alignment: str = "end",
    window: int | None = None,
    attention_mask: Tensor | None = None,  # (B, Lk); True/1 = real token
    alibi_slopes: Tensor | None = None,  # (H,)
    softcap: float | None = None,
    scale: float | None = None,
    dropout: float = 0.0,
    need_weights: bool = False,
    training: bool = False,
) -> AttentionResult:
    """Attention(Q, K, V) = softmax(Q·Kᵀ·scale + bias)·V  (Vaswani et al., 2017, eq. 1).

    Args:
        q, k, v: queries ``(..., Lq, d_k)``, keys ``(..., Lk, d_k)``, values ``(..., Lk, d_v)``;
            leading dimensions broadcast.
        mask: boolean (**True = may attend**, PyTorch SDPA's convention; the opposite of
            ``nn.MultiheadAttention``, see :func:`attnlab.masks.from_masked_out`) or a float mask
            added to the scores; broadcastable to ``(..., Lq, Lk)``. An
            :class:`~attnlab.functional.bias.AttentionBias` is taken as it is (then the other
            bias arguments must keep their defaults).
        causal: query i may attend key j only when j <= i + offset.
        causal_alignment: ``"end"`` (default, offset Lk − Lq: with a KV cache the new queries
            see every cached key) or ``"start"`` (offset 0, PyTorch's ``is_causal``).
        window: with ``causal``, each query sees only the ``window`` most recent keys.
        attention_mask: key padding ``(B, Lk)``, **True/1 = real token** (Hugging Face's
            convention); B is q's first dimension.
        alibi_slopes: ALiBi slopes ``(H,)`` for the last leading dimension (heads).
        softcap: scores → softcap·tanh(scores / softcap) before the bias (Gemma 2).
        scale: multiplies the scores; default 1/√d_k (unscaled dot products grow with d_k and
            saturate the softmax).
        dropout: dropout probability on the weights, applied only when ``training``.
        need_weights: also return the attention weights ``(..., Lq, Lk)`` (exact, before
            dropout).

    Returns:
        ``AttentionResult(output, weights)``; ``weights`` is None unless ``need_weights``.
        A query row with no visible key gets output 0 and weights 0; Lk = 0 gives zeros and
        Lq = 0 an empty output. A NaN reaches exactly the rows that see it.
    """
    plain = not (causal_alignment != "end" or window is not None or attention_mask is not None
                 or alibi_slopes is not None or softcap is not None)  # fmt: skip
    if plain and mask is None and need_weights is False:
        out = _plain_flash(q, k, v, causal, scale, dropout, training)
        if out is not None:
            return AttentionResult(out, None)
    given = isinstance(mask, AttentionBias)
    check_attention_inputs(q, k, v, None if given else mask, scale, dropout)
    if not (type(causal) is type(need_weights) is type(training) is bool):
        check_flags(causal=causal, need_weights=need_weights, training=training)
    if given or not plain:
        check_bias_arguments(q, k, mask, causal, causal_alignment, window, attention_mask,
                             alibi_slopes, softcap, plain)  # fmt: skip
    scale = default_scale(q.shape[-1]) if scale is None else float(scale)
    drop = dropout if training else 0.0
    if given:
        bias = mask
    else:
        bias = AttentionBias.build(
            q.shape[-2], k.shape[-2], mask, causal=causal, causal_alignment=causal_alignment,
            window=window, attention_mask=attention_mask, alibi_slopes=alibi_slopes,
            softcap=softcap, n_lead=q.dim() - 2,
        )  # fmt: skip
        if mask is not None and bias.mask is None and bias.causal and not causal:
            observe.emit_step("mask", None, "boolean mask recognised as causal → is_causal")
    if observe.active_observers() and observe.current_module() is None:
        observe.emit_step("q", q)  # inside a module the module reports its own q
    observe.emit_step("k", k)
    observe.emit_step("v", v)
    with_grad = needs_grad(q, k, v, *bias.learned)
    route, why = _choose(q, k, v, bias, drop, need_weights, with_grad)
    # The reference kernel is exact for NaN/±inf; the fast ones are not (the flash kernel zeroes
    # a row of NaN scores, products add 0·NaN from hidden keys). Elsewhere the check would sync.
    if route != "reference" and q.device.type == "cpu" and not all_finite(q, k, v, *bias.learned):
        route, why = "reference", "NaN or ±inf in the inputs: the exact reference kernel"
    observe.emit_step("kernel", None, f"{route}: {why}")
    run = _ROUTES[route]
    out, weights = run(q, k, v, bias, scale, drop, need_weights)
    if weights is not None:
        observe.emit_step("weights", weights)
    observe.emit_step("context", out)
    return AttentionResult(out, weights)


def flash_layout(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Inputs PyTorch's CPU flash kernel computes correctly when called directly: d_k = d_v,
    nothing empty (it kills the process with SIGFPE), and unit stride along the head dimension
    (it reads strided rows wrongly; ``F.scaled_dot_product_attention`` checks this, a direct
    call does not)."""
    return (
        q.shape[-1] == v.shape[-1]
        and q.numel() > 0 and k.numel() > 0 and v.numel() > 0
        and q.stride(-1) == 1 and k.stride(-1) == 1 and v.stride(-1) == 1
    )  # fmt: skip


_SCALAR_MAX_KEYS = 64  # the flash kernel zeroes NaN rows below 16 keys (AVX-512); margin


def _plain_flash(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: object,
    scale: float | None,
    dropout: float,
    training: object,
) -> Tensor | None:
    """The everyday call, run straight on the flash kernel without building a bias: 4-D float32
    CPU inputs with one (B, H), no mask, no weights, no observer, the auto backend, and a causal
    rule that is no rule (one query) or the square triangle. None for anything else (the general
    route then handles it). Decoding a token per layer must not pay for the general route."""
    if not (
        (causal is False or causal is True)
        and (training is False or training is True)
        and is_common_case(q, k, v, None, scale, dropout)
        and flash_layout(q, k, v)
        and (not causal or q.shape[-2] == 1 or q.shape[-2] == k.shape[-2])
        and not (causal and q.shape[-2] > 1 and needs_grad(q, k, v))  # training: causal blocks
        and q.device.type == "cpu"
        and not observe.active_observers()
        and current_backend() == "auto"
    ):  # fmt: skip
        return None
    flash = flash_cpu_kernel()
    if flash is None:
        return None
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    causal = causal and q.shape[-2] > 1
    out, lse = flash(q, k, v, 0.0, causal, scale=scale)[:2]  # (B, H, Lq, d_v), (B, H, Lq)
    # Non-finite inputs, seen from the results alone (O(Lq), not a pass over the keys): with
    # fewer than 16 keys (one vector) the kernel's max skips NaN and it writes output 0 and
    # log-sum-exp 0 for a row of NaN scores (a NaN query); with causal a NaN/inf value leaks
    # into the rows before it. The general route then finds the NaN and runs the exact kernel
    # (an lse that is 0 by chance only costs time). Longer rows propagate NaN themselves.
    if (k.shape[-2] < _SCALAR_MAX_KEYS and int(torch.count_nonzero(lse)) < lse.numel()) or (
        causal and not math.isfinite(float(out.detach().sum()))
    ):
        return None
    return out


def _choose(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: AttentionBias,
    drop: float,
    need_weights: bool,
    with_grad: bool,
) -> tuple[str, str]:
    """(route, why) for these inputs on the selected backend."""
    selected = current_backend()
    if selected == "reference":
        return "reference", "backend 'reference' selected"
    if need_weights and with_grad:
        return "reference", "need_weights with autograd"
    if need_weights and drop > 0:
        return "reference", f"need_weights with dropout={drop} in training"
    if bias.softcap is not None and (with_grad or drop > 0):
        why = "autograd" if with_grad else f"dropout={drop} in training"
        return "reference", f"softcap with {why} (PyTorch's SDPA has no softcap)"
    on_cpu = q.device.type == "cpu"
    fusable = drop == 0.0 and bias.softcap is None and flash_layout(q, k, v)
    mask_grad = with_grad and any(t.requires_grad for t in bias.learned)
    if selected == "auto":
        if not on_cpu:
            return "portable", f"auto on {q.device.type}"
        why = None if need_weights else portable.explicit_training(q, k, v, bias)
        if why is not None:
            return "portable", why
        if need_weights and not observe.wants_attention():
            return "blocked", "need_weights=True, weights written block by block"
        if not fusable or mask_grad or flash_cpu_kernel() is None:
            return "portable", _why_not_flash(q, k, v, drop, bias, mask_grad)
        return "flash-cpu", "need_weights=True, weights from log-sum-exp" if need_weights else (
            "PyTorch CPU flash kernel, need_weights=False"
        )  # fmt: skip
    if selected == "blocked":
        if with_grad or drop > 0 or q.device.type == "meta":
            why = "autograd" if with_grad else "dropout" if drop > 0 else "values (meta device)"
            return "portable", f"the blocked kernel has no {why}"
        return "blocked", "backend 'blocked' selected"
    if selected == "flash-cpu":
        if not on_cpu or not fusable or mask_grad or flash_cpu_kernel() is None:
            return "portable", "flash-cpu cannot run this: " + _why_not_flash(
                q, k, v, drop, bias, mask_grad
            )
        return "flash-cpu", "backend 'flash-cpu' selected"
    return "portable", "backend 'portable' selected"


def _why_not_flash(
    q: Tensor, k: Tensor, v: Tensor, drop: float, bias: AttentionBias, mask_grad: bool
) -> str:
    if q.device.type != "cpu":
        return f"inputs on {q.device.type}"
    if drop > 0:
        return f"dropout={drop} in training"
    if bias.softcap is not None:
        return f"softcap={bias.softcap}"
    if mask_grad:
        return "the float mask or ALiBi slopes need gradients"
    if q.numel() == 0 or v.numel() == 0:
        return "empty input (PyTorch's CPU flash kernel crashes on it)"
    if not q.stride(-1) == k.stride(-1) == v.stride(-1) == 1:
        return "an input's last dimension is strided (PyTorch's CPU flash kernel assumes not)"
    if q.shape[-1] != v.shape[-1]:
        return f"d_k={q.shape[-1]} differs from d_v={v.shape[-1]}"
    return "PyTorch's CPU flash kernel is missing"


# --- routes: each returns (output, weights or None) and reports to an active capture ---------
def _run_reference(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, scale: float, drop: float,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    out, weights = reference_attention(q, k, v, bias, scale=scale, dropout=drop, training=drop > 0)
    _report(q, k, v, bias, scale)
    return out, weights if need_weights else None


def _run_blocked(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, scale: float, drop: float,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    lead, q4, k4, v4 = _views4(q, k, v, bias)
    # the blocked kernel's causal blocks are the square lower triangle (Lq == Lk)
    is_causal, rest = bias.split_start_causal() if bias.lq == bias.lk else (False, bias)
    added = _dense4(rest, weights_dtype(q.dtype), q.device, lead)  # not half precision
    out, weights = attention_with_weights(
        q4, k4, v4, added, causal=is_causal, scale=scale, softcap=bias.softcap
    )
    _report(q, k, v, bias, scale)
    out = out.reshape(*lead, q.shape[-2], v.shape[-1])
    return out, weights.reshape(*lead, q.shape[-2], k.shape[-2]) if need_weights else None


def _run_flash(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, scale: float, drop: float,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    flash = flash_cpu_kernel()
    lq, lk = q.shape[-2], k.shape[-2]
    lead, q4, k4, v4 = _views4(q, k, v, bias)
    is_causal, rest = bias.split_start_causal()
    lengths = None
    only_padding = rest.mask is None and rest.alibi_slopes is None and not rest.causal
    if only_padding and rest.attention_mask is not None and q.dim() == 4 and not q4.requires_grad:
        lengths = prefix_lengths(rest.attention_mask, q4.shape[0], lk)
    if lengths is not None:  # padded batch: attend to each sample's real keys only
        observe.emit_step("mask", None, "key-padding prefix mask → per-sample fused kernel")
        out, lse = padded_flash(q4, k4, v4, lengths, is_causal, scale)  # (B,H,Lq,d_v), (B,H,Lq)
    else:
        added = _dense4(rest, q.dtype, q.device, lead, keep_2d=len(lead) == 2)
        out, lse = flash(q4, k4, v4, 0.0, is_causal, attn_mask=added, scale=scale)[:2]
    weights = None
    capturing = observe.wants_attention()
    b4 = _bias4(bias, lead, q.device) if need_weights or capturing else bias
    if need_weights:
        weights = attention_weights_from_lse(q4, k4, lse, b4, scale=scale)
        weights = weights.reshape(*lead, lq, lk)
    if capturing:
        _emit(q4, k4, b4, scale, lse)
    return (out if len(lead) == 2 else out.reshape(*lead, lq, v.shape[-1])), weights


def _run_portable(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, scale: float, drop: float,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    if not need_weights and bias.softcap is None:
        out = portable.sdpa(q, k, v, bias, scale=scale, dropout=drop)
        _report(q, k, v, bias, scale)
        return out, None
    if needs_grad(q, k, v):
        raise AssertionError("routes with autograd never reach the blocked portable kernel")
    lead, q4, k4, v4 = _views4(q, k, v, bias)
    b4 = _bias4(bias, lead, q.device)
    out, lse, weights = portable.attention_rows(q4, k4, v4, b4, scale=scale,
                                                need_weights=need_weights)  # fmt: skip
    if observe.wants_attention():
        _emit(q4, k4, b4, scale, lse)
    out = out.reshape(*lead, q.shape[-2], v.shape[-1])
    return out, None if weights is None else weights.reshape(*lead, q.shape[-2], k.shape[-2])


_ROUTES = {
    "reference": _run_reference,
    "blocked": _run_blocked,
    "flash-cpu": _run_flash,
    "portable": _run_portable,
}


def _report(q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, scale: float) -> None:
    """For a route whose kernel keeps no log-sum-exp: compute it (blocked, no N×N memory) when a
    capture is recording, so every call is captured exactly."""
    if not observe.wants_attention():
        return
    lead, q4, k4, v4 = _views4(q.detach(), k.detach(), v.detach(), bias)
    b4 = _bias4(bias, lead, q.device)
    _, lse, _ = portable.attention_rows(q4, k4, v4, b4, scale=scale, need_weights=False,
                                        need_output=False)  # fmt: skip
    _emit(q4, k4, b4, scale, lse)


def _emit(q4: Tensor, k4: Tensor, bias: AttentionBias, scale: float, lse: Tensor) -> None:
    observe.emit_attention(observe.AttentionCall(q=q4, k=k4, bias=bias, scale=scale, lse=lse))


def attention_weights_from_lse(
    q: Tensor,  # (B, H, Lq, d)
    k: Tensor,  # (B, H, Lk, d)
    lse: Tensor,  # (B, H, Lq)
    bias: AttentionBias | None = None,
    *,
    scale: float,
    rows: slice = slice(None),
) -> Tensor:
    """Exact weights w = exp(cap(q·kᵀ·scale) + bias − lse) for query ``rows``: ``(B, H, rows, Lk)``.

    Without a softcap one batched matmul writes the exponent straight into the result: the
    subtraction of the log-sum-exp is folded into it by appending −lse to each query and a 1 to
    each key, so [q·scale, −lse]·[k, 1]ᵀ = q·kᵀ·scale − lse. Then the bias is added and ``exp_``
    runs in place: nothing but the result is of size N×N.
    """
    start, stop, _ = rows.indices(q.shape[-2])
    dtype = weights_dtype(q.dtype)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], lse.shape[:-1])
    q = q[..., start:stop, :].to(dtype).expand(*batch, stop - start, q.shape[-1])
    k = k.to(dtype).expand(*batch, *k.shape[-2:])
    lse = lse[..., start:stop].to(dtype).expand(*batch, stop - start)
    bias = AttentionBias(q.shape[-2], k.shape[-2]) if bias is None else bias
    is_causal, rest = bias.split_start_causal()
    with torch.no_grad():
        if bias.softcap is None:
            q_aug = torch.cat((q * scale, -lse[..., None]), dim=-1)  # (B, H, r, d + 1)
            k_aug = torch.cat((k, torch.ones_like(k[..., :1])), dim=-1)  # (B, H, Lk, d + 1)
            weights = torch.matmul(q_aug, k_aug.transpose(-2, -1))  # (B, H, r, Lk)
        else:
            weights = bias.cap_(torch.matmul(q * scale, k.transpose(-2, -1)))
            weights.sub_(lse[..., None])
        added = rest.dense(dtype, q.device, rows=slice(start, stop))
        if added is not None:
            weights.add_(added)
        weights.exp_()
        if is_causal:  # zero keys after the query: j > i, with i counted from ``start``
            weights.tril_(diagonal=start)
    return weights


def _views4(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias
) -> tuple[tuple[int, ...], Tensor, Tensor, Tensor]:
    """The broadcast leading shape and the (B', H', L, d) views of q, k and v."""
    lead = leading_shape(q, k, v, bias.mask)
    return lead, _as4d(q, lead), _as4d(k, lead), _as4d(v, lead)


def _as4d(t: Tensor, lead: tuple[int, ...]) -> Tensor:
    """(…, L, d) → (B', H', L, d) with leading dims broadcast to ``lead``."""
    t = t.expand(*lead, *t.shape[-2:]) if t.shape[:-2] != lead else t
    if len(lead) == 2:
        return t
    if len(lead) < 2:
        return t.reshape(*((1,) * (2 - len(lead))), *t.shape)
    return t.reshape(-1, lead[-1], *t.shape[-2:])


def _dense4(
    bias: AttentionBias, dtype: torch.dtype, device: torch.device, lead: tuple[int, ...],
    *, keep_2d: bool = False,
) -> Tensor | None:  # fmt: skip
    """The bias as one float tensor for 4-D kernels, broadcastable to (B', H', Lq, Lk); kept
    (Lq, Lk) when ``keep_2d`` and it has no leading dims."""
    added = bias.dense(dtype, device, n_lead=len(lead))
    if added is None or (keep_2d and added.dim() <= 2):
        return added
    added = added.reshape((1,) * (len(lead) + 2 - added.dim()) + tuple(added.shape))
    if len(lead) == 2:
        return added  # (B|1, H|1, Lq|1, Lk|1)
    return _as4d(added.expand(*lead, *added.shape[-2:]), lead)  # (B', H', Lq, Lk)


def _bias4(bias: AttentionBias, lead: tuple[int, ...], device: torch.device) -> AttentionBias:
    """The bias for the 4-D view of the inputs: itself when the inputs are (B, H, L, d), else
    one float mask over the flattened leading dims (causal, window, padding and ALiBi in it)."""
    if len(lead) == 2 or not (bias.has_tensor_part or bias.causal):
        return bias
    floating = bias.mask is not None and bias.mask.is_floating_point()
    dtype = weights_dtype(bias.mask.dtype) if floating else torch.float32
    added = _dense4(bias, dtype, device, lead)
    return AttentionBias(bias.lq, bias.lk, mask=added, softcap=bias.softcap)
