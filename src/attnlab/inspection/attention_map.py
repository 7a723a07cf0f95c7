"""AttentionMap: an exact, lazy view of one layer's attention weights (B, H, Lq, Lk).

Instead of the N×N matrix it keeps what recomputes any weight exactly: the queries and keys,
the scale, the call's :class:`~attnlab.functional.bias.AttentionBias` (mask, causal rule — end
aligned, as everywhere in attnlab —, window, padding, ALiBi, softcap) and the per-row
log-sum-exp that the kernel returned with its output:

    weights[b, h, i, j] = exp(cap(q[b,h,i]·k[b,h//g,j]·scale) + bias[b,h,i,j] − lse[b,h,i])

(g = query heads per key head: 1, or the group size of grouped-query attention, whose keys are
stored once per key/value head.)

Memory is O(N·d) per layer. Any slice is computed on demand; reductions (top-k, entropy, mean
over heads, attention received, pooled maps) stream over blocks of query rows and never hold
more than one (B, H, block, Lk) tile.

Dimension legend: B batch, H heads, Lq queries, Lk keys, d head size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from attnlab.atomic import atomic_write
from attnlab.functional.attention import attention_weights_from_lse
from attnlab.functional.bias import AttentionBias

__all__ = ["AttentionMap"]

_ROWS_PER_BLOCK_BYTES = 64 * 2**20  # tile budget for streamed reductions
_FORMAT = "attnlab.AttentionMap/2"
_FLOOR = -1e30  # log-weights below this are 0: a finite floor keeps the kernel free of −inf rows


@dataclass(frozen=True)
class AttentionMap:
    q: Tensor  # (B, H, Lq, d) unscaled queries
    k: Tensor  # (B, H_kv, Lk, d) keys; H_kv divides H (grouped-query: stored once per KV head)
    lse: Tensor  # (B, H, Lq) log-sum-exp of each row's scaled, biased scores
    scale: float
    bias: AttentionBias | None = None  # mask, causal rule, padding, ALiBi, softcap; None: none
    # (H,) logits of attention sinks (GPT-OSS) already included in lse: rows then sum to
    # 1 − exp(sink − lse) (see row_mass); None: no sinks
    sinks: Tensor | None = None

    def __post_init__(self) -> None:
        lq, lk = self.q.shape[-2], self.k.shape[-2]
        if self.q.dim() != 4 or self.k.dim() != 4 or self.q.shape[1] % self.k.shape[1]:
            raise ValueError(
                f"q must be (B, H, Lq, d) and k (B, H_kv, Lk, d) with H_kv dividing H; got q "
                f"{tuple(self.q.shape)} and k {tuple(self.k.shape)}"
            )
        if self.bias is not None and (self.bias.lq, self.bias.lk) != (lq, lk):
            raise ValueError(
                f"bias was built for (Lq, Lk) = ({self.bias.lq}, {self.bias.lk}); q and k give "
                f"({lq}, {lk})"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        B, H, Lq, _ = self.q.shape
        return (B, H, Lq, self.k.shape[-2])

    @property
    def kv_groups(self) -> int:
        """Query heads per stored key head (1 unless grouped-query attention)."""
        return self.q.shape[1] // self.k.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes this map holds (compare: a dense float32 map is 4·B·H·Lq·Lk)."""
        tensors = [t for t in (self.q, self.k, self.lse, self.sinks) if t is not None]
        bias = 0 if self.bias is None else self.bias.nbytes
        return sum(t.numel() * t.element_size() for t in tensors) + bias

    # --- exact slices -----------------------------------------------------------------------
    def rows(self, start: int = 0, stop: int | None = None, *, heads: slice | int = slice(None)
             ) -> Tensor:  # fmt: skip
        """Exact weights for query rows [start, stop): (B, H', rows, Lk) (H' = 1 for an int)."""
        _B, _H, Lq, _Lk = self.shape
        stop = Lq if stop is None else stop
        if not 0 <= start <= stop <= Lq:
            raise ValueError(f"query rows must lie in [0, {Lq}]; got [{start}, {stop})")
        h = self._heads(heads)
        return attention_weights_from_lse(
            self.q[:, h], self._keys_of_heads(h), self.lse[:, h], self._bias_of_heads(h),
            scale=self.scale, rows=slice(start, stop),
        )  # fmt: skip

    def head(self, h: int) -> Tensor:
        """One head's whole map (B, Lq, Lk), exact."""
        return self.rows(heads=h)[:, 0]

    def query(self, i: int) -> Tensor:
        """What query i attends to: (B, H, Lk)."""
        if not -self.shape[2] <= i < self.shape[2]:
            raise ValueError(f"query index must lie in [0, {self.shape[2]}); got {i}")
        i %= self.shape[2]
        return self.rows(i, i + 1)[:, :, 0]

    def dense(self, *, max_bytes: int = 2**30) -> Tensor:
        """The whole map (B, H, Lq, Lk) in float32, refusing before allocating when it would
        exceed ``max_bytes``."""
        need = math.prod(self.shape) * 4
        if need > max_bytes:
            raise ValueError(
                f"the dense map {self.shape} needs {need / 2**20:,.0f} MiB, over max_bytes="
                f"{max_bytes / 2**20:,.0f} MiB: slice it (rows, head, query) or use a reduction "
                "(topk, entropy, pooled), or raise max_bytes"
            )
        return self.rows()

    # --- streamed reductions ----------------------------------------------------------------
    def row_blocks(
        self, start: int = 0, stop: int | None = None, *, budget: int = _ROWS_PER_BLOCK_BYTES
    ) -> list[tuple[int, int]]:
        """Spans [a, b) covering query rows [start, stop) (default: all) such that a float32
        tile of weights (B, H, b − a, Lk) fits in ``budget`` bytes: the unit of work of every
        streamed reduction."""
        B, H, Lq, Lk = self.shape
        stop = Lq if stop is None else stop
        if not 0 <= start <= stop <= Lq:
            raise ValueError(f"rows must satisfy 0 <= start <= stop <= {Lq}; got start={start}, "
                             f"stop={stop}")  # fmt: skip
        block = max(1, budget // max(1, B * H * Lk * 4))
        return [(a, min(stop, a + block)) for a in range(start, stop, block)]

    def _blocks(self) -> Iterator[tuple[int, int, Tensor]]:
        for start, stop in self.row_blocks():
            yield start, stop, self.rows(start, stop)  # (B, H, rows, Lk)

    def topk(self, k: int) -> tuple[Tensor, Tensor]:
        """The k largest weights of every query row and their key indices: (B, H, Lq, k) each."""
        _positive_int("k", k)
        k = min(k, self.shape[3])
        values, indices = zip(*(tile.topk(k, dim=-1) for _, _, tile in self._blocks()), strict=True)
        return torch.cat(values, dim=2), torch.cat(indices, dim=2)

    def entropy(self) -> Tensor:
        """Entropy (nats) of each query row's distribution: (B, H, Lq); 0 for empty rows."""
        parts = []
        for _, _, tile in self._blocks():
            zero = torch.zeros((), dtype=tile.dtype, device=tile.device)
            logs = torch.where(tile > 0, tile.log(), zero)
            parts.append(-(tile * logs).sum(-1))
        return torch.cat(parts, dim=2)

    def row_mass(self) -> Tensor:
        """What each query row's weights sum to: (B, H, Lq); 1, or 0 for a row that sees no key,
        or 1 − exp(sink − lse) with attention sinks. O(Lq): read from lse, no row recomputed."""
        seen = torch.isfinite(self.lse)
        mass = seen.to(torch.float32)
        if self.sinks is not None:
            sink = self.sinks.to(self.lse.device, torch.float32).view(1, -1, 1)  # (1, H, 1)
            kept = -torch.expm1(sink - self.lse.float())  # 1 − exp(sink − lse)
            mass = torch.where(seen, kept, mass)
        return mass

    def mean_over_heads(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Head-averaged weights for query rows [start, stop): (B, rows, Lk)."""
        return self.rows(start, stop).mean(dim=1)

    def received(self, weights: Tensor | None = None) -> Tensor:
        """Attention each key receives, summed over query rows: (B, H, Lk). With ``weights``
        (broadcastable to (B, H, Lq)), row i counts weights[..., i] times: Σ_i w_i·A[i, :], the
        product that streamed rollout pushes through a layer.

        Where the map allows it (CPU, float32, no window, ALiBi or softcap, masks on keys only)
        non-negative weights run as one call of PyTorch's flash kernel with queries and keys
        swapped (:func:`_received_by_kernel`): the cost of the layer's forward attention, no
        (rows, Lk) tile. Otherwise rows are recomputed block by block."""
        B, H, Lq, Lk = self.shape
        if weights is not None:
            weights = weights.to(self.q.device, torch.float32).expand(B, H, Lq)
        fast = _received_by_kernel(self, weights)
        if fast is not None:
            return fast
        total = torch.zeros(B, H, Lk, device=self.q.device)
        for start, stop, tile in self._blocks():
            if weights is None:
                total += tile.sum(dim=2)
            else:  # (B, H, rows) · (B, H, rows, Lk) → (B, H, Lk)
                total += torch.einsum("bhr,bhrk->bhk", weights[:, :, start:stop], tile)
        return total

    def pooled(self, size: int) -> Tensor:
        """The map average-pooled to at most (size, size) per head: (B, H, ≤size, ≤size), for
        pictures of long texts. Each cell is the mean weight of its block of (query, key) pairs."""
        _positive_int("size", size)
        B, H, Lq, Lk = self.shape
        fq, fk = math.ceil(Lq / size), math.ceil(Lk / size)
        out_q, out_k = math.ceil(Lq / fq), math.ceil(Lk / fk)
        device = self.q.device
        out = torch.zeros(B, H, out_q, out_k, device=device)
        # Blocks of whole pooled rows (fq query rows each), within the tile budget.
        groups = max(1, _ROWS_PER_BLOCK_BYTES // max(1, B * H * Lk * 4 * fq))
        for g0 in range(0, out_q, groups):
            g1 = min(out_q, g0 + groups)
            tile = self.rows(g0 * fq, min(Lq, g1 * fq))  # (B, H, rows, Lk)
            pad_rows = (g1 - g0) * fq - tile.shape[2]
            tile = torch.nn.functional.pad(tile, (0, out_k * fk - Lk, 0, pad_rows))
            cells = tile.view(B, H, g1 - g0, fq, out_k, fk).sum(dim=(3, 5))
            out[:, :, g0:g1] = cells
        counts_q = torch.full((out_q,), fq, dtype=torch.float32, device=device)
        counts_q[-1] = Lq - fq * (out_q - 1)
        counts_k = torch.full((out_k,), fk, dtype=torch.float32, device=device)
        counts_k[-1] = Lk - fk * (out_k - 1)
        return out / (counts_q[:, None] * counts_k[None, :])

    # --- conversion and storage -------------------------------------------------------------
    def to(self, dtype: torch.dtype) -> AttentionMap:
        """Store q and k in ``dtype`` (lse and bias stay float32 for exactness of the rest)."""
        return replace(self, q=self.q.to(dtype), k=self.k.to(dtype))

    def cpu(self) -> AttentionMap:
        return self.to_device("cpu")

    def to_device(self, device: torch.device | str) -> AttentionMap:
        bias = None if self.bias is None else self.bias.map_tensors(lambda t: t.to(device))
        q, k, lse = (t.to(device) for t in (self.q, self.k, self.lse))
        sinks = None if self.sinks is None else self.sinks.to(device)
        return replace(self, q=q, k=k, lse=lse, bias=bias, sinks=sinks)

    def save(self, path: str | Path) -> Path:
        """Write as safetensors (atomically: a temporary file, then rename)."""
        from safetensors.torch import save_file

        tensors = {"q": self.q, "k": self.k, "lse": self.lse}
        if self.sinks is not None:
            tensors["sinks"] = self.sinks.detach()
        meta = {"format": _FORMAT, "scale": repr(self.scale)}
        if self.bias is not None:
            bias_tensors, bias_meta = self.bias.state()
            tensors |= bias_tensors
            meta |= bias_meta
        tensors = {name: t.detach().contiguous() for name, t in tensors.items()}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> AttentionMap:
        """Read a map written by :meth:`save` (this version or the first). Only safetensors files
        are accepted: nothing is unpickled."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{path} is not a safetensors AttentionMap file: {err}") from None
        q, k, lse = tensors["q"], tensors["k"], tensors["lse"]
        lq, lk = q.shape[-2], k.shape[-2]
        if meta.get("format") == _FORMAT:
            bias = AttentionBias.from_state(tensors, meta) if "bias.lq" in meta else None
        elif meta.get("format") == "attnlab.AttentionMap/1":  # start-aligned causal flag, Lq = Lk
            causal = meta["causal"] == "True"
            bias = AttentionBias(lq, lk, mask=tensors.get("bias"), causal=causal)
        else:
            raise ValueError(f"{path} is not an attnlab AttentionMap (metadata {meta})")
        return cls(q=q, k=k, lse=lse, scale=float(meta["scale"]), bias=bias,
                   sinks=tensors.get("sinks"))  # fmt: skip

    def of_heads(self, heads: slice | int) -> AttentionMap:
        """The map of heads ``heads`` alone: (B, H', Lq, Lk), H' = 1 for an int."""
        h = self._heads(heads)
        sinks = None if self.sinks is None else self.sinks[h]
        keys = self._keys_of_heads(h)
        return replace(self, q=self.q[:, h], k=keys, lse=self.lse[:, h],
                       bias=self._bias_of_heads(h), sinks=sinks)  # fmt: skip

    def _keys_of_heads(self, h: slice) -> Tensor:
        """The keys query heads ``h`` use: (B, H', Lk, d); head i reads key head i // groups."""
        groups = self.kv_groups
        if groups == 1:
            return self.k[:, h]
        heads = torch.arange(self.q.shape[1], device=self.k.device)[h] // groups
        if self.k.shape[1] == 1:
            return self.k.expand(-1, len(heads), -1, -1)
        return self.k.index_select(1, heads)

    def _bias_of_heads(self, h: slice) -> AttentionBias | None:
        """The bias restricted to heads ``h`` (a mask with a head dimension, ALiBi slopes)."""
        bias = self.bias
        if bias is None:
            return None
        mask, slopes = bias.mask, bias.alibi_slopes
        if mask is not None and mask.dim() >= 3 and mask.shape[-3] != 1:
            mask = mask[..., h, :, :]
        return replace(bias, mask=mask, alibi_slopes=None if slopes is None else slopes[h])

    def _heads(self, heads: slice | int) -> slice:
        H = self.shape[1]
        if isinstance(heads, slice):
            start, stop, _ = heads.indices(H)
            given = f"{heads.start or 0}:{H if heads.stop is None else heads.stop}"
            if (heads.stop is not None and heads.stop > H) or start > stop:
                raise ValueError(f"head slice must lie within [0, {H}); got {given}")
            return heads
        if isinstance(heads, bool) or not isinstance(heads, int):
            raise ValueError(f"head index must be an int or a slice; got {heads!r}")
        if not -H <= heads < H:
            raise ValueError(f"head index must lie in [0, {H}); got {heads}")
        heads %= H
        return slice(heads, heads + 1)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _received_by_kernel(amap: AttentionMap, weights: Tensor | None) -> Tensor | None:
    """Σ_i w_i·A[i, :] (B, H, Lk) from one call of PyTorch's CPU flash kernel, or None where the
    map or the weights do not allow it (the caller then recomputes rows block by block).

    With queries and keys swapped, key j asks "query" i with the additive bias
    b_i = log w_i − lse_i; the kernel returns, besides an unused output, the log-sum-exp
    lse'_j = log Σ_i exp(q_i·k_j·scale + b_i) = log Σ_i w_i·A[i, j]. The causal triangle
    (j ≤ i) becomes the kernel's own causal rule with both sequences reversed; masks on keys
    only ((..., 1, Lk), bool or additive) and padding multiply key j's result afterwards.
    """
    from attnlab.functional.backends import flash_cpu_kernel

    bias = amap.bias
    B, H, Lq, Lk = amap.shape
    mask = None if bias is None else bias.mask
    if (
        amap.q.device.type != "cpu" or amap.q.dtype != torch.float32
        or amap.k.dtype != torch.float32 or 0 in amap.shape
        or (weights is not None and not bool((weights >= 0).all()))
    ):  # fmt: skip
        return None
    if bias is not None and (
        bias.window is not None or bias.alibi_slopes is not None or bias.softcap is not None
        or (bias.causal and (bias.offset != 0 or Lq != Lk))
        or (mask is not None and (mask.dim() < 2 or mask.shape[-2] != 1))
    ):  # fmt: skip
        return None
    kernel = flash_cpu_kernel()
    if kernel is None:
        return None
    causal = bias is not None and bias.causal
    log_w = torch.zeros(()) if weights is None else weights.log()
    row_bias = torch.where(torch.isfinite(amap.lse), log_w - amap.lse, -math.inf)
    row_bias = row_bias.clamp_min(_FLOOR).unsqueeze(2)  # (B, H, 1, Lq)
    queries = amap._keys_of_heads(slice(None))  # (B, H, Lk, d): the keys ask
    keys = amap.q  # (B, H, Lq, d): the queries answer
    if causal:  # i ≥ j becomes i' ≤ j' on reversed positions: the kernel's causal rule
        queries, keys, row_bias = queries.flip(2), keys.flip(2), row_bias.flip(3)
    ones = torch.ones(B, H, Lq, amap.q.shape[-1])  # values: the output is not used
    with torch.no_grad():
        _, lse = kernel(queries.contiguous(), keys.contiguous(), ones, 0.0, causal,
                        attn_mask=row_bias.contiguous(), scale=amap.scale)  # fmt: skip
    if causal:
        lse = lse.flip(2)
    total = lse.exp()  # (B, H, Lk)
    if mask is not None:  # a mask on keys only: (..., 1, Lk) → (B, H, Lk)
        key_mask = mask.squeeze(-2).expand(B, H, Lk)
        total = total * (key_mask if key_mask.dtype == torch.bool else key_mask.exp())
    if bias is not None and bias.attention_mask is not None:
        total = total * bias.attention_mask[:, None, :]
    return total
