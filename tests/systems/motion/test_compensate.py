"""Motion compensation equals a direct per-pixel evaluation of its definition, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from vaerans_ecs.systems.motion.compensate import predict

I64 = NDArray[np.int64]


def reference(ref: NDArray[np.uint8], mv: NDArray[np.int32], block: int, subpel: int, obmc: bool,
              shape: tuple[int, int]) -> NDArray[np.uint8]:
    """The definition: per-pixel bilinear taps with clamped coordinates, linear-ramp OBMC windows."""
    h, w = shape
    ny, nx, _ = mv.shape
    s, sh = subpel, subpel.bit_length() - 1
    rh, rw = ref.shape[:2]
    r = ref.astype(np.int64)

    def pixel(vy: I64, vx: I64) -> I64:
        ys = np.arange(h)[:, None] + (vy >> sh)
        xs = np.arange(w)[None, :] + (vx >> sh)
        fy, fx = (vy & (s - 1))[..., None], (vx & (s - 1))[..., None]
        ya, yb = np.clip(ys, 0, rh - 1), np.clip(ys + 1, 0, rh - 1)
        xa, xb = np.clip(xs, 0, rw - 1), np.clip(xs + 1, 0, rw - 1)
        out: I64 = (s - fy) * ((s - fx) * r[ya, xa] + fx * r[ya, xb]) + fy * ((s - fx) * r[yb, xa] + fx * r[yb, xb])
        return out

    if not obmc:
        by, bx = np.minimum(np.arange(h) // block, ny - 1), np.minimum(np.arange(w) // block, nx - 1)
        f = mv[by[:, None], bx[None, :]].astype(np.int64)
        return ((pixel(f[..., 0], f[..., 1]) + (1 << 2 * sh >> 1)) >> 2 * sh).astype(np.uint8)

    def ramp(n: int) -> tuple[I64, I64, I64]:
        t = np.arange(n) - block // 2
        j0 = np.floor_divide(t, block)
        nxt = 2 * (t - j0 * block) + 1
        return j0, 2 * block - nxt, nxt

    (jy, wy0, wy1), (jx, wx0, wx1) = ramp(h), ramp(w)
    total = np.zeros((h, w, ref.shape[2]), dtype=np.int64)
    for ay, wy in ((0, wy0), (1, wy1)):
        by = np.clip(jy + ay, 0, ny - 1)
        for ax, wx in ((0, wx0), (1, wx1)):
            bx = np.clip(jx + ax, 0, nx - 1)
            f = mv[by[:, None], bx[None, :]].astype(np.int64)
            total += (wy[:, None] * wx[None, :])[..., None] * pixel(f[..., 0], f[..., 1])
    shift = 2 * sh + 2 * (2 * block).bit_length() - 2
    return ((total + (1 << shift >> 1)) >> shift).astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), block=st.sampled_from([4, 8, 16]), subpel=st.sampled_from([1, 2, 4, 8]),
    obmc=st.booleans(), reach=st.integers(0, 80), seed=st.integers(0, 1 << 20),
)
def test_predict_matches_the_definition(h: int, w: int, block: int, subpel: int, obmc: bool, reach: int,
                                        seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    ny, nx = -(-h // block), -(-w // block)
    mv = rng.integers(-reach * subpel, reach * subpel + 1, (ny, nx, 2)).astype(np.int32)
    got = predict(ref, mv, block=block, subpel=subpel, obmc=obmc, shape=(h, w))
    assert np.array_equal(got, reference(ref, mv, block, subpel, obmc, (h, w)))


def test_zero_field_copies_the_reference_and_integer_shift_moves_it() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (32, 48, 3)).astype(np.uint8)
    zero = np.zeros((2, 3, 2), dtype=np.int32)
    for obmc in (False, True):
        assert np.array_equal(predict(ref, zero, block=16, subpel=4, obmc=obmc, shape=(32, 48)), ref)
    shift = np.full((2, 3, 2), 4 * 2, dtype=np.int32)  # (2, 2) pixels at quarter-pel
    out = predict(ref, shift, block=16, subpel=4, obmc=True, shape=(32, 48))
    assert np.array_equal(out[:-2, :-2], ref[2:, 2:])
