"""One map per layer across the steps of generation with a KV cache.

During ``model.generate(...)`` each attention layer is called once for the prompt (Lq = P rows
over P keys) and once per new token (Lq = 1 row over every key so far, read from the cache). A
:class:`StepChain` joins a layer's calls into one :class:`AttentionMap` whose rows are the
prompt positions followed by one row per generated step, over the absolute key positions:

    rows:  0 … P−1 (prompt), P, P+1, … (each new token's query)
    keys:  0 … N−1 (prompt + the generated tokens that were fed back)

A call *continues* the chain when its keys are the chain's keys so far plus its own new keys
(checked on the values, so an unrelated second forward starts a new chain): with a full cache
Lk = N + Lq; with a sliding-window cache Lk < N + Lq and the keys are the most recent ones.
Cross-attention (keys = the encoder's output) continues when the decoder's self-attention did
and the keys are the same. Each key is stored once, in a buffer that grows by doubling (O(N·d));
the joined map's bias is one dense (B, 1 or H, rows, N) float tensor. Beam search (which
reorders the cache) and static caches (which keep unfilled slots) break the chain: capture
warns, and ``Capture.steps(name)`` keeps the steps since the break.

Dimension legend: B batch, H query heads, H_kv key heads, Lq rows of one call, Lk its keys,
N keys so far, d head size.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from attnlab.functional.bias import AttentionBias
from attnlab.inspection.attention_map import AttentionMap

__all__ = ["StepChain"]


class StepChain:
    """The calls of one layer that continue each other (see the module docstring)."""

    def __init__(self, first: AttentionMap, *, cross: bool) -> None:
        self.cross = cross
        self._keys = _owned(first.k)  # (B, H_kv, capacity, d), absolute positions
        self.n_keys = first.k.shape[2]
        first = replace(first, k=self._keys)
        self._steps: list[tuple[AttentionMap, int]] = [(first, 0)]  # (map, first key position)

    @property
    def first(self) -> AttentionMap:
        return self._steps[0][0]

    def __len__(self) -> int:
        return len(self._steps)

    def continues(self, amap: AttentionMap) -> bool:
        """Whether ``amap`` (one call) is the next step of this chain."""
        last, _ = self._steps[-1]
        k = amap.k
        same_kind = (
            k.shape[0] == last.k.shape[0] and k.shape[1] == last.k.shape[1]
            and k.shape[3] == last.k.shape[3] and k.dtype == last.k.dtype
            and amap.q.shape[1] == last.q.shape[1] and amap.scale == last.scale
        )  # fmt: skip
        if not same_kind:
            return False
        if self.cross:
            return k.shape[2] == self.n_keys and torch.equal(k, self._keys[:, :, : self.n_keys])
        lq, lk = amap.q.shape[2], k.shape[2]
        start = self.n_keys + lq - lk  # absolute position of the call's first key
        if not (lq < lk and start >= 0):
            return False
        # The cached keys must be the ones recorded: compare the first and the last of them
        # (whole-prefix comparisons would cost O(N²·d) over a generation).
        ends = [0, lk - lq - 1]
        return all(torch.equal(k[:, :, e], self._keys[:, :, start + e]) for e in ends)

    def append(self, amap: AttentionMap) -> AttentionMap:
        """Add the next step; returns the step's map with its keys stored in the chain."""
        lq, lk = amap.q.shape[2], amap.k.shape[2]
        if self.cross:
            start = 0
        else:
            start = self.n_keys + lq - lk
            self._store(amap.k[:, :, lk - lq :])
        keys = self._keys[:, :, start : start + lk]  # a view: the step keeps no copy
        step = replace(amap, k=keys)
        self._steps.append((step, start))
        return step

    def _store(self, new: Tensor) -> None:  # new (B, H_kv, Lq, d) at positions N … N + Lq
        need = self.n_keys + new.shape[2]
        if need > self._keys.shape[2]:  # grow by doubling; old views keep the old buffer
            grown = self._keys.new_empty(*self._keys.shape[:2], max(need, 2 * self.n_keys),
                                         self._keys.shape[3])  # fmt: skip
            grown[:, :, : self.n_keys] = self._keys[:, :, : self.n_keys]
            self._keys = grown
        self._keys[:, :, self.n_keys : need] = new
        self.n_keys = need

    def steps(self) -> list[AttentionMap]:
        return [step for step, _ in self._steps]

    def joined(self) -> AttentionMap:
        """One map: every step's rows, in order, over the absolute key positions. A step's
        bias is placed at its keys' columns; keys a step did not see are hidden (−inf)."""
        steps = [step for step, _ in self._steps]
        q = torch.cat([s.q for s in steps], dim=2)  # (B, H, ΣLq, d)
        lse = torch.cat([s.lse for s in steps], dim=2)  # (B, H, ΣLq)
        B, H, rows, _ = q.shape
        heads = H if any(_bias_heads(s) > 1 for s in steps) else 1
        bias = torch.full((B, heads, rows, self.n_keys), float("-inf"), device=q.device)
        r0 = 0
        for step, start in self._steps:
            lq, lk = step.q.shape[2], step.k.shape[2]
            part = None if step.bias is None else step.bias.dense(torch.float32, q.device)
            cells = bias[:, :, r0 : r0 + lq, start : start + lk]
            cells.copy_(torch.zeros(()) if part is None else part.expand_as(cells))
            r0 += lq
        softcap = steps[0].bias.softcap if steps[0].bias is not None else None
        joined_bias = AttentionBias(rows, self.n_keys, mask=bias, softcap=softcap)
        keys = self._keys[:, :, : self.n_keys]
        return AttentionMap(q=q, k=keys, lse=lse, scale=steps[0].scale, bias=joined_bias,
                            sinks=steps[0].sinks)  # fmt: skip


def _owned(k: Tensor) -> Tensor:
    """Keys the chain may keep: a tensor that owns its storage as is (a cache that
    concatenates makes a new one each step), a view into a larger buffer (a preallocated or
    static cache, which later steps write into) copied."""
    if k.untyped_storage().nbytes() > k.numel() * k.element_size():
        return k.clone()
    return k


def _bias_heads(step: AttentionMap) -> int:
    mask = None if step.bias is None else step.bias.mask
    heads = 1 if mask is None or mask.dim() < 3 else mask.shape[-3]
    slopes = None if step.bias is None else step.bias.alibi_slopes
    return max(heads, 1 if slopes is None else slopes.shape[0])
