"""Bump allocator over preallocated chunks, handing out generation-checked :class:`TensorRef`s.

Why: a pipeline allocates many short-lived tensors per image; bumping an offset is O(1), gives
64-byte aligned, zero-copy numpy views, and ``reset()`` frees everything at once.

Growth policy: the arena starts with one chunk of ``capacity`` bytes. ``np.empty`` of a large
size is backed by ``mmap``, so pages are only committed when first written. When a tensor does
not fit in the current chunk, a new chunk of ``max(capacity, nbytes)`` is added as long as the
total stays within ``max_capacity``; otherwise :class:`ArenaExhaustedError` is raised. Chunks are
never moved, so outstanding views stay valid. ``reset()`` drops every chunk but the first and
bumps the generation, which invalidates every older TensorRef.

Adopted buffers: :meth:`Arena.adopt` registers an existing C-contiguous array (a caller's image, or
a large output allocated on its own) as an *external* chunk without copying it. Why: copying an
8192x8192 input into the arena, or copying a decoded image out of it, costs one more image of
memory. External chunks are referenced with negative chunk indices, are not counted in the
arena's statistics or ``max_capacity``, and are released (not freed: the caller may still hold
them) by ``reset()``. An adopted array can be exposed read-only, so no system can write into a
caller's buffer by accident.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ArenaExhaustedError, StaleReferenceError, VaeransError

__all__ = ["ALIGNMENT", "Arena", "TensorRef"]

ALIGNMENT = 64
_MiB = 1 << 20
_arena_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class TensorRef:
    """Immutable, hashable handle to a C-contiguous tensor living in an :class:`Arena`."""

    arena_id: int
    generation: int
    chunk: int
    offset: int
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        """Size of the referenced tensor in bytes."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)


