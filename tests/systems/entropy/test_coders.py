"""Entropy coders: registry, round trips, rate vs the empirical-entropy bound, frozen output, robustness."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.entropy.helpers import (
    ALL,
    CHECKED_CODERS,
    FAST,
    KINDS,
    SLACK_BYTES,
    TABLE_CODERS,
    band,
    band_specs,
    laplacian_layout,
    make,
    same,
)
from vaerans_ecs.errors import BitstreamError, RegistryError, VaeransError
from vaerans_ecs.systems.entropy import (
    CODERS,
    EntropyCoder,
    coder_names,
    empirical_entropy_bound_bytes,
    get_coder,
    register_coder,
)

# ----------------------------------------------------------------------------- registry


def test_registry_names_and_unknown() -> None:
    assert set(ALL) <= set(coder_names())
    for name in ALL:
        coder = get_coder(name)
        assert isinstance(coder, EntropyCoder) and coder.name == name
    with pytest.raises(RegistryError, match="rans"):
        get_coder("huffman")


def test_register_custom_coder() -> None:
    @register_coder
    class Raw(EntropyCoder):
        name = "test-raw"

        def encode(self, bands: Sequence[np.ndarray]) -> bytes:
            return b""

        def decode(self, data: bytes, sizes: Sequence[int]) -> list[np.ndarray]:
            return []

    try:
        assert "test-raw" in coder_names()
        assert isinstance(get_coder("test-raw"), Raw)
    finally:
        CODERS.remove("test-raw")


# ----------------------------------------------------------------------------- round trips


@FAST
@given(specs=band_specs)
def test_round_trip_all_coders(specs: list[tuple[str, int, int]]) -> None:
    bands = make(specs)
    sizes = [b.size for b in bands]
    for name in ALL:
        coder = get_coder(name)
        data = coder.encode(bands)
        assert isinstance(data, bytes)
        assert same(coder.decode(data, sizes), bands), name


def test_edge_cases() -> None:
    coder = get_coder("rans")
    empty = np.empty(0, np.uint8)
    assert coder.encode([]) == b"" and coder.decode(b"", []) == []
    assert coder.encode([empty, empty]) == b""
    assert same(coder.decode(b"", [0, 0]), [empty, empty])
    const = [np.full(6144, 128, np.uint8) for _ in range(40)]
    assert len(coder.encode(const)) <= 16  # 40 constant bands: a few bits each
    one = [np.array([7], np.uint8)]
    assert same(coder.decode(coder.encode(one), [1]), one)
    # views / non-contiguous inputs are accepted
    base = np.arange(200, dtype=np.uint8)
    bands = [base[::2], base[50:60]]
    assert same(coder.decode(coder.encode(bands), [100, 10]), [b.copy() for b in bands])


def test_rejects_bad_inputs() -> None:
    coder = get_coder("rans")
    with pytest.raises(VaeransError):
        coder.encode([np.zeros(4, np.int16)])
    with pytest.raises(VaeransError):
        coder.encode([np.zeros((2, 2), np.uint8)])
    with pytest.raises(VaeransError):
        coder.encode([[1, 2, 3]])  # type: ignore[list-item]
    for sizes in ([-1], [1.5], ["x"], [1 << 40]):
        with pytest.raises(BitstreamError):
            coder.decode(b"\x01", sizes)  # type: ignore[arg-type]


def test_deterministic() -> None:
    bands = make([("lap", 700, 1), ("heavy", 700, 2), ("const", 5, 3), ("lap_wide", 100, 4)])
    for name in ALL:
        coder = get_coder(name)
        assert coder.encode(bands) == coder.encode([b.copy() for b in bands]) == get_coder(name).encode(bands)


# ----------------------------------------------------------------------------- rate


@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0, 10.0, 30.0])
def test_realistic_layout_within_bound(stride: int, scale: float) -> None:
    bands = laplacian_layout(scale, stride)
    bound = empirical_entropy_bound_bytes(bands)
    for name in TABLE_CODERS:
        data = get_coder(name).encode(bands)
        assert len(data) <= 1.08 * bound + SLACK_BYTES, (name, len(data), bound)


@pytest.mark.parametrize("n", [1536, 6144])
@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0, 3.0, 10.0])
def test_single_laplacian_band_within_bound(n: int, scale: float) -> None:
    x = np.clip(np.rint(np.random.default_rng(n).laplace(0, scale, n)) + 100, 0, 255).astype(np.uint8)
    bound = empirical_entropy_bound_bytes([x])
    assert len(get_coder("rans").encode([x])) <= 1.08 * bound + SLACK_BYTES


def test_bound_helper() -> None:
    assert empirical_entropy_bound_bytes([np.zeros(10, np.uint8), np.empty(0, np.uint8)]) == 0.0
    x = np.array([0, 1] * 8, dtype=np.uint8)
    assert empirical_entropy_bound_bytes([x]) == pytest.approx(2.0)


# ----------------------------------------------------------------------------- frozen output


#: SHA-256 prefixes of the rans + range payloads of fixed inputs, recorded with the encoder as it
#: was before its model choice and planning were optimised: the optimised paths must choose the
#: very same models and write byte-identical streams (a change that moves a choice shows here).
FROZEN_ENCODER_DIGESTS = {
    "layout0.5": "e7543fa08887156e5469dec0e7761e22",
    "layout3.0": "3d4cffd215876f735dd3df3819085dca",
    "layout30.0": "d307cd06fbd7a535e958a5589c018af4",
    "kinds": "151fad7940505e82a85e43643ddce4f9",
}


def _frozen_case(name: str) -> list[np.ndarray]:
    if name == "kinds":
        specs = [(k, n) for k in KINDS for n in (1, 40, 700, 5000)]
        return [band(k, n, i) for i, (k, n) in enumerate(specs)]
    return laplacian_layout(float(name.removeprefix("layout")), 4, seed=7)


@pytest.mark.parametrize("name", sorted(FROZEN_ENCODER_DIGESTS))
def test_encoder_output_frozen(name: str) -> None:
    bands = _frozen_case(name)
    digest = hashlib.sha256()
    for coder in TABLE_CODERS:
        digest.update(get_coder(coder).encode(bands))
    assert digest.hexdigest()[:32] == FROZEN_ENCODER_DIGESTS[name]


# ----------------------------------------------------------------------------- robustness


def _small_payload_bands() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    table = rng.choice(np.array([3, 4, 9, 200], dtype=np.uint8), 30)
    return [band("lap", 40, 1), np.full(9, 5, np.uint8), table, band("lap_small", 25, 2)]


def _decode_ok_or_bitstream_error(decode: Callable[[bytes], list[np.ndarray]], data: bytes, sizes: list[int]) -> None:
    try:
        out = decode(data)
    except BitstreamError:
        return
    assert [o.size for o in out] == sizes and all(o.dtype == np.uint8 for o in out)


@pytest.mark.parametrize("name", ALL)
def test_every_corruption_truncation_extension(name: str) -> None:
    bands = _small_payload_bands()
    sizes = [b.size for b in bands]
    coder = get_coder(name)
    data = coder.encode(bands)
    assert same(coder.decode(data, sizes), bands)

    def dec(d: bytes) -> list[np.ndarray]:
        return coder.decode(d, sizes)

    detected = 0
    trials = 0
    for i in range(len(data)):
        for mask in (0x01, 0x10, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            _decode_ok_or_bitstream_error(dec, bytes(bad), sizes)
            trials += 1
            try:
                detected += not same(dec(bytes(bad)), bands)
            except BitstreamError:
                detected += 1
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            dec(data[:cut])
    for extra in (b"\0", b"\x01", b"\0\0\0\0", b"\xff" * 5):
        _decode_ok_or_bitstream_error(dec, data + extra, sizes)
        _decode_ok_or_bitstream_error(dec, extra + data, sizes)
    # wrong sizes are noticed by the payload itself (check value over the band sizes)
    for wrong in (sizes[:-1], [*sizes, 3], [sizes[0] + 1, *sizes[1:]], sizes[::-1]):
        with pytest.raises(BitstreamError):
            coder.decode(data, wrong)
    if name in CHECKED_CODERS:
        assert detected == trials  # every single-byte corruption is caught


@FAST
@given(garbage=st.binary(max_size=64), sizes=st.lists(st.integers(0, 300), max_size=5))
def test_random_garbage(garbage: bytes, sizes: list[int]) -> None:
    for name in ALL:
        coder = get_coder(name)

        def dec(d: bytes, c: EntropyCoder = coder) -> list[np.ndarray]:
            return c.decode(d, sizes)

        _decode_ok_or_bitstream_error(dec, garbage, sizes)


def test_huge_sizes_refused_before_allocating() -> None:
    for name in ALL:
        with pytest.raises(BitstreamError):
            get_coder(name).decode(b"\x01\x02\x03\x04", [1 << 29, 1 << 29, 1 << 29])
