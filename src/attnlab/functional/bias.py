"""One description of everything that changes attention scores before the softmax.

Every attention call turns its mask arguments into one :class:`AttentionBias`, once, with
:meth:`AttentionBias.build`. Every kernel, :class:`attnlab.AttentionMap` and
:func:`attnlab.masks.describe` read that object; no other code merges masks.

    scores[..., i, j] = cap(q_i·k_j·scale) + mask[..., i, j] + alibi[h, i, j]
    and −inf wherever key j is hidden from query i by the causal rule, the window or padding

* ``mask``: the caller's mask, bool (**True = may attend**) or float (added to the scores),
  broadcastable to (..., Lq, Lk). A boolean start-aligned lower triangle is recognised and stored
  as ``causal`` instead; a boolean (B, 1, 1, Lk) mask on 4-D inputs is stored as padding.
* ``causal``: query i sees key j when ``j <= i + offset``; query i sits at key position
  i + offset. ``offset`` is Lk − Lq for the default **end** alignment (with a KV cache the new
  queries see every cached key) and 0 for **start** alignment (PyTorch's ``is_causal``).
* ``window``: with ``causal``, only the ``window`` most recent keys up to that bound.
* ``attention_mask``: key padding (B, Lk), **True/1 = real token** (Hugging Face's
  ``attention_mask``); B is the first leading dimension of q.
* ``alibi_slopes``: ALiBi (Press et al., 2022), −m_h·(i + offset − j) for keys at or before the
  query; the slopes (H,) apply to the last leading dimension (the heads).
* ``softcap``: scores → softcap·tanh(scores / softcap) before anything is added (Gemma 2).

Dimension legend: B batch, H heads, Lq queries, Lk keys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = ["ALIGNMENTS", "AttentionBias", "merge"]

ALIGNMENTS = ("end", "start")


@dataclass(frozen=True, eq=False)
class AttentionBias:
    """The canonical description of one call's mask, causal rule, window, padding, ALiBi and
    softcap. Build it with :meth:`build`; materialise it with :meth:`dense`."""

    lq: int  # queries
    lk: int  # keys
    mask: Tensor | None = None  # bool True = may attend, or float additive; (..., Lq, Lk)
    causal: bool = False  # key j visible to query i only when j <= i + offset
    offset: int = 0  # query i sits at key position i + offset: Lk − Lq (end), 0 (start causal)
    window: int | None = None  # with causal: only keys j > i + offset − window
    attention_mask: Tensor | None = None  # (B, Lk) bool, True = real token
    alibi_slopes: Tensor | None = None  # (H,) float
    softcap: float | None = None  # scores → softcap·tanh(scores / softcap)

    @classmethod
    def build(
        cls,
        lq: int,
        lk: int,
        mask: Tensor | None = None,
        *,
        causal: bool = False,
        causal_alignment: str = "end",
        window: int | None = None,
        attention_mask: Tensor | None = None,
        alibi_slopes: Tensor | None = None,
        softcap: float | None = None,
        n_lead: int = 2,
    ) -> AttentionBias:
        """The canonical form of a call's arguments (checked by
        :func:`attnlab.functional.checks.check_bias_arguments` beforehand)."""
        offset = 0 if causal and causal_alignment == "start" else lk - lq
        on_cpu = mask is not None and mask.device.type == "cpu"  # elsewhere: a device sync
        if mask is not None and not causal and on_cpu and _is_start_triangle(mask, lq, lk):
            mask, causal, offset = None, True, 0  # run as is_causal, not as an N×N mask
        if (
            mask is not None
            and attention_mask is None
            and n_lead == 2
            and mask.dtype == torch.bool
            and mask.dim() == 4
            and mask.shape[1:3] == (1, 1)
            and mask.shape[3] == lk
        ):
            attention_mask, mask = mask[:, 0, 0, :], None  # (B, 1, 1, Lk) is key padding
        if attention_mask is not None:
            attention_mask = attention_mask if attention_mask.dtype == torch.bool else (
                attention_mask != 0
            )  # fmt: skip
            if attention_mask.device.type == "cpu" and bool(attention_mask.all()):
                attention_mask = None  # nothing padded (not asked elsewhere: a device sync)
        if causal and window is None and offset >= lk - 1:
            causal = False  # every query sees every key (e.g. one new token after a cache)
        return cls(
            lq, lk, mask, causal, offset, window if causal else None,
            attention_mask, alibi_slopes, None if softcap is None else float(softcap),
        )  # fmt: skip

    # --- what the kernels ask ---------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        """Nothing is added to the scores and nothing is hidden."""
        return not self.has_tensor_part and not self.causal and self.softcap is None

    @property
    def has_tensor_part(self) -> bool:
        return not (self.mask is None and self.attention_mask is None and self.alibi_slopes is None)

    @property
    def learned(self) -> tuple[Tensor, ...]:
        """The tensors that may carry gradients into the scores (a float mask, ALiBi slopes)."""
        return tuple(t for t in (self.mask, self.alibi_slopes) if t is not None)

    def split_start_causal(self) -> tuple[bool, AttentionBias]:
        """``(is_causal, rest)``: the start-aligned causal rule that fused kernels take as a flag
        (``is_causal``), and what remains to be added as a tensor."""
        if self.causal and self.offset == 0 and self.window is None:
            return True, replace(self, causal=False)
        return False, self

    def dense(
        self,
        dtype: torch.dtype,
        device: torch.device | str,
        *,
        n_lead: int = 2,
        rows: slice = slice(None),
    ) -> Tensor | None:
        """Additive float bias (0 where visible, −inf where hidden, plus float masks and ALiBi)
        for query ``rows``, broadcastable to (*lead, rows, Lk) with ``n_lead`` leading
        dimensions; None when nothing is added. Softcap is not part of it (see :meth:`cap_`)."""
        start, stop, _ = rows.indices(self.lq)
        visible = self.visible(device, n_lead=n_lead, rows=rows, with_float=False)
        added: Tensor | None = None
        if self.mask is not None and self.mask.dtype != torch.bool:
            added = _rows(self.mask, start, stop).to(dtype)
        if self.alibi_slopes is not None:
            i = torch.arange(start, stop, device=device)[:, None] + self.offset
            distance = (i - torch.arange(self.lk, device=device)[None, :]).clamp(min=0)
            alibi = -self.alibi_slopes.to(device, dtype)[:, None, None] * distance.to(dtype)
            added = alibi if added is None else added + alibi  # (H, rows, Lk)
        return merge([] if visible is None else [visible], [] if added is None else [added],
                     dtype, device)  # fmt: skip

    def visible(
        self,
        device: torch.device | str,
        *,
        n_lead: int = 2,
        rows: slice = slice(None),
        with_float: bool = True,
    ) -> Tensor | None:
        """Boolean visibility (True = key may be attended) for query ``rows``, broadcastable to
        (*lead, rows, Lk); None when every key is visible. ``with_float`` also counts keys that a
        float mask sets to −inf."""
        start, stop, _ = rows.indices(self.lq)
        parts: list[Tensor] = []
        if self.causal:
            i = torch.arange(start, stop, device=device)[:, None] + self.offset  # (rows, 1)
            j = torch.arange(self.lk, device=device)[None, :]  # (1, Lk)
            seen = j <= i
            if self.window is not None:
                seen = seen & (j > i - self.window)
            parts.append(seen)  # (rows, Lk)
        if self.mask is not None and (self.mask.dtype == torch.bool or with_float):
            m = _rows(self.mask, start, stop)
            parts.append(m if m.dtype == torch.bool else m > float("-inf"))
        if self.attention_mask is not None:
            B = self.attention_mask.shape[0]
            lead = (B, *(1,) * (n_lead - 1)) if n_lead >= 1 else ()
            parts.append(self.attention_mask.reshape(*lead, 1, self.lk))  # (B, 1.., 1, Lk)
        return merge(parts, [], torch.bool, device)

    def cap_(self, scores: Tensor) -> Tensor:
        """Apply the softcap in place: scores → softcap·tanh(scores / softcap)."""
        if self.softcap is not None:
            scores.div_(self.softcap).tanh_().mul_(self.softcap)
        return scores

    def cap(self, scores: Tensor) -> Tensor:
        """Softcap out of place (keeps autograd through the scores)."""
        if self.softcap is None:
            return scores
        return torch.tanh(scores / self.softcap) * self.softcap

    # --- moving and storing -----------------------------------------------------------------
    def map_tensors(self, fn) -> AttentionBias:  # type: ignore[no-untyped-def]
        """A copy with ``fn`` applied to every tensor (detach, to(device), ...)."""
        return replace(
            self,
            mask=None if self.mask is None else fn(self.mask),
            attention_mask=None if self.attention_mask is None else fn(self.attention_mask),
            alibi_slopes=None if self.alibi_slopes is None else fn(self.alibi_slopes),
        )

    @property
    def nbytes(self) -> int:
        tensors = (self.mask, self.attention_mask, self.alibi_slopes)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def state(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """Tensors and string metadata for a safetensors file (see :meth:`from_state`)."""
        tensors = {
            name: t.detach().contiguous()
            for name, t in (
                ("bias.mask", self.mask),
                ("bias.attention_mask", self.attention_mask),
                ("bias.alibi_slopes", self.alibi_slopes),
            )
            if t is not None
        }
        meta = {
            "bias.lq": str(self.lq), "bias.lk": str(self.lk), "bias.causal": str(self.causal),
            "bias.offset": str(self.offset), "bias.window": str(self.window),
            "bias.softcap": repr(self.softcap),
        }  # fmt: skip
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, Tensor], meta: dict[str, str]) -> AttentionBias:
        window, softcap = meta["bias.window"], meta["bias.softcap"]
        return cls(
            lq=int(meta["bias.lq"]), lk=int(meta["bias.lk"]), mask=tensors.get("bias.mask"),
            causal=meta["bias.causal"] == "True", offset=int(meta["bias.offset"]),
            window=None if window == "None" else int(window),
            attention_mask=tensors.get("bias.attention_mask"),
            alibi_slopes=tensors.get("bias.alibi_slopes"),
            softcap=None if softcap == "None" else float(softcap),
        )  # fmt: skip

    def __repr__(self) -> str:
        parts = [f"lq={self.lq}", f"lk={self.lk}"]
        if self.causal:
            parts.append(f"causal(offset={self.offset})")
        if self.window is not None:
            parts.append(f"window={self.window}")
        for name in ("mask", "attention_mask", "alibi_slopes"):
            t = getattr(self, name)
            if t is not None:
                parts.append(f"{name}={tuple(t.shape)} {t.dtype}")
        if self.softcap is not None:
            parts.append(f"softcap={self.softcap}")
        return f"AttentionBias({', '.join(parts)})"


def merge(
    visible: list[Tensor], added: list[Tensor], dtype: torch.dtype, device: torch.device | str
) -> Tensor | None:
    """The one place masks are merged. ``visible``: boolean masks (True = may attend), ANDed;
    ``added``: float terms, summed. Returns the boolean AND when ``dtype`` is bool, else the
    float sum with −inf wherever a boolean mask hides the key; None when both lists are empty."""
    seen = None
    for m in visible:
        seen = m if seen is None else seen & m
    if dtype == torch.bool:
        return seen
    total = None
    for a in added:
        a = a.to(dtype)
        total = a if total is None else total + a
    if seen is None:
        return total
    base = torch.zeros((), dtype=dtype, device=device) if total is None else total
    return base.masked_fill(~seen, float("-inf"))


def _rows(mask: Tensor, start: int, stop: int) -> Tensor:
    """Query rows [start, stop) of a mask broadcastable to (..., Lq, Lk)."""
    if mask.dim() < 2 or mask.shape[-2] == 1:
        return mask
    return mask[..., start:stop, :]


def _is_start_triangle(mask: Tensor, lq: int, lk: int) -> bool:
    """True for a boolean mask that is exactly the lower triangle (Lq == Lk), whatever its
    broadcast leading dims. Costs one comparison of Lq×Lk booleans."""
    if mask.dtype != torch.bool or lq != lk or mask.shape[-2:] != (lq, lk) or lq < 2:
        return False
    if any(s != 1 for s in mask.shape[:-2]):
        return False
    return bool(torch.equal(mask.reshape(lq, lk), _triangle(lq, str(mask.device))))


_TRIANGLES: dict[tuple[int, str], Tensor] = {}


def _triangle(n: int, device: str) -> Tensor:
    """Lower-triangular (n, n) mask kept for comparisons (the 4 latest sizes), so recognising a
    causal mask does not allocate and fault a fresh N×N tensor every call."""
    key = (n, device)
    if key not in _TRIANGLES:
        if len(_TRIANGLES) >= 4:
            _TRIANGLES.pop(next(iter(_TRIANGLES)))
        _TRIANGLES[key] = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    return _TRIANGLES[key]
