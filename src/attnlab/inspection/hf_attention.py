"""attnlab's attention function for Hugging Face models (transformers' ``AttentionInterface``).

transformers calls one registered function for every attention layer of ~350 architectures:

    fn(module, query (B, H, Lq, d), key (B, H_kv, Lk, d), value (B, H_kv, Lk, d_v),
       attention_mask (B, 1, Lq, Lk) bool | float | None, dropout, scaling, is_causal, **kwargs)
    → (output (B, Lq, H, d_v), weights (B, H, Lq, Lk) or None)

``query`` already carries rotary embeddings and q/k norms; ``key``/``value`` include the KV cache
and are *not* repeated for grouped-query attention (H = groups · H_kv). :func:`attention_forward`
computes exactly what transformers' SDPA function computes — on the CPU it runs the same flash
kernel on the same inputs, so outputs are bit-identical — but keeps the kernel's per-row
log-sum-exp and reports (q, k, bias, scale, lse) to an active :func:`attnlab.capture`, which
rebuilds any weight exactly: w = exp(cap(q·kᵀ·scale) + bias − lse).

Keyword arguments that change the mathematics are each handled exactly:

* ``softcap`` (Gemma 2): scores → cap·tanh(s / cap) before the mask. The flash kernel cannot
  apply it, so these layers run the blocked exact route (:func:`portable.attention_rows`).
* ``s_aux`` (attention sinks, GPT-OSS): one extra logit per head that takes probability mass
  but has no value: lse' = logaddexp(lse, sink), output · exp(lse − lse'); rows sum to < 1.
* ``position_bias`` (T5): added to the scores (folded with the mask, or the causal triangle
  when there is no mask, as transformers does).

Anything else that is not known to be harmless is refused with a ValueError, never ignored.
Dimension legend: B batch, H query heads, H_kv key/value heads, Lq queries, Lk keys, d head size.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

import torch
from torch import Tensor, nn

from attnlab import observe
from attnlab.functional import portable
from attnlab.functional.attention import flash_layout
from attnlab.functional.backends import current_backend, flash_cpu_kernel
from attnlab.functional.bias import AttentionBias
from attnlab.functional.reference import reference_attention

__all__ = ["HARMLESS_KWARGS", "attention_forward", "head_edits", "value_records"]

# Keyword arguments models pass that do not change the attention's mathematics (positions are
# already in q and k; sliding windows are already in the mask; the rest are bookkeeping).
HARMLESS_KWARGS = frozenset({
    "position_ids", "cache_position", "use_cache", "output_attentions", "output_router_logits",
    "sliding_window", "encoder_hidden_states", "past_key_values", "past_key_value",
    "query_length", "layer_idx", "return_dict", "output_hidden_states", "token_type_ids",
})  # fmt: skip
_HANDLED_KWARGS = frozenset({"softcap", "s_aux", "position_bias"})

# Edits of head outputs inside the attention function (ablate_heads on Hugging Face models):
# module id → function (B, H, Lq, d_v) → (B, H, Lq, d_v).
head_edits: ContextVar[dict[int, Callable[[Tensor], Tensor]] | None] = ContextVar(
    "attnlab_hf_head_edits", default=None
)


# While a measure needs them: module id → (values (B, H_kv, Lk, d_v), the returned output), so the
# output projection that consumes the output can be found (see attnlab.measures.value_norms).
value_records: ContextVar[dict[int, tuple[Tensor, Tensor]] | None] = ContextVar(
    "attnlab_hf_value_records", default=None
)


def attention_forward(
    module: nn.Module,
    query: Tensor,  # (B, H, Lq, d)
    key: Tensor,  # (B, H_kv, Lk, d)
    value: Tensor,  # (B, H_kv, Lk, d_v)
    attention_mask: Tensor | None,  # (B, 1, Lq, Lk) bool (True = attend) or additive float
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: object,
) -> tuple[Tensor, Tensor | None]:
    """transformers' attention contract, computed exactly and reported to attnlab's capture."""
    _refuse_unknown(module, kwargs)
    position_bias = kwargs.get("position_bias")
    softcap, sinks = kwargs.get("softcap"), kwargs.get("s_aux")
    H, H_kv = query.shape[1], key.shape[1]
    if H % H_kv:
        raise ValueError(
            f"{type(module).__name__}: query heads ({H}) must be a multiple of key/value heads "
            f"({H_kv})"
        )
    lq = query.shape[2]
    is_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    is_causal = bool(lq > 1 and attention_mask is None and is_causal)
    if is_causal and key.shape[2] > lq:  # causal prefill into a longer (static) cache: as SDPA
        key, value = key[:, :, :lq], value[:, :, :lq]
        position_bias = None if position_bias is None else position_bias[..., :lq]
    scale = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    added = _additive_mask(attention_mask, position_bias, is_causal, query, key)
    if added is not None:
        is_causal = False  # the causal triangle is folded into the position-bias mask
    bias = AttentionBias(lq, key.shape[2], mask=added, causal=is_causal,
                         softcap=None if softcap is None else float(softcap))  # fmt: skip
    drop = float(dropout) if module.training else 0.0
    out, lse = _attend(query, key, value, bias, scale, drop)  # (B, H, Lq, d_v), (B, H, Lq)
    if sinks is not None:
        sink = sinks.to(lse.dtype).reshape(1, H, 1)  # (H,) → (1, H, 1)
        with_sink = torch.logaddexp(lse, sink)
        out = out * torch.exp(lse - with_sink).unsqueeze(-1).to(out.dtype)
        lse = with_sink
    edits = head_edits.get()
    if edits and id(module) in edits:
        out = edits[id(module)](out)
    weights = None
    if observe.wants_attention() or _weights_requested(kwargs):
        call = observe.AttentionCall(
            q=query.detach(), k=key.detach(), bias=bias, scale=scale, lse=lse.detach(),
            sinks=None if sinks is None else sinks.detach().to(lse.dtype).reshape(H),
        )  # fmt: skip
        with observe.scope(module):
            observe.emit_attention(call)
        if _weights_requested(kwargs):
            from attnlab.inspection.attention_map import AttentionMap

            amap = AttentionMap(q=call.q, k=call.k, lse=call.lse, scale=scale, bias=bias,
                                sinks=call.sinks)  # fmt: skip
            weights = amap.rows().to(query.dtype)
    out = out.transpose(1, 2).contiguous()  # (B, Lq, H, d_v)
    records = value_records.get()
    if records is not None:
        records[id(module)] = (value.detach(), out)
    return out, weights


def _refuse_unknown(module: nn.Module, kwargs: dict[str, object]) -> None:
    known = HARMLESS_KWARGS | _HANDLED_KWARGS
    unknown = sorted(k for k, v in kwargs.items() if v is not None and k not in known)
    if unknown:
        raise ValueError(
            f"attnlab's attention function does not know the argument(s) {unknown} that "
            f"{type(module).__name__} passes; they may change the attention, so it refuses "
            f"rather than ignore them (known: {sorted(_HANDLED_KWARGS | HARMLESS_KWARGS)})"
        )


def _weights_requested(kwargs: dict[str, object]) -> bool:
    """``output_attentions=True`` reached this call: as a keyword argument, or through
    transformers' output recorder (models such as GPT-2 do not pass it down)."""
    if kwargs.get("output_attentions"):
        return True
    try:
        from transformers.utils.output_capturing import _active_collector
    except ImportError:  # another transformers version: only the keyword argument counts
        return False
    collected = _active_collector.get()
    return bool(collected) and ("attentions" in collected or "cross_attentions" in collected)


