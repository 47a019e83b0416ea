"""Motion compensation equals a direct per-pixel evaluation of its definition, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from vaerans_ecs.systems.motion.compensate import PhasePlanes, predict, reference_planes

I64 = NDArray[np.int64]


TAPS = (1, -5, 20, 20, -5, 1)


def sharp_samples(r: I64, yq: I64, xq: I64, s: int) -> I64:
    """Samples at (yq / s, xq / s): 6-tap half-pel samples (clamped taps), quarter-pel means of them."""
    rh, rw = r.shape[:2]

    def px(yy: I64, xx: I64) -> I64:
        out: I64 = r[np.clip(yy, 0, rh - 1), np.clip(xx, 0, rw - 1)]
        return out

    def half(ky: I64, kx: I64) -> I64:
        y, hy, x, hx = ky // 2, (ky % 2)[..., None], kx // 2, (kx % 2)[..., None]

        def horiz(yy: I64) -> I64:
            return sum(t * px(yy, x - 2 + j) for j, t in enumerate(TAPS))  # type: ignore[return-value]

        a = px(y, x)
        b = np.clip((horiz(y) + 16) >> 5, 0, 255)
        c = np.clip((sum(t * px(y - 2 + j, x) for j, t in enumerate(TAPS)) + 16) >> 5, 0, 255)
        d = np.clip((sum(t * horiz(y - 2 + j) for j, t in enumerate(TAPS)) + 512) >> 10, 0, 255)
        out: I64 = np.where(hy == 0, np.where(hx == 0, a, b), np.where(hx == 0, c, d))
        return out

    ylo, yhi = (2 * yq) // s, -((-2 * yq) // s)
    xlo, xhi = (2 * xq) // s, -((-2 * xq) // s)
    n = ((ylo != yhi).astype(np.int64) + 1) * ((xlo != xhi).astype(np.int64) + 1)
    total = half(ylo, xlo) + np.where((ylo != yhi)[..., None], half(yhi, xlo), 0)
    total += np.where((xlo != xhi)[..., None], half(ylo, xhi), 0)
    total += np.where(((ylo != yhi) & (xlo != xhi))[..., None], half(yhi, xhi), 0)
    n3 = n[..., None]
    out: I64 = (total + n3 // 2) // n3
    return out


def reference(ref: NDArray[np.uint8], mv: NDArray[np.int32], block: int, subpel: int, obmc: bool,
              shape: tuple[int, int], taps: str = "bilinear") -> NDArray[np.uint8]:
    """The definition: per-pixel taps with clamped coordinates, linear-ramp OBMC windows."""
    h, w = shape
    ny, nx, _ = mv.shape
    s, sh = subpel, subpel.bit_length() - 1
    rh, rw = ref.shape[:2]
    r = ref.astype(np.int64)

    def pixel(vy: I64, vx: I64) -> I64:
        if taps == "sharp":
            yq = s * np.arange(h)[:, None] + vy
            xq = s * np.arange(w)[None, :] + vx
            scaled: I64 = sharp_samples(r, yq, xq, s) << 2 * sh
            return scaled
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


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), block=st.sampled_from([4, 8, 16]), subpel=st.sampled_from([1, 2, 4, 8]),
    obmc=st.booleans(), reach=st.integers(0, 80), seed=st.integers(0, 1 << 20), sharp=st.booleans(),
)
def test_predict_matches_the_definition(h: int, w: int, block: int, subpel: int, obmc: bool, reach: int,
                                        seed: int, sharp: bool) -> None:
    taps = "sharp" if sharp and subpel != 8 else "bilinear"
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    ny, nx = -(-h // block), -(-w // block)
    mv = rng.integers(-reach * subpel, reach * subpel + 1, (ny, nx, 2)).astype(np.int32)
    got = predict(ref, mv, block=block, subpel=subpel, obmc=obmc, shape=(h, w), taps=taps)
    assert np.array_equal(got, reference(ref, mv, block, subpel, obmc, (h, w), taps))


def test_zero_field_copies_the_reference_and_integer_shift_moves_it() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (32, 48, 3)).astype(np.uint8)
    zero = np.zeros((2, 3, 2), dtype=np.int32)
    for obmc in (False, True):
        for taps in ("bilinear", "sharp"):
            assert np.array_equal(predict(ref, zero, block=16, subpel=4, obmc=obmc, shape=(32, 48), taps=taps), ref)
    shift = np.full((2, 3, 2), 4 * 2, dtype=np.int32)  # (2, 2) pixels at quarter-pel
    out = predict(ref, shift, block=16, subpel=4, obmc=True, shape=(32, 48), taps="sharp")
    assert np.array_equal(out[:-2, :-2], ref[2:, 2:])


def test_sharp_half_pel_keeps_detail_that_bilinear_blurs() -> None:
    x = np.arange(64)
    row = (128 + 100 * np.sin(x * 2 * np.pi / 5)).astype(np.uint8)  # fine detail: period 5 pixels
    ref = np.repeat(np.repeat(row[None, :, None], 16, axis=0), 3, axis=2)
    half = np.zeros((1, 4, 2), dtype=np.int32)
    half[..., 1] = 1  # half a pixel to the right
    exact = 128 + 100 * np.sin((x + 0.5) * 2 * np.pi / 5)
    err = {taps: float(np.abs(predict(ref, half, block=16, subpel=2, obmc=False, shape=(16, 64), taps=taps)[8, 4:-4, 0]
                              - exact[4:-4]).mean()) for taps in ("bilinear", "sharp")}
    assert err["sharp"] < 0.5 * err["bilinear"], err


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), c=st.sampled_from([1, 3]), subpel=st.sampled_from([1, 2, 4]),
       size=st.sampled_from([1, 4, 8]), taps=st.sampled_from(["bilinear", "sharp"]), rounded=st.booleans(),
       seed=st.integers(0, 2**16))
def test_blocks_read_what_gather_reads(h: int, w: int, c: int, subpel: int, size: int, taps: str, rounded: bool,
                                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    planes = PhasePlanes(ref, subpel, size + 4, rounded=rounded, taps=taps)
    y = rng.integers(-3, h + 3, (5, 4)).astype(np.int32)
    x = rng.integers(-3, w + 3, (5, 4)).astype(np.int32)
    mv = rng.integers(-60 * subpel, 60 * subpel, (5, 4, 2)).astype(np.int32)  # some beyond the margin: clamped
    assert np.array_equal(np.moveaxis(planes.blocks(y, x, mv, size), -3, -1), planes.gather(y, x, mv, size))


def test_predictions_from_one_reference_share_its_planes() -> None:
    rng = np.random.default_rng(11)
    ref = rng.integers(0, 256, (40, 56, 3)).astype(np.uint8)
    integer = np.zeros((3, 4, 2), dtype=np.int32)
    integer[1, 2] = (8, -4)  # whole pixels only: one fraction prepared
    mixed = rng.integers(-20, 21, (3, 4, 2)).astype(np.int32)  # other fractions: the planes are rebuilt
    first = reference_planes(ref, 4, 12, {(0, 0)}, "sharp")
    assert reference_planes(ref.copy(), 4, 12, {(0, 0)}, "sharp") is first  # same pixels: kept
    wider = reference_planes(ref, 4, 12, {(0, 0), (1, 3)}, "sharp")
    assert wider is not first and len(wider.phases) == 16  # a second need: every fraction
    for mv in (integer, mixed, integer, mixed):  # hits, a rebuild with more fractions, hits again
        for obmc in (True, False):
            got = predict(ref, mv, block=16, subpel=4, obmc=obmc, shape=(40, 56), taps="sharp")
            assert np.array_equal(got, reference(ref, mv, 16, 4, obmc, (40, 56), "sharp"))
