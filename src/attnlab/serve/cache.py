"""Recent captures, kept within a memory budget (least recently used dropped first).

An entry is what a result page and its exact tiles need: the lazy maps (queries, keys and
log-sum-exps, O(N·d) per layer, see :class:`attnlab.inspection.attention_map.AttentionMap`),
the page's payloads and the rendered page itself. Its size is counted from those tensors and
bytes; the models it refers to are shared and not counted."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

__all__ = ["CaptureCache", "Sized"]


class Sized(Protocol):
    nbytes: int


class CaptureCache:
    """A thread-safe LRU map key → entry whose entries' ``nbytes`` sum to at most
    ``budget_bytes``."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"the cache budget must be positive; got {budget_bytes} bytes")
        self.budget = budget_bytes
        self._entries: OrderedDict[str, Sized] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: str) -> Sized | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: Sized) -> None:
        """Keep ``entry``, dropping the least recently used ones until all fit. An entry larger
        than the whole budget is refused with a ValueError naming both sizes."""
        if entry.nbytes > self.budget:
            raise ValueError(
                f"this capture needs {entry.nbytes / 2**20:,.1f} MB, over the cache budget of "
                f"{self.budget / 2**20:,.1f} MB (attnlab serve --cache-mb): use a shorter text "
                "or a larger budget"
            )
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.budget:
                _, dropped = self._entries.popitem(last=False)
                total -= dropped.nbytes