def _additive_mask(
    mask: Tensor | None, position_bias: Tensor | None, is_causal: bool, q: Tensor, k: Tensor
) -> Tensor | None:
    """The mask as transformers' SDPA function passes it on: a bool mask as is, a float mask as
    is, and T5's position bias folded with the mask (finfo.min where hidden) or, without a mask,
    with the causal triangle. (B|1, 1|H, Lq, Lk) or None."""
    if position_bias is None:
        return mask
    lowest = torch.finfo(k.dtype).min
    if mask is None:
        if not is_causal:
            return position_bias
        lq, lk = q.shape[2], k.shape[2]
        seen = torch.ones(lq, lk, dtype=torch.bool, device=k.device).tril()  # (Lq, Lk)
        return torch.where(seen, position_bias, lowest)
    if mask.dtype == torch.bool:
        return torch.where(mask, position_bias, lowest)
    return position_bias + mask


def _attend(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, scale: float, drop: float
) -> tuple[Tensor, Tensor]:
    """(output (B, H, Lq, d_v), lse (B, H, Lq) in float32; +inf where a row sees no key)."""
    groups = q.shape[1] // k.shape[1]
    flash = flash_cpu_kernel()
    if (
        flash is not None and drop == 0.0 and bias.softcap is None
        and q.device.type == "cpu" and current_backend() in ("auto", "flash-cpu")
        and flash_layout(q, k, v)
    ):  # fmt: skip
        out, lse = _flash_as_sdpa(flash, q, k, v, bias, scale, groups)
    else:
        k, v = _repeat_kv(k, groups), _repeat_kv(v, groups)
        if drop > 0:  # output with dropout; the map is the weights before dropout
            out, _ = reference_attention(q, k, v, bias, scale=scale, dropout=drop, training=True)
            _, lse, _ = portable.attention_rows(q, k, v, bias, scale=scale, need_weights=False,
                                                need_output=False)  # fmt: skip
        else:
            out, lse, _ = portable.attention_rows(q, k, v, bias, scale=scale, need_weights=False)
            out = out.to(q.dtype)
    # A row that sees no key: lse −inf (a bool mask), or about finfo.min when a float mask hides
    # keys with finfo.min (T5's position-bias mask): +inf, so its rebuilt weights are 0.
    lse = lse.float()
    empty = lse < torch.finfo(torch.float32).min / 2
    return out, torch.where(empty, float("inf"), lse)


