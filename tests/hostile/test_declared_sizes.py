"""Issue 15, item 2: work before the payload is validated is O(header), not O(declared size).

Before the fix (d1a0f55), ``synthesis_gains`` inverse-transformed a float64 impulse over the whole
declared plane per band (4096x4096: 3.4 s, +545 MiB), a pipeline without the VAE let the symbol
plane equal the image (a sub-kilobyte stream declaring 16384x16384 cost 17 s and 6.7 GiB, or a
numpy MemoryError), and the entropy decoders produced every declared symbol before noticing that
the payload could not hold them. Every stream here is a real small stream with forged sizes (v1
layout, the CRC recomputed), decoded with ``max_pixels`` raised to 2^28 (d1a0f55's default).
Bounds are generous: the fixed decoder refuses these in a few ms and a few MiB.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.fixtures.streamfuzz import varint, with_pipeline
from tests.hostile.forge import cost, forge, records, seed_v1
from vaerans_ecs import api
from vaerans_ecs.config import ArenaConfig, Config, RuntimeConfig, get_config, set_config
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.systems.wavelet import synthesis_gains

CODERS = ["rans", "rans-ctx", "range", "zlib", "lzma"]
#: The largest sizes a 2^28 max_pixels allows, square and at both extreme aspect ratios.
SIZES = pytest.mark.parametrize("size", [(16384, 16384), (1, 1 << 28), (1 << 28, 1)], ids=["square", "1xN", "Nx1"])
SECONDS, MIB = 1.0, 32.0


@pytest.fixture
def max_pixels_2_28() -> Iterator[None]:
    """max_pixels = 2^28 with a 1 MiB arena, so tracemalloc sees only the decoder's own work."""
    saved = get_config()
    set_config(Config(arena=ArenaConfig(capacity_mb=1, max_capacity_mb=1 << 14),
                      runtime=RuntimeConfig(max_pixels=1 << 28, intra_op_threads=1)))
    yield
    set_config(saved)


@pytest.mark.parametrize(("h", "w", "wavelet", "levels"), [
    (4093, 4097, "cdf53", 3), (4096, 4096, "haar", 5), (16381, 16387, "cdf53", 5), (1, (1 << 28) - 3, "cdf53", 8),
    ((1 << 28) - 5, 1, "haar", 8)])
def test_synthesis_gains_of_huge_planes_are_cheap(h: int, w: int, wavelet: str, levels: int) -> None:
    """Sizes nobody else asks for, so the cache cannot hide the cost of the first call."""
    c = cost(lambda: synthesis_gains(h, w, wavelet, levels))
    assert c.error is None, repr(c.error)
    assert c.seconds < 0.5 and c.peak_mib < 8, f"{c.seconds:.2f} s, {c.peak_mib:.0f} MiB"
    gains = synthesis_gains(h, w, wavelet, levels)
    assert gains.ndim == 1 and gains.size > levels and np.all(np.isfinite(gains)) and np.all(gains > 0)
    if wavelet == "haar":  # orthonormal: exactly 1, whatever the size
        assert np.allclose(gains, 1.0)


def test_gains_of_a_large_plane_match_a_small_one() -> None:
    """An interior basis function does not depend on the plane's size: 4096^2 gains (products of 1-D gains)
    equal 128^2 gains (2-D impulses), so the cheap path changes no quantizer step."""
    small, large = synthesis_gains(128, 128, "cdf53", 3), synthesis_gains(4096, 4096, "cdf53", 3)
    assert np.allclose(small, large, rtol=1e-9)


def _no_vae(seed: bytes, stages: tuple[str, ...], h: int, w: int) -> bytes:
    """``seed`` with only ``stages`` of its pipeline left, no fingerprint, and a symbol plane the size of the image."""
    recs = records(seed)
    out = with_pipeline(seed, [recs[s] for s in stages])
    return forge(out, height=varint(h), width=varint(w), fingerprint=b"\x00", plane_h=varint(h), plane_w=varint(w))


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("stages", [("quantizer", "coder"), ("wavelet", "quantizer", "coder"),
                                    ("hadamard", "wavelet", "quantizer", "coder")],
                         ids=["Q-C", "W-Q-C", "H-W-Q-C"])
@pytest.mark.parametrize("size", [(16384, 16384), (8192, 8192), (1, 1 << 26), (1 << 26, 1)],
                         ids=["square", "square-8192", "1xN", "Nx1"])  # 4 x 2^26 symbols: d1a0f55's largest
def test_symbol_plane_as_large_as_the_image_is_refused_at_once(
        synthetic_model: ModelSpec, max_pixels_2_28: None, coder: str, stages: tuple[str, ...],
        size: tuple[int, int]) -> None:
    """Was: 17 s and 6.7 GiB (or numpy MemoryError) for a sub-kilobyte stream: no VAE, no stride check."""
    wavelet = "cdf53" if "wavelet" in stages else "none"
    seed = seed_v1(synthetic_model.name, 16, 16, coder=coder, wavelet=wavelet)
    bomb = _no_vae(seed, stages, *size)
    assert len(bomb) < 1000
    for fn in (api.decompress, api.inspect):
        c = cost(lambda fn=fn: fn(bomb))  # type: ignore[misc]
        assert isinstance(c.error, BitstreamError), repr(c.error)
        assert c.seconds < SECONDS and c.peak_mib < MIB, f"{fn.__name__}: {c.seconds:.2f} s, {c.peak_mib:.0f} MiB"


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("wavelet", ["cdf53", "none"])
@SIZES
def test_forged_size_behind_the_vae_is_refused_before_decoding(
        synthetic_model: ModelSpec, max_pixels_2_28: None, coder: str, wavelet: str, size: tuple[int, int]) -> None:
    """Was: seconds and hundreds of MiB (the gains over the plane, then every declared symbol decoded)."""
    seed = seed_v1(synthetic_model.name, 64, 64, coder=coder, wavelet=wavelet)
    h, w = size
    bomb = forge(seed, height=varint(h), width=varint(w), plane_h=varint(-(-h // 8)), plane_w=varint(-(-w // 8)))
    assert len(bomb) < 1000
    c = cost(lambda: api.decompress(bomb))
    assert isinstance(c.error, BitstreamError), repr(c.error)
    assert c.seconds < SECONDS and c.peak_mib < MIB, f"{c.seconds:.2f} s, {c.peak_mib:.0f} MiB"
