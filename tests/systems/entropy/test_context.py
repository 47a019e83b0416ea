"""The context-adaptive coder ``"rans-ctx"``: class maps, layout round trips, rate, robustness."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.entropy import Layout, get_coder
from vaerans_ecs.systems.entropy.context import N_CLASSES, ContextModel, box3, magnitude
from vaerans_ecs.systems.wavelet import band_layout

FAST = settings(derandomize=True, deadline=None, max_examples=30)
CTX = get_coder("rans-ctx")


def _correlated(channels: int, h: int, w: int, levels: int, scale: float, seed: int) -> tuple[Layout, list[np.ndarray]]:
    """Laplacian symbols whose scale follows one smooth random field shared by every band and
    channel, as in a VAE latent's wavelet bands (edges show everywhere at once)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.2, (h // 8 + 2, w // 8 + 2))
    field = np.exp(np.repeat(np.repeat(coarse, 8, 0), 8, 1)[:h, :w])
    layout = Layout(channels, band_layout(h, w, levels))
    bands = []
    for c in range(channels):
        for b in layout.bands:
            f = 2**b.level
            local = field[::f, ::f][: b.h, : b.w]
            local = np.pad(local, ((0, b.h - local.shape[0]), (0, b.w - local.shape[1])), mode="edge")
            s = scale * local * (0.5 if c else 1.0) * (4.0 if b.name.startswith("LL") else 1.0)
            x = np.rint(rng.laplace(0.0, 1.0, (b.h, b.w)) * s) + 128
            bands.append(np.clip(x, 0, 255).astype(np.uint8).ravel())
    return layout, bands


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.dtype == np.uint8 and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------------------- class maps


def test_box3_matches_a_naive_sum() -> None:
    m = np.random.default_rng(0).integers(0, 9, (5, 7)).astype(np.int64)
    p = np.pad(m, 1, mode="edge")
    naive = np.array([[p[y : y + 3, x : x + 3].sum() for x in range(7)] for y in range(5)])
    np.testing.assert_array_equal(box3(m), naive)
    assert box3(np.array([[4]], dtype=np.int64)).tolist() == [[36]]


def test_magnitude_is_distance_to_the_mode() -> None:
    sym = np.array([128, 128, 130, 125, 128, 0], dtype=np.uint8)
    assert magnitude(sym, 2, 3).tolist() == [[0, 0, 2], [3, 0, 128]]


def test_classes_follow_the_documented_formula() -> None:
    bands = band_layout(8, 8, 1)  # LL1, HL1, LH1, HH1: 4x4 each
    model = ContextModel(bands)
    hl = next(i for i, b in enumerate(bands) if b.name == "HL1")
    lh = next(i for i, b in enumerate(bands) if b.name == "LH1")
    spike = np.full(16, 128, dtype=np.uint8)
    spike[5] = 140  # (1, 1), magnitude 12
    quiet = np.full(16, 128, dtype=np.uint8)
    assert model.classes(0, 0) is None  # LL: one group
    assert model.classes(0, hl) is None  # nothing known yet: a single class, nothing to split
    for i in range(len(bands)):
        model.record(0, i, spike if i == hl else quiet)
    # channel 1, HL1: 2 x the 3x3 sum of channel 0's HL1 = 24 around (1, 1) -> class 3 (14 <= 24 < 27)
    expected = np.zeros((4, 4), dtype=np.intp)
    expected[0:3, 0:3] = 3
    np.testing.assert_array_equal(model.classes(1, hl).reshape(4, 4), expected)
    # channel 0, LH1: its sibling HL1 counts once: 12 -> class 2 (7 <= 12 < 14)
    np.testing.assert_array_equal(model.classes(0, lh).reshape(4, 4), np.where(expected, 2, 0))


