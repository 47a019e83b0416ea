"""Arena: zero-copy views, alignment, stale references, exhaustion, growth, batch subrefs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.core.arena import ALIGNMENT, Arena, TensorRef
from vaerans_ecs.errors import ArenaExhaustedError, StaleReferenceError, VaeransError


def test_view_is_zero_copy() -> None:
    arena = Arena(1 << 16)
    ref = arena.alloc_tensor((4, 5), np.float32)
    v1 = arena.view(ref)
    v1[...] = 7.0
    assert arena.view(ref)[2, 3] == 7.0
    assert np.shares_memory(v1, arena.view(ref))


@pytest.mark.parametrize("nbytes", [1, 3, 63, 64, 65, 1000])
def test_alignment(nbytes: int) -> None:
    arena = Arena(1 << 16)
    for _ in range(5):
        ref = arena.alloc_tensor((nbytes,), np.uint8)
        assert arena.view(ref).ctypes.data % ALIGNMENT == 0


def test_stale_after_reset() -> None:
    arena = Arena(1 << 12)
    ref = arena.alloc_tensor((3,), np.int32)
    arena.reset()
    with pytest.raises(StaleReferenceError, match="generation"):
        arena.view(ref)
    other = Arena(1 << 12)
    with pytest.raises(StaleReferenceError, match="arena"):
        other.view(ref)


def test_exhaustion_error_and_growth() -> None:
    arena = Arena(1024, max_capacity=2048)
    a = arena.alloc_tensor((1000,), np.uint8)
    b = arena.alloc_tensor((1000,), np.uint8)  # grows into a second chunk
    assert arena.n_chunks == 2
    arena.view(a)[:] = 1
    arena.view(b)[:] = 2
    assert arena.view(a).sum() == 1000  # first chunk untouched by growth
    with pytest.raises(ArenaExhaustedError, match="max_capacity"):
        arena.alloc_tensor((1000,), np.uint8)
    with pytest.raises(ArenaExhaustedError):
        arena.alloc_tensor((10_000,), np.uint8)
    arena.reset()
    assert arena.n_chunks == 1 and arena.bytes_used == 0
    arena.alloc_tensor((1000,), np.uint8)


def test_statistics() -> None:
    arena = Arena(1 << 16)
    arena.alloc_tensor((8,), np.float64)  # 64 bytes
    arena.alloc_tensor((100,), np.uint8)  # padded to 128
    assert arena.bytes_used == 64 + 128
    arena.reset()
    assert arena.bytes_used == 0
    assert arena.high_water == 192


def test_subref_batch() -> None:
    arena = Arena(1 << 16)
    batch = arena.alloc_tensor((3, 2, 4), np.float32)
    full = arena.view(batch)
    full[...] = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    item = arena.subref(batch, 1)
    assert item.shape == (2, 4)
    np.testing.assert_array_equal(arena.view(item), full[1])
    arena.view(item)[0, 0] = -1
    assert full[1, 0, 0] == -1
    assert arena.subref(batch, -1) == arena.subref(batch, 2)
    with pytest.raises(VaeransError):
        arena.subref(batch, 3)


def test_tensorref_immutable_hashable() -> None:
    ref = Arena(1 << 12).alloc_tensor((2,), np.uint8)
    assert {ref: 1}[ref] == 1
    with pytest.raises(AttributeError):
        ref.offset = 0  # type: ignore[misc]
    assert isinstance(ref, TensorRef) and ref.nbytes == 2 and ref.ndim == 1


def test_copy_in_and_bad_args() -> None:
    arena = Arena(1 << 12)
    ref = arena.copy_in(np.arange(6).reshape(2, 3), dtype=np.float32)
    assert arena.view(ref).dtype == np.float32 and arena.view(ref)[1, 2] == 5
    with pytest.raises(VaeransError):
        arena.alloc_tensor((-1,), np.uint8)
    with pytest.raises(VaeransError):
        Arena(0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.just("reset"), st.integers(1, 300)), min_size=1, max_size=30))
def test_stale_refs_always_caught(ops: list[object]) -> None:
    """Random alloc/reset/view sequences: live refs read back what was written, stale ones raise."""
    arena = Arena(512, max_capacity=1 << 20)
    live: list[tuple[TensorRef, int]] = []
    stale: list[TensorRef] = []
    for i, op in enumerate(ops):
        if op == "reset":
            arena.reset()
            stale.extend(r for r, _ in live)
            live.clear()
        else:
            assert isinstance(op, int)
            ref = arena.alloc_tensor((op,), np.uint8)
            arena.view(ref)[:] = i % 251
            live.append((ref, i % 251))
        for ref, value in live:
            assert (arena.view(ref) == value).all()
        for ref in stale:
            with pytest.raises(StaleReferenceError):
                arena.view(ref)
