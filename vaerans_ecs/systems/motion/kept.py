"""A small cache of what is built from recent reference frames, keyed by a digest of their pixels.

A decoded anchor is the reference of the next P-frame and of the B-frames on either side, so
the motion search's luma pyramids and the compensation's interpolated planes are worth keeping
between frames. The key is a digest of the pixels (plus the build parameters), so a hit returns
exactly what would be built: the stages stay pure functions of their inputs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["KeptReferences", "pixel_key"]

T = TypeVar("T")


def pixel_key(arr: NDArray[np.generic], *params: Hashable) -> tuple[Hashable, ...]:
    """A key for what is built from ``arr`` with ``params``: a digest of its pixels, shape and dtype."""
    data = np.ascontiguousarray(arr)
    digest = hashlib.blake2b(data.data, digest_size=16)
    digest.update(repr((data.shape, data.dtype.str)).encode())
    return (digest.digest(), *params)


class KeptReferences(Generic[T]):
    """At most ``entries`` values of at most ``max_bytes`` together (by ``size``), least recently used
    dropped first; thread-safe. Values larger than the budget are not kept (they are rebuilt)."""

    def __init__(self, size: Callable[[T], int], entries: int = 2, max_bytes: int = 64 << 20) -> None:
        self._size, self.entries, self.max_bytes = size, entries, max_bytes
        self._items: OrderedDict[tuple[Hashable, ...], T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Hashable, ...]) -> T | None:
        """The value kept under ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Hashable, ...], value: T) -> None:
        """Keep ``value``, dropping the least recently used values beyond the bounds."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.entries or sum(map(self._size, self._items.values())) > self.max_bytes:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Drop every kept value (a sequence coder calls it when it is done)."""
        with self._lock:
            self._items.clear()