def test_parent_context_reaches_the_finer_level() -> None:
    bands = band_layout(16, 16, 2)  # LL2, HL2, LH2, HH2 (4x4), HL1, LH1, HH1 (8x8)
    model = ContextModel(bands)
    hl2 = next(i for i, b in enumerate(bands) if b.name == "HL2")
    hl1 = next(i for i, b in enumerate(bands) if b.name == "HL1")
    loud = np.full(16, 128, dtype=np.uint8)
    loud[0] = 255  # parent (0, 0): magnitude 127, 3x3 sum 4 * 127 at (0, 0) with edge replication
    for i in range(hl1):
        model.record(0, i, loud if i == hl2 else np.full(bands[i].size, 128, dtype=np.uint8))
    cls = model.classes(0, hl1).reshape(8, 8)
    assert cls[:2, :2].min() == N_CLASSES - 1  # 508 >= 108
    assert cls[4:, 4:].max() == 0  # far from the parent's loud corner


# ----------------------------------------------------------------------------- coder


@FAST
@given(
    channels=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    levels=st.integers(0, 3),
    scale=st.sampled_from([0.0, 0.3, 1.0, 4.0, 30.0]),
    seed=st.integers(0, 1000),
)
def test_layout_round_trip(channels: int, h: int, w: int, levels: int, scale: float, seed: int) -> None:
    levels = min(levels, max(0, min(h, w).bit_length() - 1))
    layout, bands = _correlated(channels, h, w, levels, scale, seed)
    data = CTX.encode_layout(bands, layout)
    assert _same(CTX.decode_layout(data, layout), bands)


def test_context_saves_bits_where_activity_is_shared() -> None:
    layout, bands = _correlated(4, 192, 128, 3, 1.0, seed=1)
    ctx = len(CTX.encode_layout(bands, layout))
    plain = len(get_coder("rans").encode(bands))
    assert ctx < 0.93 * plain, (ctx, plain)


def test_context_costs_little_without_shared_activity() -> None:
    rng = np.random.default_rng(2)
    layout = Layout(4, band_layout(96, 64, 3))
    bands = [np.clip(np.rint(rng.laplace(0, 2.0, n)) + 128, 0, 255).astype(np.uint8) for n in layout.sizes]
    ctx = len(CTX.encode_layout(bands, layout))
    plain = len(get_coder("rans").encode(bands))
    assert ctx <= 1.03 * plain + 64, (ctx, plain)


#: SHA-256 prefix of a fixed layout's payload: the format of "rans-ctx" (class bounds, weights,
#: group order) must not drift; a change here breaks every stream written so far.
FROZEN_DIGEST = "5049b2ec3eb9e5334595fb52e49dd953"


def test_payload_format_frozen() -> None:
    layout, bands = _correlated(4, 48, 40, 3, 2.0, seed=5)
    digest = hashlib.sha256(CTX.encode_layout(bands, layout)).hexdigest()[:32]
    assert digest == FROZEN_DIGEST


def test_every_corruption_and_truncation_is_caught() -> None:
    layout, bands = _correlated(2, 24, 16, 2, 1.0, seed=3)
    data = CTX.encode_layout(bands, layout)
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            try:
                out = CTX.decode_layout(bytes(bad), layout)
            except BitstreamError:
                continue
            assert not _same(out, bands), f"byte {i} mask {mask:#x} went unnoticed"
            pytest.fail(f"byte {i} mask {mask:#x} decoded without an error")
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            CTX.decode_layout(data[:cut], layout)


def test_wrong_layout_is_refused() -> None:
    layout, bands = _correlated(2, 24, 16, 2, 1.0, seed=4)
    data = CTX.encode_layout(bands, layout)
    for other in (Layout(2, band_layout(16, 24, 2)), Layout(1, layout.bands), Layout(2, band_layout(24, 16, 1))):
        with pytest.raises(BitstreamError):
            CTX.decode_layout(data, other)
    with pytest.raises(VaeransError):
        CTX.encode_layout(bands[:-1], layout)


@FAST
@given(garbage=st.binary(max_size=80))
def test_random_garbage_raises_or_decodes(garbage: bytes) -> None:
    layout = Layout(2, band_layout(12, 8, 2))
    try:
        out = CTX.decode_layout(garbage, layout)
    except BitstreamError:
        return
    assert [o.size for o in out] == layout.sizes