class Arena:
    """A growable bump allocator; see the module docstring for the growth policy."""

    def __init__(self, capacity: int = 512 * _MiB, max_capacity: int | None = None) -> None:
        if capacity <= 0:
            raise VaeransError(f"arena capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.max_capacity = int(max_capacity) if max_capacity is not None else 16 * self.capacity
        if self.max_capacity < self.capacity:
            raise VaeransError("max_capacity must be >= capacity")
        self.id = next(_arena_ids)
        self.generation = 0
        self._chunks: list[npt.NDArray[np.uint8]] = []
        self._bases: list[int] = []  # offset of the first 64-byte aligned byte of each chunk
        self._sizes: list[int] = []  # usable bytes of each chunk
        self._external: list[npt.NDArray[np.generic]] = []  # adopted arrays; chunk index -(i + 1)
        self._top = 0  # bump pointer inside the last chunk
        self._used_before_last = 0  # bytes handed out in earlier chunks
        self.high_water = 0
        self._add_chunk(self.capacity)

    # -- statistics ---------------------------------------------------------------------------
    @property
    def bytes_used(self) -> int:
        """Bytes handed out since the last reset (including alignment padding)."""
        return self._used_before_last + self._top - self._bases[-1]

    @property
    def bytes_reserved(self) -> int:
        """Total size of the chunks currently held (virtual memory, not necessarily committed)."""
        return sum(self._sizes)

    @property
    def n_chunks(self) -> int:
        """Number of chunks currently held."""
        return len(self._chunks)

    # -- allocation ---------------------------------------------------------------------------
    def _add_chunk(self, size: int) -> None:
        if self._chunks and self.bytes_reserved + size > self.max_capacity:
            raise ArenaExhaustedError(
                f"arena exhausted: need a chunk of {size / _MiB:.1f} MiB but {self.bytes_reserved / _MiB:.1f}"
                f" of max_capacity={self.max_capacity / _MiB:.1f} MiB are reserved; call World.clear() "
                "between jobs or raise [arena] max_capacity_mb"
            )
        buf = np.empty(size + ALIGNMENT, dtype=np.uint8)
        base = (-buf.ctypes.data) % ALIGNMENT
        if self._chunks:
            self._used_before_last += self._top - self._bases[-1]
        self._chunks.append(buf)
        self._bases.append(base)
        self._sizes.append(size)
        self._top = base

    def alloc_tensor(self, shape: tuple[int, ...] | list[int], dtype: npt.DTypeLike) -> TensorRef:
        """Reserve an uninitialised, 64-byte aligned tensor and return its reference."""
        shape_t = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape_t):
            raise VaeransError(f"negative dimension in shape {shape_t}")
        dt = np.dtype(dtype)
        nbytes = math.prod(shape_t) * dt.itemsize
        if nbytes > self.max_capacity:
            raise ArenaExhaustedError(
                f"arena exhausted: a {shape_t} {dt} tensor needs {nbytes / _MiB:.1f} MiB, more than "
                f"max_capacity={self.max_capacity / _MiB:.1f} MiB"
            )
        if self._top + nbytes > self._bases[-1] + self._sizes[-1]:
            self._add_chunk(max(self.capacity, nbytes))
        offset = self._top
        self._top = offset + -(-max(nbytes, 1) // ALIGNMENT) * ALIGNMENT
        self.high_water = max(self.high_water, self.bytes_used)
        return TensorRef(self.id, self.generation, len(self._chunks) - 1, offset, shape_t, dt.str)

    def copy_in(self, array: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> TensorRef:
        """Allocate a tensor shaped like ``array`` and copy it in (casting to ``dtype`` if given)."""
        src = np.asarray(array)
        ref = self.alloc_tensor(src.shape, dtype if dtype is not None else src.dtype)
        np.copyto(self.view(ref), src, casting="unsafe" if dtype is not None else "same_kind")
        return ref

    def adopt(self, array: npt.NDArray[np.generic], *, readonly: bool = True) -> TensorRef:
        """Reference ``array`` from the arena without copying it (valid until ``reset()``).

        ``array`` must be C-contiguous (use :meth:`copy_in` otherwise). With ``readonly`` (the
        default) every view of the tensor is read-only, which protects a caller's buffer; pass
        ``readonly=False`` for a buffer the arena's users may fill (see :meth:`alloc_dedicated`).
        The array stays alive while the arena or any view of it refers to it.
        """
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            raise VaeransError("Arena.adopt needs a C-contiguous numpy array; use copy_in() for others")
        held = array.view()
        if readonly:
            held.flags.writeable = False
        elif not held.flags.writeable:
            raise VaeransError("Arena.adopt(readonly=False) needs a writable array")
        self._external.append(held)
        return TensorRef(self.id, self.generation, -len(self._external), 0, tuple(array.shape), array.dtype.str)

    def alloc_dedicated(self, shape: tuple[int, ...] | list[int], dtype: npt.DTypeLike) -> TensorRef:
        """Like :meth:`alloc_tensor`, but in a buffer of its own, adopted as an external chunk.

        Why: a large result (a decoded 8192x8192 image) that the caller takes away afterwards can be
        returned without a copy (:meth:`is_external`), and it does not keep the arena's chunks alive.
        """
        shape_t = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape_t):
            raise VaeransError(f"negative dimension in shape {shape_t}")
        return self.adopt(np.empty(shape_t, dtype=np.dtype(dtype)), readonly=False)

    def is_external(self, ref: TensorRef) -> bool:
        """True when ``ref`` lives in an adopted buffer (:meth:`adopt`, :meth:`alloc_dedicated`)."""
        return ref.chunk < 0

    def view(self, ref: TensorRef) -> npt.NDArray[np.generic]:
        """Return a zero-copy numpy view of ``ref``; stale references raise.

        Views are writable, except those of arrays adopted with ``readonly=True``.
        """
        if ref.arena_id != self.id:
            raise StaleReferenceError(f"TensorRef belongs to arena {ref.arena_id}, not arena {self.id}")
        if ref.generation != self.generation:
            raise StaleReferenceError(
                f"stale TensorRef: allocated in generation {ref.generation}, arena is at generation "
                f"{self.generation} (reset() or World.clear() invalidated it)"
            )
        dt = np.dtype(ref.dtype)
        buf = self._chunks[ref.chunk] if ref.chunk >= 0 else self._external[-ref.chunk - 1]
        return np.ndarray(ref.shape, dtype=dt, buffer=buf, offset=ref.offset)

    def subref(self, ref: TensorRef, index: int) -> TensorRef:
        """Reference item ``index`` of a batched tensor (first axis) without copying."""
        if not ref.shape:
            raise VaeransError("cannot take a sub-reference of a 0-d tensor")
        n = ref.shape[0]
        if not -n <= index < n:
            raise VaeransError(f"index {index} out of range for a batch of {n}")
        index %= n
        item_shape = ref.shape[1:]
        item_bytes = math.prod(item_shape) * np.dtype(ref.dtype).itemsize
        return TensorRef(
            ref.arena_id, ref.generation, ref.chunk, ref.offset + index * item_bytes, item_shape, ref.dtype
        )

    def reset(self) -> None:
        """Free every tensor at once: drop extra chunks and adopted arrays, invalidate all outstanding refs."""
        del self._chunks[1:]
        self._external.clear()
        del self._bases[1:]
        del self._sizes[1:]
        self._top = self._bases[0]
        self._used_before_last = 0
        self.generation += 1
