"""Multi-head attention: a thin module over :func:`attnlab.scaled_dot_product_attention`.

MultiHead(Q, K, V) = Concat(head_1, …, head_H)·W_O,  head_i = Attention(Q·W_i^Q, K·W_i^K, V·W_i^V)
(Vaswani et al., 2017, §3.2.2).

W_Q, W_K, W_V and W_O are D×D matrices; the forward pass only *views* them as H blocks of
d_h = D/H columns, so H heads have exactly the parameters of one head of size D (see
:func:`attention_parameter_count`). More heads cost more compute, not more parameters.

Dimension legend: B batch, T / Lq query positions, S / Lk key positions, D model width,
H heads, H_kv key/value heads (grouped-query attention), d_h = D / H head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab import observe
from attnlab.functional.attention import scaled_dot_product_attention
from attnlab.functional.checks import check_one_device, needs_grad
from attnlab.functional.linear import linear, transposed_layout
from attnlab.hooks import HookPoint, apply_linear, call_hook, has_hooks, hooks_below
from attnlab.nn.kv_cache import LayerKVCache

__all__ = ["MultiHeadAttention"]


def _nearest_divisors(d_model: int, n_heads: int) -> list[int]:
    divisors = [h for h in range(1, d_model + 1) if d_model % h == 0]
    below = [h for h in divisors if h < n_heads]
    above = [h for h in divisors if h > n_heads]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


class MultiHeadAttention(nn.Module):
    """Batch-first multi-head attention ``(B, T, D)``, self- or cross-attention.

    Args:
        d_model: model width D (the query size and the output size).
        n_heads: number of query heads H; D must be divisible by H.
        kdim, vdim: sizes of the key and value inputs for cross-attention (default D).
        n_kv_heads: key/value heads H_kv for grouped-query attention (H_kv divides H; 1 is
            multi-query attention). Default H (ordinary multi-head attention).
        bias: add biases to the four projections.
        dropout: dropout on the attention weights during training.
        scale: multiplies the scores; default 1/√d_h. (1.0 reproduces "forgetting the scaling",
            one of the notes' pitfalls; see the ``scaling`` experiment.)

    Hook points (identity modules, see :mod:`attnlab.hooks`; a forward hook's non-None return
    replaces the value):

    * ``hook_q`` (B, H, T, d_h): queries split into heads. (No positional rotation happens
      inside this module; a rotation added here must come before the hook.)
    * ``hook_k``, ``hook_v`` (B, H_kv, S, d_h): keys / values with their own H_kv heads, before
      the grouped-query expansion to H. With ``kv_cache`` they see the **new positions only**,
      before they are appended, so a replacement is what the cache stores.
    * ``hook_pattern`` (B, H, T, S): the attention weights. Computed only when a hook is
      attached here (or globally): the kernel is then asked for ``need_weights=True``. A
      replacement pattern P takes effect: the output is recomputed as P·v (with dropout on P
      in training, as the kernel does).
    * ``hook_z`` (B, T, H, d_h): per-head outputs before W_O; a replacement takes effect.
    * ``hook_out`` (B, T, D): after W_O.

    Forward hooks on ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` fire: the fused
    projection path steps aside when any hook is attached (:func:`attnlab.hooks.apply_linear`).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        n_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        scale: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        sizes = (("d_model", d_model), ("n_heads", n_heads), ("kdim", kdim), ("vdim", vdim))
        for name, value in sizes:
            if value is None and name in ("kdim", "vdim"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, int | float)
            or not 0 < scale < math.inf
        ):  # fmt: skip
            raise ValueError(f"scale must be a positive finite number or None; got {scale!r}")
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads: {d_model} % {n_heads} = "
                f"{d_model % n_heads}; nearest valid head counts: "
                f"{_nearest_divisors(d_model, n_heads)}"
            )
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if not isinstance(n_kv_heads, int) or n_kv_heads <= 0 or n_heads % n_kv_heads != 0:
            raise ValueError(
                f"n_kv_heads must be a positive divisor of n_heads={n_heads}; got {n_kv_heads!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.kdim = d_model if kdim is None else kdim
        self.vdim = d_model if vdim is None else vdim
        self.dropout = dropout
        self.scale = scale  # None → 1/√d_h
        kv_width = n_kv_heads * self.head_dim
        factory = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(d_model, d_model, bias=bias, **factory)  # W_Q
        self.k_proj = nn.Linear(self.kdim, kv_width, bias=bias, **factory)  # W_K
        self.v_proj = nn.Linear(self.vdim, kv_width, bias=bias, **factory)  # W_V
        self.out_proj = nn.Linear(d_model, d_model, bias=bias, **factory)  # W_O
        # Inference cache of [W_Q; W_K; W_V] stacked (see _stacked_qkv); not a parameter.
        self._stacked: tuple[Tensor, Tensor | None] = (torch.empty(0), None)
        self._stacked_key: tuple | None = None
        self.hook_q = HookPoint()  # (B, H, T, d_h)
        self.hook_k = HookPoint()  # (B, H_kv, S_new, d_h)
        self.hook_v = HookPoint()  # (B, H_kv, S_new, d_h)
        self.hook_pattern = HookPoint()  # (B, H, T, S)
        self.hook_z = HookPoint()  # (B, T, H, d_h)
        self.hook_out = HookPoint()  # (B, T, D)

    def forward(
        self,
        query: Tensor,  # (B, T, D)
        key: Tensor | None = None,  # (B, S, kdim); None → self-attention
        value: Tensor | None = None,  # (B, S, vdim); None → key
        *,
        mask: Tensor | None = None,  # broadcastable to (B, H, T, S); True = may attend
        attention_mask: Tensor | None = None,  # (B, S); True (or 1) = real token
        causal: bool = False,
        need_weights: bool = False,
        average_weights: bool = False,
        kv_cache: LayerKVCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Returns ``(output (B, T, D), weights)``; weights are ``(B, H, T, S)`` per head, or
        ``(B, T, S)`` with ``average_weights``, and None unless ``need_weights``.

        ``attention_mask`` is the padding mask, **True (or 1) = real token** (may be attended),
        Hugging Face's name and convention; ``nn.MultiheadAttention``'s ``key_padding_mask``
        uses the opposite one (convert with :func:`attnlab.functional.masks.from_masked_out`).
        ``mask`` is the full attention mask, True = may attend.
        With ``kv_cache``, the new keys/values are appended and attention runs over the whole
        cache; ``causal`` then aligns to the end (new queries see all cached positions).
        """
        with observe.scope(self):
            return self._forward(
                query, key, value, mask, attention_mask, causal, need_weights,
                average_weights, kv_cache,
            )  # fmt: skip

    def _forward(
        self,
        query: Tensor,
        key: Tensor | None,
        value: Tensor | None,
        mask: Tensor | None,
        attention_mask: Tensor | None,
        causal: bool,
        need_weights: bool,
        average_weights: bool,
        kv_cache: LayerKVCache | None,
    ) -> tuple[Tensor, Tensor | None]:
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value, mask, attention_mask, kv_cache)
        B, T, _ = query.shape
        H, H_kv, d_h = self.n_heads, self.n_kv_heads, self.head_dim
        observe.emit_step("x", query)
        hooked = hooks_below(self)  # one check for every hook point and projection below
        if (
            key is query and value is query and self.kdim == self.vdim == self.d_model
            and not (hooked and any(map(has_hooks, (self.q_proj, self.k_proj, self.v_proj))))
        ):  # fmt: skip
            q, k, v = self._project_self(query)  # one GEMM for W_Q, W_K, W_V
        else:
            q = apply_linear(self.q_proj, query)  # (B, T, D)
            k = apply_linear(self.k_proj, key)  # (B, S, H_kv·d_h)
            v = apply_linear(self.v_proj, value)  # (B, S, H_kv·d_h)
        observe.emit_step("q", q)
        q = q.view(B, T, H, d_h).transpose(1, 2)  # (B, T, H, d_h) → (B, H, T, d_h)
        S = key.shape[1]  # not -1: with B = 0 the view could not infer it
        k = k.view(B, S, H_kv, d_h).transpose(1, 2)  # (B, H_kv, S, d_h)
        v = v.view(B, S, H_kv, d_h).transpose(1, 2)  # (B, H_kv, S, d_h)
        observe.emit_step("heads", q, f"{self.d_model} → {H}×{d_h}")
        if hooked:
            q, k, v = (
                call_hook(self.hook_q, q),
                call_hook(self.hook_k, k),
                call_hook(self.hook_v, v),
            )
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # (B, H_kv, S_cached + S, d_h)
        if H_kv != H:  # grouped-query: each key/value head serves H / H_kv query heads
            k = k.repeat_interleave(H // H_kv, dim=1)  # (B, H, S, d_h)
            v = v.repeat_interleave(H // H_kv, dim=1)
        pattern_hooked = hooked and has_hooks(self.hook_pattern)
        if pattern_hooked:
            observe.emit_step("hook_pattern", None, "hook_pattern attached: weights computed")
        out, weights = scaled_dot_product_attention(
            q, k, v, mask, attention_mask=attention_mask, causal=causal, scale=self.scale,
            dropout=self.dropout, need_weights=need_weights or pattern_hooked,
            training=self.training,
        )  # fmt: skip
        # out (B, H, T, d_h); weights (B, H, T, S) or None
        if pattern_hooked:
            out, weights = self._hook_pattern(out, weights, v, need_weights)
        z = out.transpose(1, 2)  # (B, H, T, d_h) → (B, T, H, d_h)
        if hooked:
            z = call_hook(self.hook_z, z)
        out = z.reshape(B, T, self.d_model)  # concat heads: (B, T, H, d_h) → (B, T, D)
        observe.emit_step("concat", out, f"{H}×{d_h} → {self.d_model}")
        # W_O, no non-linearity after the concatenation: (B, T, D)
        if hooked:
            out = call_hook(self.hook_out, apply_linear(self.out_proj, out))
        else:
            out = linear(out, self.out_proj.weight, self.out_proj.bias)
        observe.emit_step("out", out)
        if weights is not None and average_weights:
            weights = weights.mean(dim=1)  # (B, T, S)
        return out, weights

    def _hook_pattern(
        self, out: Tensor, weights: Tensor, v: Tensor, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Run ``hook_pattern`` on the weights (B, H, T, S). The output is then P·v
        (B, H, T, d_h) with the pattern P the hooks return (or edited in place), as
        TransformerLens computes it, so an edit takes effect."""
        pattern = self.hook_pattern(weights)
        dropped = F.dropout(pattern, self.dropout, training=self.training)
        out = dropped.to(v.dtype) @ v  # (B, H, T, S) @ (B, H, S, d_h) → (B, H, T, d_h)
        return out, pattern if need_weights else None

    def _project_self(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention projections as one matmul with [W_Q; W_K; W_V] stacked: the same
        numbers as three calls, but one pass over x (three small GEMMs per token dominate
        decoding). x (B, T, D) → q (B, T, D), k and v (B, T, H_kv·d_h)."""
        weight, bias = self._stacked_qkv()
        qkv = linear(x, weight, bias)  # (B, T, D + 2·H_kv·d_h)
        kv_width = self.n_kv_heads * self.head_dim
        q, k, v = qkv.split([self.d_model, kv_width, kv_width], dim=-1)
        return q, k, v

    def _stacked_qkv(self) -> tuple[Tensor, Tensor | None]:
        projections = (self.q_proj, self.k_proj, self.v_proj)
        has_bias = self.q_proj.bias is not None
        params = [p for proj in projections for p in (proj.weight, proj.bias) if p is not None]
        if needs_grad(*params):
            # Training: stack with autograd so gradients reach each projection.
            weight = torch.cat([proj.weight for proj in projections])
            bias = torch.cat([proj.bias for proj in projections]) if has_bias else None
            return weight, bias
        # Inference: reuse the stacked copy while no parameter has changed (same storage,
        # same in-place version counter). Without PyTorch's (private) version counter nothing
        # can tell an in-place change, so the copy is made afresh every call.
        versions = [getattr(p, "_version", None) for p in params]
        key = tuple((p.data_ptr(), v, p.dtype) for p, v in zip(params, versions, strict=True))
        if None in versions or self._stacked_key != key:
            with torch.no_grad():
                weight = torch.cat([proj.weight for proj in projections])
                bias = torch.cat([proj.bias for proj in projections]) if has_bias else None
                if self.q_proj.weight.stride(0) == 1:  # keep a decode-friendly (in, out) order
                    weight = transposed_layout(weight)
            self._stacked = (weight, bias)
            self._stacked_key = key
        return self._stacked

    def _check_inputs(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None,
        attention_mask: Tensor | None, kv_cache: LayerKVCache | None,
    ) -> None:  # fmt: skip
        """Every argument checked before any projection runs."""
        expected = {"query": self.d_model, "key": self.kdim, "value": self.vdim}
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3:
                raise ValueError(
                    f"{name} must have shape (B, T, {expected[name]}) (batch first); got "
                    f"{tuple(t.shape)}"
                )
            if t.shape[-1] != expected[name]:
                raise ValueError(
                    f"{name} must have last dimension {expected[name]}; got shape {tuple(t.shape)}"
                )
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(
                f"key and value must share (B, S); got key {tuple(key.shape)}, "
                f"value {tuple(value.shape)}"
            )
        if query.shape[0] != key.shape[0]:
            raise ValueError(
                f"query and key must have the same batch size: query has {query.shape[0]}, "
                f"key has {key.shape[0]}"
            )
        self._check_devices(query, key, value, mask, attention_mask)
        weight_dtype = self.q_proj.weight.dtype
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dtype != weight_dtype:
                raise ValueError(
                    f"{name} must have the layer's dtype {weight_dtype}; got {t.dtype} (convert "
                    "the input, or the layer with .to(dtype))"
                )
        B, T = query.shape[:2]
        S = key.shape[1] + (kv_cache.length if kv_cache is not None else 0)
        if attention_mask is not None:
            if attention_mask.shape != (B, S):
                raise ValueError(
                    f"attention_mask must have shape (B, S) = ({B}, {S}); got "
                    f"{tuple(attention_mask.shape)}"
                )
            if attention_mask.is_floating_point():
                raise ValueError(
                    "attention_mask must be bool or integer 0/1 (True/1 = real token); got "
                    f"dtype {attention_mask.dtype}"
                )
        if mask is not None:
            full = (B, self.n_heads, T, S)
            try:
                fits = mask.dim() <= 4 and torch.broadcast_shapes(mask.shape, full) == full
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(
                    f"mask of shape {tuple(mask.shape)} cannot broadcast to (B, H, T, S) = {full}"
                )

    def _check_devices(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None,
        attention_mask: Tensor | None,
    ) -> None:  # fmt: skip
        """Inputs and masks on the parameters' device (a few attribute reads when they are)."""
        weight = self.q_proj.weight
        if (
            query.device == key.device == value.device == weight.device
            and (mask is None or mask.device == weight.device)
            and (attention_mask is None or attention_mask.device == weight.device)
        ):
            return
        tensors = {"query": query, "key": key, "value": value, "mask": mask,
                   "attention_mask": attention_mask, "q_proj.weight": weight}  # fmt: skip
        check_one_device("one device", **{n: t for n, t in tensors.items() if t is not None})

    @classmethod
    def from_torch(cls, m: torch.nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention``'s weights in an attnlab module. attnlab is
        batch-first and its masks use True = may attend: convert PyTorch masks with
        :func:`attnlab.masks.from_masked_out`."""
        from attnlab.nn.convert import mha_from_torch

        return mha_from_torch(m)

    def to_torch(self) -> torch.nn.MultiheadAttention:
        """The same weights in a batch-first ``torch.nn.MultiheadAttention``."""
        from attnlab.nn.convert import mha_to_torch

        return mha_to_torch(self)

    def extra_repr(self) -> str:
        kv = f", n_kv_heads={self.n_kv_heads}" if self.n_kv_heads != self.n_heads else ""
        return f"d_model={self.d_model}, n_heads={self.n_heads}, head_dim={self.head_dim}{kv}"