def _flash_as_sdpa(
    flash: Callable[..., tuple[Tensor, ...]], q: Tensor, k: Tensor, v: Tensor,
    bias: AttentionBias, scale: float, groups: int,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """PyTorch's CPU flash kernel on exactly the inputs ``F.scaled_dot_product_attention`` gives
    it for transformers' SDPA function (grouped queries packed for one-token decoding, keys
    repeated otherwise; a bool mask turned additive), so the output is bit-identical."""
    mask = bias.mask
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(
            ~mask, float("-inf")
        )  # as SDPA converts a bool mask
    elif mask is not None:
        mask = mask.to(q.dtype)
    B, H, lq, _ = q.shape
    if groups > 1 and lq == 1 and mask is not None:  # transformers packs one-token decoding
        q_packed = q.reshape(B, H // groups, groups, q.shape[-1])  # (B, H_kv, g, d)
        out, lse = flash(q_packed, k, v, 0.0, False, attn_mask=mask, scale=scale)[:2]
        return out.reshape(B, H, 1, v.shape[-1]), lse.reshape(B, H, 1)
    k, v = _repeat_kv(k, groups), _repeat_kv(v, groups)
    out, lse = flash(q, k, v, 0.0, bias.causal, attn_mask=mask, scale=scale)[:2]
    return out, lse


def _repeat_kv(x: Tensor, groups: int) -> Tensor:
    """(B, H_kv, L, d) → (B, H_kv·groups, L, d), each key/value head shared by ``groups``
    consecutive query heads."""
    if groups == 1:
        return x
    B, H_kv, L, d = x.shape
    return x[:, :, None].expand(B, H_kv, groups, L, d).reshape(B, H_kv * groups, L, d)
