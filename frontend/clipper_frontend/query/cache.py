"""The prediction cache: bytes-bounded, keyed by the full (model, version, input bytes), CLOCK eviction.

Unlike the original, the key is compared in full (no hash collisions) and every byte of key and value counts
toward the size bound. A key is one ``bytes`` object, :func:`cache_prefix` of the model version followed by the
input bytes, so that no entry holds an object the garbage collector tracks.
"""

from __future__ import annotations

from collections import OrderedDict

from clipper_core.container_manager import DEFAULT_CACHE_SIZE

_ENTRY_OVERHEAD = 64  # rough per-entry bookkeeping, so many tiny entries cannot exceed the bound unnoticed


def cache_prefix(name: str, version: str) -> bytes:
    """The start of every cache key of one model version; length-prefixed, so no two versions' keys can collide."""
    n, v = name.encode(), version.encode()
    return b"%d:%s%d:%s" % (len(n), n, len(v), v)


def _entry_size(key: bytes, value: str) -> int:
    return len(key) + len(value) + _ENTRY_OVERHEAD


class PredictionCache:
    """``get``/``put`` on the event loop thread only; a ``max_bytes`` of 0 disables the cache.

    Entries hold nothing the garbage collector tracks: the ring maps the key (bytes) straight to the output string,
    and CLOCK's reference bits are a set of keys. A full cache holds hundreds of thousands of entries; a tracked
    object per entry made every full collection walk all of them, a pause of up to a hundred milliseconds on the
    request path.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_SIZE) -> None:
        self.max_bytes = max(0, int(max_bytes))
        # key -> output; insertion order is the CLOCK ring, the front is the hand.
        self._data: OrderedDict[bytes, str] = OrderedDict()
        self._referenced: set[bytes] = set()
        self.bytes = 0

    def get(self, key: bytes) -> str | None:
        value = self._data.get(key)
        if value is not None:
            self._referenced.add(key)
        return value

    def put(self, key: bytes, value: str) -> None:
        if not self.max_bytes or key in self._data:
            return
        size = _entry_size(key, value)
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes and self._data:
            self._evict_one()
        self._data[key] = value
        self.bytes += size

    def _evict_one(self) -> None:
        # CLOCK / second chance: a referenced entry at the hand is cleared and moved behind it.
        data = self._data
        referenced = self._referenced
        while True:
            key = next(iter(data))
            if key in referenced:
                referenced.discard(key)
                data.move_to_end(key)
                continue
            self.bytes -= _entry_size(key, data.pop(key))
            return

    def drop_model(self, name: str, version: str) -> None:
        prefix = cache_prefix(name, version)
        for key in [k for k in self._data if k.startswith(prefix)]:
            self.bytes -= _entry_size(key, self._data.pop(key))
            self._referenced.discard(key)

    def __len__(self) -> int:
        return len(self._data)
