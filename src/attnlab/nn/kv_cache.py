"""Key/value cache for incremental decoding.

During generation each new token only needs its own query; the keys and values of earlier tokens
do not change, so they are kept here instead of being recomputed. Buffers are allocated once, at
the maximum length, and filled in place: no per-step concatenation, no fresh page faults.

Dimension legend: B batch, H_kv key/value heads, T positions, d head size.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KVCache", "LayerKVCache"]


class LayerKVCache:
    """Keys and values of one attention layer: two preallocated (B, H_kv, max_len, d) buffers
    and the number of positions filled."""

    def __init__(
        self,
        batch: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store new keys/values (B, H_kv, T_new, d); return views of everything so far
        (B, H_kv, length, d)."""
        if k.shape != v.shape:
            raise ValueError(
                f"k and v must have the same shape; got k {tuple(k.shape)}, v {tuple(v.shape)}"
            )
        expected = (self.k.shape[0], self.k.shape[1], k.shape[2], self.k.shape[3])
        if tuple(k.shape) != expected:
            raise ValueError(
                f"new keys must have shape (B, H_kv, T_new, d) = {expected}; got {tuple(k.shape)}"
            )
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"KV cache is full: it holds at most {self.max_len} positions, "
                f"{self.length} are used and {k.shape[2]} more were given"
            )
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """One :class:`LayerKVCache` per layer of a model; index it by layer number."""

    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.layers = [
            LayerKVCache(batch, n_kv_heads, max_len, head_dim, dtype=dtype, device=device)
            for _ in range(n_layers)
        ]

    def __getitem__(self, i: int) -> LayerKVCache:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def length(self) -> int:
        """Positions stored so far (the same in every layer after a full forward pass)."""
        return self.layers[0].length if self.layers else 0
