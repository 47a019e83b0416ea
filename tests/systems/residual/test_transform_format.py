"""Transform coder internals with public names: stream layout, escapes, wavelet, colour."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.residual import transform_format as fmt
from vaerans_ecs.systems.residual.colour import RGB_TO_YUV, colour_forward, colour_inverse
from vaerans_ecs.systems.residual.transform import decode_transform, encode_transform
from vaerans_ecs.systems.residual.transform_signs import (
    N_SIGN_CONTEXTS,
    sign_bits,
    sign_contexts,
    sign_score,
    signs_from_bits,
)
from vaerans_ecs.systems.residual.transform_wavelet import WAVELETS, band_gains, dwt_forward, dwt_inverse


@settings(max_examples=40, deadline=None)
@given(
    c=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    levels=st.integers(0, 7),
    wavelet=st.sampled_from(WAVELETS),
)
def test_wavelet_perfect_reconstruction(c: int, h: int, w: int, levels: int, wavelet: str) -> None:
    x = np.random.default_rng(h * 41 + w).normal(0, 50, (c, h, w)).astype(np.float64)
    before = x.copy()
    dec = dwt_forward(x, levels, wavelet)
    assert np.array_equal(x, before)  # the input is left alone
    assert sum(b.size for t in dec.details for b in t) + dec.ll.size == x.size
    assert np.allclose(dwt_inverse(dec, wavelet), x, atol=1e-9)


def test_haar_is_orthonormal() -> None:
    x = np.random.default_rng(1).normal(0, 10, (1, 17, 23))
    dec = dwt_forward(x, 3, "haar")
    energy = sum(float(np.sum(b**2)) for t in dec.details for b in t) + float(np.sum(dec.ll**2))
    assert energy == pytest.approx(float(np.sum(x**2)), rel=1e-12)


def test_band_gains_match_impulse_responses() -> None:
    g_ll, g_det = band_gains(3)
    dec = dwt_forward(np.zeros((1, 256, 256)), 3)
    dec.details[1][2][0, 16, 16] = 1.0  # HH of level 2
    assert np.sqrt(np.sum(dwt_inverse(dec) ** 2)) == pytest.approx(g_det[1][2], rel=1e-6)
    dec = dwt_forward(np.zeros((1, 256, 256)), 3)
    dec.ll[0, 16, 16] = 1.0
    assert np.sqrt(np.sum(dwt_inverse(dec) ** 2)) == pytest.approx(g_ll, rel=1e-6)
    assert all(0.9 < g < 1.1 for row in g_det for g in row)


def test_colour_transform_is_orthonormal_and_inverts() -> None:
    assert np.allclose(RGB_TO_YUV @ RGB_TO_YUV.T, np.eye(3))
    x = np.random.default_rng(0).uniform(0, 255, (4, 5, 6)).astype(np.float32)
    y = colour_forward(x)
    assert np.array_equal(y[3], x[3])
    assert np.allclose(colour_inverse(y), x, atol=1e-3)
    assert np.sum(y.astype(np.float64) ** 2) == pytest.approx(np.sum(x.astype(np.float64) ** 2), rel=1e-5)


@given(st.lists(st.integers(0, fmt.MAX_EXCESS), max_size=50))
def test_leb128_round_trip(values: list[int]) -> None:
    v = np.array(values, dtype=np.int64)
    raw = np.frombuffer(fmt.leb128_encode(v), dtype=np.uint8)
    if v.size:
        assert np.array_equal(fmt.leb128_decode(raw, v.size), v)


@pytest.mark.parametrize(
    ("raw", "count"),
    [([0x80], 1), ([0x05], 2), ([0x85, 0x00], 1), ([0xFF, 0xFF, 0xFF, 0xFF, 0x01], 1), ([0xFF, 0xFF, 0xFF, 0x7F], 1)],
)
def test_leb128_rejects_malformed(raw: list[int], count: int) -> None:
    with pytest.raises(BitstreamError):
        fmt.leb128_decode(np.array(raw, dtype=np.uint8), count)


def _image(c: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([120 + 80 * np.sin(xx / (5 + k) + yy / 7) for k in range(c)]).astype(np.float32)


@cache
def _stream(step: float, tiles: bool) -> bytes:
    return encode_transform(_image(3, 9, 14), step, tiles=tiles)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_resealed_mutations_raise_bitstream_error_or_decode(data: st.DataObject) -> None:
    """Mutations behind a valid check value reach the deeper parsers: they must stay well-behaved."""
    c, h, w = 3, 9, 14
    stream = _stream(data.draw(st.sampled_from([0.02, 1.0, 20.0])), data.draw(st.booleans()))
    body = bytearray(stream[:-4])
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["set", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(body) - 1))
        if kind == "set":
            body[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del body[pos : pos + data.draw(st.integers(1, 8))]
        else:
            body[pos:pos] = bytes(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=4)))
        if not body:
            body = bytearray(b"\x01")
    try:
        out = decode_transform(fmt.seal(bytes(body), (c, h, w, True)), c, h, w)
    except BitstreamError:
        return
    assert out.shape == (c, h, w) and out.dtype == np.float32


def test_resealed_header_fields_are_validated() -> None:
    c, h, w = 1, 8, 8
    stream = encode_transform(_image(c, h, w), 2.0)
    body = bytearray(stream[:-4])
    for pos, value in [(0, 2), (5, 4), (5, fmt.MAX_LEVELS + 1), (6, fmt.N_WAVELETS), (7, 0), (8, 0), (11, 0)]:
        bad = bytearray(body)
        bad[pos] = value
        with pytest.raises(BitstreamError):
            decode_transform(fmt.seal(bytes(bad), (c, h, w, False)), c, h, w)
    for step in (0.0, float("nan"), 1e9):
        bad = bytearray(body)
        bad[1:5] = np.array([step], dtype="<f4").tobytes()
        with pytest.raises(BitstreamError):
            decode_transform(fmt.seal(bytes(bad), (c, h, w, False)), c, h, w)


@given(st.lists(st.tuples(st.integers(-300, 300).filter(bool), st.integers(-7, 7)), min_size=1, max_size=40))
def test_sign_bits_invert(pairs: list[tuple[int, int]]) -> None:
    q = np.array([p[0] for p in pairs], dtype=np.int64)
    score = np.array([p[1] for p in pairs], dtype=np.int32)
    bits = sign_bits(q, score)
    assert set(np.unique(bits).tolist()) <= {0, 1}
    assert np.array_equal(signs_from_bits(bits, score), np.sign(q))
    # a correct prediction costs a 0 bit
    assert not np.any(bits[(score > 0) & (q > 0)]) and not np.any(bits[(score < 0) & (q < 0)])
    ctxs = sign_contexts(score, np.abs(q))
    assert ctxs.max() < N_SIGN_CONTEXTS


def test_sign_score_reads_only_decoded_neighbours_and_other_channels() -> None:
    signs = np.zeros((6, 6), dtype=np.int8)
    signs[0::2, 0::2] = 1  # pass 0 decoded, all positive
    # HL, pass 2 at (even, odd) and (odd, even): up/down neighbours of (odd, even) are pass-0 positives
    t = sign_score(signs, 2, 0, None, None, None)
    assert t.shape == (18,) and t.min() >= 0 and t.max() > 0
    first = -np.ones((6, 6), dtype=np.int8)
    assert np.all(sign_score(np.zeros((6, 6), dtype=np.int8), 0, 2, None, first, None) < 0)


def test_resealed_tile_headers_are_validated() -> None:
    c, h, w = 1, 8, 20
    stream = encode_transform(_image(c, h, w), 2.0, tiles=True)
    body = bytearray(stream[:-4])
    assert body[0] == fmt.TILED_VERSION
    for pos, value in [(1, 3), (1, 16), (1, 4)]:  # tile side 8 / 65536 / 16 (two tiles, one coded)
        bad = bytearray(body)
        bad[pos] = value
        with pytest.raises(BitstreamError):
            decode_transform(fmt.seal(bytes(bad), (c, h, w, False)), c, h, w)
    nested = fmt.pack_tiled(7, [bytes(stream)], (c, h, w, False))
    with pytest.raises(BitstreamError):
        decode_transform(nested, c, h, w)
