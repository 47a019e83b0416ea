"""Motion search finds known motion; the stages are registered and swappable by name."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sequence.conftest import canvas
from vaerans_ecs.core.system import SYSTEMS, system_from_config
from vaerans_ecs.errors import ConfigError
from vaerans_ecs.systems.motion.search import LumaPyramid, estimate_motion, luma, luma_pyramid, pad_to_blocks
from vaerans_ecs.systems.motion.stages import BlockMotion


@pytest.mark.parametrize(("dy", "dx", "subpel"), [(3, -5, 1), (-12, 9, 2), (20, 17, 4), (0, 0, 2)])
def test_global_shift_is_found(dy: int, dx: int, subpel: int) -> None:
    big = canvas(160, 200, 4)
    cur = big[40:104, 48:128]
    ref = big[40 + dy: 104 + dy, 48 + dx: 128 + dx]
    mv = estimate_motion(pad_to_blocks(luma(cur), 16), pad_to_blocks(luma(ref), 16), block=16, subpel=subpel)
    inner = mv[1:-1, 1:-1].reshape(-1, 2)  # the border blocks may see the edge
    assert np.all(inner == [-dy * subpel, -dx * subpel])  # cur[p] = ref[p + v]


def test_half_pel_motion_is_found_at_half_pel() -> None:
    big = canvas(128, 160, 6).astype(np.int32)
    # the reference is the average of two pixel-shifted copies: a half-pel displacement
    ref = ((big[:-1] + big[1:] + 1) >> 1)[16:80, 16:112].astype(np.uint8)
    cur = big[16:80, 16:112].astype(np.uint8)
    mv = estimate_motion(pad_to_blocks(luma(cur), 16), pad_to_blocks(luma(ref), 16), block=16, subpel=2, lam=0)
    assert np.median(mv[1:-1, 1:-1, 0]) == -1 and np.median(mv[1:-1, 1:-1, 1]) == 0


def test_stages_are_registered_and_rebuilt_from_config() -> None:
    for name in ("BlockMotion", "MotionCompensate", "TransformResidual", "PixelResidual", "SceneCut",
                 "ConstantQuality", "TargetRate", "FixedStep"):
        cls = SYSTEMS.get(name)
        stage = cls()
        assert system_from_config(stage.get_config()) == stage
    with pytest.raises(ConfigError):
        BlockMotion(block=12)
    with pytest.raises(ConfigError):
        BlockMotion(subpel=3)


def _brute_full_search(cur: np.ndarray, ref: np.ndarray, b: int, radius: int, lam: int) -> np.ndarray:
    """Per block, the first (dy, dx) in raster order of least SAD + lam * (|dy| + |dx|), edge-replicated."""
    h, w = cur.shape
    rp = np.pad(ref, radius, mode="edge").astype(np.int64)
    out = np.zeros((h // b, w // b, 2), dtype=np.int32)
    for by in range(h // b):
        for bx in range(w // b):
            blk = cur[by * b:(by + 1) * b, bx * b:(bx + 1) * b].astype(np.int64)
            best = None
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    y, x = by * b + dy + radius, bx * b + dx + radius
                    cost = int(np.abs(blk - rp[y:y + b, x:x + b]).sum()) + lam * (abs(dy) + abs(dx))
                    if best is None or cost < best:
                        best, out[by, bx] = cost, (dy, dx)
    return out


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 5), w=st.integers(1, 5), block=st.sampled_from([4, 8]), radius=st.integers(1, 5),
       lam=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_full_search_is_exhaustive(h: int, w: int, block: int, radius: int, lam: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (h * block + 12, w * block + 12), dtype=np.int32)
    cur = big[6:6 + h * block, 6:6 + w * block]
    ref = np.roll(big, tuple(rng.integers(-4, 5, 2)), axis=(0, 1))[6:6 + h * block, 6:6 + w * block]
    mv = estimate_motion(cur, ref, block=block, levels=0, radius=radius, subpel=1, lam=lam)
    assert np.array_equal(mv, _brute_full_search(cur, ref, block, radius, lam))


def test_pyramids_give_the_same_vectors_and_are_shared() -> None:
    big = canvas(160, 200, 8)
    cur, ref, other = big[40:104, 48:128], big[43:107, 44:124], big[30:94, 50:130]
    plain = estimate_motion(pad_to_blocks(luma(cur), 16), pad_to_blocks(luma(ref), 16), block=16, subpel=4,
                            lam=8, taps="sharp")
    ref_pyr = luma_pyramid(ref, 16)
    assert luma_pyramid(ref.copy(), 16) is ref_pyr  # same pixels: the same pyramid
    assert luma_pyramid(other, 16) is not ref_pyr
    for _ in range(2):  # the second search reuses the planes the first built
        mv = estimate_motion(LumaPyramid(pad_to_blocks(luma(cur), 16)), luma_pyramid(ref, 16), block=16, subpel=4,
                             lam=8, taps="sharp")
        assert np.array_equal(mv, plain)
    assert np.array_equal(ref_pyr.level(0), pad_to_blocks(luma(ref), 16))


def test_a_shared_pyramid_gives_the_same_vectors_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    big = canvas(200, 240, 9)
    cur, ref = big[40:136, 40:200], big[44:140, 37:197]
    c = pad_to_blocks(luma(cur), 16)
    expected = estimate_motion(c, pad_to_blocks(luma(ref), 16), block=16, levels=3, subpel=4, lam=6, taps="sharp")
    shared = LumaPyramid(pad_to_blocks(luma(ref), 16))  # built lazily by whichever thread comes first
    with ThreadPoolExecutor(4) as pool:
        fields = list(pool.map(lambda _: estimate_motion(c, shared, block=16, levels=3, subpel=4, lam=6,
                                                         taps="sharp"), range(8)))
    assert all(np.array_equal(f, expected) for f in fields)
