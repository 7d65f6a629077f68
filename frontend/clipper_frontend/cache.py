"""The prediction cache: bytes-bounded, keyed by the full (model, version, input bytes), CLOCK eviction.

Unlike the original, the key is compared in full (no hash collisions) and every byte of key and value counts
toward the size bound.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

_ENTRY_OVERHEAD = 64  # rough per-entry bookkeeping, so many tiny entries cannot exceed the bound unnoticed


class PredictionCache:
    """``get``/``put`` on the event loop thread only; a ``max_bytes`` of 0 disables the cache."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max(0, int(max_bytes))
        # key -> [value, size, referenced]; insertion order is the CLOCK ring, the front is the hand.
        self._data: OrderedDict[Any, list[Any]] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: Any) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        entry[2] = True
        value: str = entry[0]
        return value

    def put(self, key: tuple[str, str, bytes], value: str) -> None:
        if not self.max_bytes or key in self._data:
            return
        size = len(key[0]) + len(key[1]) + len(key[2]) + len(value) + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes and self._data:
            self._evict_one()
        self._data[key] = [value, size, False]
        self.bytes += size

    def _evict_one(self) -> None:
        # CLOCK / second chance: a referenced entry at the hand is cleared and moved behind it.
        data = self._data
        while True:
            key, entry = next(iter(data.items()))
            if entry[2]:
                entry[2] = False
                data.move_to_end(key)
                continue
            del data[key]
            self.bytes -= entry[1]
            self.evictions += 1
            return

    def drop_model(self, name: str, version: str) -> None:
        for key in [k for k in self._data if k[0] == name and k[1] == version]:
            self.bytes -= self._data.pop(key)[1]

    def __len__(self) -> int:
        return len(self._data)
