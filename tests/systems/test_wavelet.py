"""Wavelet transforms (CDF 5/3 float/integer, Haar), band layout, gains, and the wavelet systems."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.components.latent import YUVW4
from vaerans_ecs.components.wavelet import Band, WaveletPyr, check_layout
from vaerans_ecs.core.system import SYSTEMS, Mode, system_from_config
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import ConfigError, MissingComponentError, VaeransError
from vaerans_ecs.systems.hadamard import Hadamard4
from vaerans_ecs.systems.wavelet import (
    WaveletCDF53,
    WaveletHaar,
    band_layout,
    synthesis_gains,
    wavelet_forward,
    wavelet_inverse,
)

FAST = settings(derandomize=True, deadline=None, max_examples=60)

sizes = st.integers(min_value=1, max_value=37)
levels_st = st.integers(min_value=0, max_value=5)
wavelets = st.sampled_from(["cdf53", "haar"])


# ----------------------------------------------------------------------------------------------
# Independent (slow, loop-based) reference: symmetric extension written out explicitly
# ----------------------------------------------------------------------------------------------
def _ref_1d(x: list[float], wavelet: str, integer: bool) -> tuple[list[float], list[float]]:
    n = len(x)

    def xe(i: int) -> float:  # whole-point symmetric extension
        while i < 0 or i > n - 1:
            i = -i if i < 0 else 2 * (n - 1) - i
        return x[i]

    if wavelet == "haar":
        c = 1 / math.sqrt(2)
        low = [(x[2 * i] + x[2 * i + 1]) * c for i in range(n // 2)] + ([x[-1]] if n % 2 else [])
        high = [(x[2 * i + 1] - x[2 * i]) * c for i in range(n // 2)]
        return low, high

    def d(j: int) -> float:  # high-pass at any (extended) position j
        a, b = xe(2 * j), xe(2 * j + 2)
        return xe(2 * j + 1) - ((a + b) // 2 if integer else (a + b) / 2)

    def s(i: int) -> float:
        a, b = d(i - 1), d(i)
        return xe(2 * i) + ((a + b + 2) // 4 if integer else (a + b) / 4)

    return [s(i) for i in range((n + 1) // 2)], [d(j) for j in range(n // 2)]


def _ref_axis(a: npt.NDArray[np.float64], axis: int, wavelet: str, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.moveaxis(a, axis, -1)
    lows, highs = [], []
    for row in a.reshape(-1, a.shape[-1]):
        lo, hi = _ref_1d(list(row), wavelet, integer)
        lows.append(lo)
        highs.append(hi)
    lo_arr = np.array(lows, dtype=np.float64).reshape(*a.shape[:-1], -1)
    hi_arr = np.array(highs, dtype=np.float64).reshape(*a.shape[:-1], -1)
    return np.moveaxis(lo_arr, -1, axis), np.moveaxis(hi_arr, -1, axis)


def _ref_forward(
    plane: npt.NDArray[np.float64], wavelet: str, levels: int, integer: bool
) -> tuple[np.ndarray, list[tuple[str, int, tuple[int, int]]]]:
    """Packed coefficients and (name, level, shape) of each band, for one 2-D plane."""
    ll = plane
    details: list[list[tuple[str, np.ndarray]]] = []
    for _ in range(levels):
        h, w = ll.shape
        if h == 1 and w == 1:
            break
        if w > 1:
            lo, hi = _ref_axis(ll, 1, wavelet, integer)
        else:
            lo, hi = ll, np.zeros((h, 0))
        if h > 1:
            new_ll, lh = _ref_axis(lo, 0, wavelet, integer)
            hl, hh = (
                _ref_axis(hi, 0, wavelet, integer) if hi.size else (np.zeros((h - h // 2, 0)), np.zeros((h // 2, 0)))
            )
        else:
            new_ll, lh, hl, hh = lo, np.zeros((0, lo.shape[1])), hi, np.zeros((0, hi.shape[1]))
        details.append([("HL", hl), ("LH", lh), ("HH", hh)])
        ll = new_ll
    n_lev = len(details)
    parts = [ll.ravel()]
    meta = [(f"LL{n_lev}", n_lev, ll.shape)]
    for lev in range(n_lev, 0, -1):
        for name, band in details[lev - 1]:
            if band.size:
                parts.append(band.ravel())
                meta.append((f"{name}{lev}", lev, band.shape))
    return np.concatenate(parts), meta


@FAST
@given(h=st.integers(1, 13), w=st.integers(1, 13), levels=st.integers(0, 4), wavelet=wavelets, seed=st.integers(0, 99))
def test_matches_reference_float(h: int, w: int, levels: int, wavelet: str, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((2, h, w)).astype(np.float32)
    got = wavelet_forward(x, wavelet, levels)
    layout = band_layout(h, w, levels)
    for ch in range(2):
        ref, meta = _ref_forward(x[ch].astype(np.float64), wavelet, levels, integer=False)
        np.testing.assert_allclose(got[ch], ref, rtol=0, atol=1e-5)
        assert [(b.name, b.level, (b.h, b.w)) for b in layout] == meta


@FAST
@given(h=st.integers(1, 13), w=st.integers(1, 13), levels=st.integers(0, 4), seed=st.integers(0, 99))
def test_matches_reference_integer(h: int, w: int, levels: int, seed: int) -> None:
    x = np.random.default_rng(seed).integers(-300, 300, (2, h, w)).astype(np.int32)
    got = wavelet_forward(x, "cdf53", levels, integer=True)
    assert got.dtype == np.int32
    for ch in range(2):
        ref, _ = _ref_forward(x[ch].astype(np.float64), "cdf53", levels, integer=True)
        np.testing.assert_array_equal(got[ch], ref.astype(np.int64))


# ----------------------------------------------------------------------------------------------
# Round trips and non-expansiveness
# ----------------------------------------------------------------------------------------------
@FAST
@given(c=st.integers(1, 3), h=sizes, w=sizes, levels=levels_st, wavelet=wavelets, seed=st.integers(0, 999))
def test_float_round_trip(c: int, h: int, w: int, levels: int, wavelet: str, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal((c, h, w)) * 10).astype(np.float32)
    x_copy = x.copy()
    packed = wavelet_forward(x, wavelet, levels)
    assert packed.shape == (c, h * w)  # non-expansive
    assert packed.dtype == np.float32
    np.testing.assert_array_equal(x, x_copy)  # input untouched
    packed_copy = packed.copy()
    rec = wavelet_inverse(packed, h, w, wavelet, levels)
    np.testing.assert_array_equal(packed, packed_copy)
    assert rec.shape == (c, h, w) and rec.dtype == np.float32
    assert np.abs(rec - x).max() <= 1e-5 * max(1.0, float(np.abs(x).max()))


@FAST
@given(c=st.integers(1, 3), h=sizes, w=sizes, levels=levels_st, seed=st.integers(0, 999))
def test_integer_round_trip_exact(c: int, h: int, w: int, levels: int, seed: int) -> None:
    x = np.random.default_rng(seed).integers(-(2**15), 2**15, (c, h, w)).astype(np.int32)
    packed = wavelet_forward(x, "cdf53", levels, integer=True)
    assert packed.shape == (c, h * w) and packed.dtype == np.int32
    rec = wavelet_inverse(packed, h, w, "cdf53", levels)
    assert rec.dtype == np.int32
    np.testing.assert_array_equal(rec, x)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (1, 9), (9, 1), (1, 64), (3, 2), (2, 3), (5, 7), (17, 1)])
@pytest.mark.parametrize("levels", [0, 1, 3, 6])
@pytest.mark.parametrize("wavelet", ["cdf53", "haar"])
def test_degenerate_sizes(shape: tuple[int, int], levels: int, wavelet: str) -> None:
    h, w = shape
    rng = np.random.default_rng(h * 100 + w)
    x = rng.standard_normal((2, h, w)).astype(np.float32)
    packed = wavelet_forward(x, wavelet, levels)
    assert packed.shape == (2, h * w)
    np.testing.assert_allclose(wavelet_inverse(packed, h, w, wavelet, levels), x, atol=1e-5)
    if wavelet == "cdf53":
        xi = rng.integers(-100, 100, (2, h, w))  # int64 input is accepted and cast
        np.testing.assert_array_equal(
            wavelet_inverse(wavelet_forward(xi, "cdf53", levels, integer=True), h, w, "cdf53", levels), xi
        )
    bands = band_layout(h, w, levels)
    assert all(b.size > 0 for b in bands)
    check_layout(bands, h * w, "test")


def test_levels_zero_is_identity() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for wavelet in ("cdf53", "haar"):
        packed = wavelet_forward(x, wavelet, 0)
        np.testing.assert_array_equal(packed, x.reshape(2, 12))
        np.testing.assert_array_equal(wavelet_inverse(packed, 3, 4, wavelet, 0), x)
    assert band_layout(3, 4, 0) == (Band(name="LL0", level=0, h=3, w=4, offset=0),)


def test_out_parameter() -> None:
    x = np.random.default_rng(1).standard_normal((3, 20, 11)).astype(np.float32)
    out = np.full((3, 220), np.nan, dtype=np.float32)
    assert wavelet_forward(x, "cdf53", 2, out=out) is out
    np.testing.assert_array_equal(out, wavelet_forward(x, "cdf53", 2))
    rec = np.full((3, 20, 11), np.nan, dtype=np.float32)
    assert wavelet_inverse(out, 20, 11, "cdf53", 2, out=rec) is rec
    np.testing.assert_allclose(rec, x, atol=1e-5)
    with pytest.raises(VaeransError):
        wavelet_forward(x, "cdf53", 2, out=np.empty((3, 221), np.float32))
    with pytest.raises(VaeransError):
        wavelet_forward(x, "cdf53", 2, out=np.empty((3, 220), np.float64))
    with pytest.raises(VaeransError):
        wavelet_forward(x, "cdf53", 2, out=np.empty((3, 440), np.float32)[:, ::2])
    with pytest.raises(VaeransError):
        wavelet_inverse(out, 20, 11, "cdf53", 2, out=np.empty((3, 11, 20), np.float32))


def test_errors() -> None:
    x = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(VaeransError, match="unknown wavelet"):
        wavelet_forward(x, "db4", 1)
    with pytest.raises(VaeransError, match="integer"):
        wavelet_forward(x.astype(np.int32), "haar", 1, integer=True)
    with pytest.raises(VaeransError, match="integer input"):
        wavelet_forward(x, "cdf53", 1, integer=True)
    with pytest.raises(VaeransError):
        wavelet_forward(np.zeros((4, 4), np.float32), "cdf53", 1)
    with pytest.raises(VaeransError):
        wavelet_forward(x, "cdf53", -1)
    with pytest.raises(VaeransError):
        wavelet_inverse(np.zeros((1, 15), np.float32), 4, 4, "cdf53", 1)
    with pytest.raises(VaeransError):
        band_layout(0, 4, 1)
    with pytest.raises(VaeransError):
        synthesis_gains(4, 4, "nope", 1)


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------
@FAST
@given(h=st.integers(1, 300), w=st.integers(1, 300), levels=st.integers(0, 9))
def test_layout_contiguous_and_covering(h: int, w: int, levels: int) -> None:
    bands = band_layout(h, w, levels)
    check_layout(bands, h * w, "layout")  # offsets contiguous from 0, total h*w
    assert bands[0].name.startswith("LL") and bands[0].offset == 0
    n_lev = bands[0].level
    assert n_lev <= levels
    expected_levels = [n_lev] + [lev for lev in range(n_lev, 0, -1) for _ in range(3)]
    names = [b.name for b in bands]
    # band order: LL, then per level (coarse to fine) HL, LH, HH, empties omitted
    assert names == [
        n
        for n in [f"LL{n_lev}"] + [f"{k}{lev}" for lev in range(n_lev, 0, -1) for k in ("HL", "LH", "HH")]
        if n in names
    ]
    assert sorted({b.level for b in bands}) == sorted(set(expected_levels))
    assert all(b.size > 0 for b in bands)
    assert len(set(names)) == len(names)
    if n_lev < levels:  # stopped early: the coarsest LL is a single coefficient
        assert (bands[0].h, bands[0].w) == (1, 1)


def test_layout_known() -> None:
    bands = band_layout(9, 6, 2)
    got = [(b.name, b.level, b.h, b.w, b.offset) for b in bands]
    assert got == [
        ("LL2", 2, 3, 2, 0),
        ("HL2", 2, 3, 1, 6),
        ("LH2", 2, 2, 2, 9),
        ("HH2", 2, 2, 1, 13),
        ("HL1", 1, 5, 3, 15),
        ("LH1", 1, 4, 3, 30),
        ("HH1", 1, 4, 3, 42),
    ]
    # a row vector only splits horizontally: no LH/HH bands
    assert [b.name for b in band_layout(1, 8, 5)] == ["LL3", "HL3", "HL2", "HL1"]
    assert [b.name for b in band_layout(5, 1, 1)] == ["LL1", "LH1"]
    assert [b.name for b in band_layout(1, 1, 3)] == ["LL0"]


# ----------------------------------------------------------------------------------------------
# Energy, gains, known responses
# ----------------------------------------------------------------------------------------------
@FAST
@given(h=sizes, w=sizes, levels=levels_st, seed=st.integers(0, 999))
def test_haar_preserves_energy(h: int, w: int, levels: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((2, h, w))
    packed = wavelet_forward(x, "haar", levels).astype(np.float64)
    e_in = float((x.astype(np.float32).astype(np.float64) ** 2).sum())
    assert abs(float((packed**2).sum()) - e_in) <= 1e-5 * e_in


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (32, 32), (33, 17), (1, 40)])
def test_haar_gains_are_one(shape: tuple[int, int]) -> None:
    gains = synthesis_gains(*shape, "haar", 4)
    assert len(gains) == len(band_layout(*shape, 4))
    np.testing.assert_allclose(gains, 1.0, atol=1e-12)


def test_cdf53_gains() -> None:
    gains = synthesis_gains(64, 64, "cdf53", 4)
    bands = band_layout(64, 64, 4)
    assert gains.dtype == np.float64 and np.all(gains > 0)
    by_name = dict(zip([b.name for b in bands], gains, strict=True))
    # 2-D gain = product of 1-D synthesis norms: low (1/2, 1, 1/2) -> sqrt(1.5) per axis,
    # high (-1/8, -1/4, 3/4, -1/4, -1/8) -> sqrt(0.71875) per axis
    assert by_name["HH1"] == pytest.approx(0.71875)
    assert by_name["HL1"] == pytest.approx(math.sqrt(1.5 * 0.71875))
    # the LL gain grows with the level (synthesis function widens)
    ll = [synthesis_gains(64, 64, "cdf53", lev)[0] for lev in range(0, 5)]
    assert ll[0] == pytest.approx(1.0)
    assert ll[1] == pytest.approx(1.5)
    assert all(b > a for a, b in itertools.pairwise(ll))
    # cached: same values on a second call, and independent copies
    again = synthesis_gains(64, 64, "cdf53", 4)
    np.testing.assert_array_equal(again, gains)
    again[0] = -1
    assert synthesis_gains(64, 64, "cdf53", 4)[0] > 0


def test_gains_predict_error_energy() -> None:
    """A unit error in band b raises the reconstruction's squared error by gain_b**2."""
    h, w, levels = 24, 20, 3
    gains = synthesis_gains(h, w, "cdf53", levels)
    for band, gain in zip(band_layout(h, w, levels), gains, strict=True):
        coeffs = np.zeros((1, h * w), np.float32)
        coeffs[0, band.offset + (band.h // 2) * band.w + band.w // 2] = 1.0
        rec = wavelet_inverse(coeffs, h, w, "cdf53", levels)
        assert float(np.sqrt((rec.astype(np.float64) ** 2).sum())) == pytest.approx(gain, rel=1e-5)


def test_cdf53_constant_and_ramp() -> None:
    const = np.full((1, 16, 12), 7.0, np.float32)
    packed = wavelet_forward(const, "cdf53", 2)
    ll = band_layout(16, 12, 2)[0]
    np.testing.assert_allclose(packed[0, : ll.size], 7.0)  # low-pass DC gain 1
    np.testing.assert_allclose(packed[0, ll.size :], 0.0, atol=1e-6)
    # 5/3 has two vanishing moments: a ramp gives zero high-pass away from the right edge
    ramp = np.broadcast_to(np.arange(16, dtype=np.float32), (1, 4, 16)).copy()
    rows = wavelet_forward(ramp, "cdf53", 1)
    hl1 = next(b for b in band_layout(4, 16, 1) if b.name == "HL1")
    hl = rows[0, hl1.offset : hl1.offset + hl1.size].reshape(hl1.h, hl1.w)
    np.testing.assert_allclose(hl[:, :-1], 0.0, atol=1e-5)


def test_integer_close_to_float() -> None:
    x = np.random.default_rng(3).integers(0, 256, (2, 33, 40)).astype(np.int32)
    fi = wavelet_forward(x, "cdf53", 3, integer=True).astype(np.float64)
    ff = wavelet_forward(x.astype(np.float32), "cdf53", 3).astype(np.float64)
    assert np.abs(fi - ff).max() <= 4.0  # only the floor roundings differ


# ----------------------------------------------------------------------------------------------
# Systems
# ----------------------------------------------------------------------------------------------
def _spawn_yuvw(world: World, arrays: list[npt.NDArray[np.float32]]) -> list[int]:
    return [world.spawn(YUVW4(ref=world.arena.copy_in(a))) for a in arrays]


@pytest.mark.parametrize("cls", [WaveletCDF53, WaveletHaar])
def test_system_round_trip_mixed_shapes(cls: type[WaveletCDF53] | type[WaveletHaar]) -> None:
    world = World(arena_bytes=1 << 22)
    rng = np.random.default_rng(5)
    shapes = [(24, 16), (24, 16), (7, 9), (24, 16), (1, 1), (130, 129)]  # last: per-entity path
    arrays = [rng.standard_normal((4, h, w)).astype(np.float32) for h, w in shapes]
    eids = _spawn_yuvw(world, arrays)
    system = cls(levels=3)
    pyrs = (world.pipe(eids) | system).outs(WaveletPyr)
    for arr, pyr in zip(arrays, pyrs, strict=True):
        _, h, w = arr.shape
        assert (pyr.height, pyr.width, pyr.wavelet, pyr.levels) == (h, w, cls.wavelet, 3)
        assert pyr.ref.shape == (4, h * w) and pyr.ref.dtype == np.dtype(np.float32).str
        assert pyr.bands == band_layout(h, w, 3)
        np.testing.assert_array_equal(world.view(pyr.ref), wavelet_forward(arr, cls.wavelet, 3))
    for e in eids:
        world.remove_component(e, YUVW4)
    recs = (world.pipe(eids) | system.inverse()).outs(YUVW4)
    for arr, rec in zip(arrays, recs, strict=True):
        np.testing.assert_allclose(world.view(rec.ref), arr, atol=1e-5)


def test_system_batch_block_path() -> None:
    """Entities whose tensors are adjacent in one arena block are transformed in one call."""
    world = World(arena_bytes=1 << 22)
    rng = np.random.default_rng(6)
    data = rng.standard_normal((5, 4, 16, 24)).astype(np.float32)
    block = world.arena.copy_in(data)
    eids = [world.spawn(YUVW4(ref=world.arena.subref(block, j))) for j in range(5)]
    pipe = world.pipe(eids) | WaveletCDF53(levels=2)
    pyrs = pipe.outs(WaveletPyr)
    for j, pyr in enumerate(pyrs):
        np.testing.assert_array_equal(world.view(pyr.ref), wavelet_forward(data[j], "cdf53", 2))
    recs = (world.pipe(eids) | WaveletCDF53(levels=2, mode="inverse")).outs(YUVW4)
    for j, rec in enumerate(recs):
        np.testing.assert_allclose(world.view(rec.ref), data[j], atol=1e-5)


def test_full_latent_chain_round_trip() -> None:
    from vaerans_ecs.components.latent import Latent4

    world = World(arena_bytes=1 << 22)
    rng = np.random.default_rng(7)
    lats = [rng.standard_normal((4, h, w)).astype(np.float32) for h, w in [(12, 20), (12, 20), (5, 3)]]
    eids = [world.spawn(Latent4(ref=world.arena.copy_in(z))) for z in lats]
    encode = [Hadamard4(), WaveletCDF53(levels=3)]
    pipe = world.pipe(eids)
    for s in encode:
        pipe = pipe | s
    pipe.run()
    for e in eids:
        world.remove_component(e, Latent4)
        world.remove_component(e, YUVW4)
    # decoder rebuilt from the recorded history through the registry, in reverse order
    decode = [system_from_config(s.get_config()).inverse() for s in reversed(world.history(eids[0]))]
    pipe = world.pipe(eids)
    for s in decode:
        pipe = pipe | s
    for z, out in zip(lats, pipe.outs(Latent4), strict=True):
        np.testing.assert_allclose(world.view(out.ref), z, atol=1e-5)


def test_system_registry_and_config() -> None:
    assert SYSTEMS.get("WaveletCDF53") is WaveletCDF53
    assert SYSTEMS.get("WaveletHaar") is WaveletHaar
    s = WaveletHaar(levels=4, mode="inverse")
    assert s.get_config() == {"id": "WaveletHaar", "levels": 4, "mode": "inverse"}
    assert system_from_config(s.get_config()) == s
    assert s.inverse() == WaveletHaar(levels=4) and s.inverse().mode is Mode.FORWARD
    assert s.inverse().inverse() == s
    assert WaveletCDF53() != WaveletHaar()
    assert s.required_components() == (WaveletPyr,) and s.produced_components() == (YUVW4,)
    with pytest.raises(ConfigError):
        WaveletCDF53(levels=-1)
    with pytest.raises(ConfigError):
        WaveletCDF53(levels=2, mode="sideways")
    with pytest.raises(ConfigError):
        system_from_config({"id": "WaveletCDF53", "level": 2})


def test_system_errors() -> None:
    world = World(arena_bytes=1 << 20)
    e = _spawn_yuvw(world, [np.zeros((4, 8, 8), np.float32)])[0]
    with pytest.raises(MissingComponentError):
        world.pipe(e) | WaveletCDF53(mode="inverse")
    (world.pipe(e) | WaveletCDF53(levels=2)).run()
    with pytest.raises(VaeransError, match="levels=2"):
        (world.pipe(e) | WaveletCDF53(levels=3, mode="inverse")).run()
    with pytest.raises(VaeransError, match="cdf53"):
        (world.pipe(e) | WaveletHaar(levels=2, mode="inverse")).run()


def test_system_inverts_integer_pyramid() -> None:
    """An int32 WaveletPyr (reversible 5/3) is inverted exactly, then stored as float32."""
    world = World(arena_bytes=1 << 20)
    x = np.random.default_rng(8).integers(-500, 500, (4, 10, 13)).astype(np.int32)
    packed = wavelet_forward(x, "cdf53", 2, integer=True)
    pyr = WaveletPyr(
        ref=world.arena.copy_in(packed), height=10, width=13, wavelet="cdf53", levels=2, bands=band_layout(10, 13, 2)
    )
    e = world.spawn(pyr)
    rec = (world.pipe(e) | WaveletCDF53(levels=2, mode="inverse")).out(YUVW4)
    np.testing.assert_array_equal(world.view(rec.ref), x.astype(np.float32))
