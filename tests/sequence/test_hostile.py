"""Forged and corrupted sequence streams: only VaeransError escapes, sizes are checked first."""

from __future__ import annotations

import contextlib
import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sequence.conftest import moving_frames
from tests.sequence.mutate import KINDS, join, mutate, refit_frame, split
from vaerans_ecs.config import ArenaConfig, Config, RuntimeConfig
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.sequence import compress_sequence, decompress_frame, decompress_sequence, inspect_sequence
from vaerans_ecs.sequence.format import Header, Mode, pack_header, pack_index, section_code

CONFIG = Config(runtime=RuntimeConfig(max_pixels=64 * 64), arena=ArenaConfig(capacity_mb=4, max_capacity_mb=64))


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    frames = moving_frames(5, 24, 32, step=(1, 1), seed=11)
    return [compress_sequence(frames, quality=50, gop=3), compress_sequence(frames[:3], lossless=True)]


def decode_all(data: bytes) -> None:
    """Every public reading path; each may only raise VaeransError."""
    for call in (lambda: list(decompress_sequence(data, config=CONFIG)),
                 lambda: inspect_sequence(data, config=CONFIG),
                 lambda: decompress_frame(data, 4, config=CONFIG),
                 lambda: decompress_frame(data, 1, config=CONFIG)):
        with contextlib.suppress(VaeransError):
            call()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1 << 30), kind=st.sampled_from(KINDS), which=st.integers(0, 1))
def test_fuzzed_streams_raise_only_vaerans_errors(seeds: list[bytes], seed: int, kind: str, which: int) -> None:
    _, data = mutate(seeds[which], random.Random(seed), kind)
    decode_all(data)


def test_every_raw_corruption_is_detected(seeds: list[bytes]) -> None:
    data = seeds[0]
    rng = random.Random(1)
    for pos in rng.sample(range(len(data)), 40):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(VaeransError):
            list(decompress_sequence(bytes(bad), config=CONFIG))
    for cut in range(0, len(data), max(1, len(data) // 25)):
        with pytest.raises(VaeransError):
            list(decompress_sequence(data[:cut], config=CONFIG))


def test_a_corrupted_frame_is_refused_before_it_is_decoded(seeds: list[bytes]) -> None:
    sections = split(seeds[0])
    frame = next(i for i, (c, _) in enumerate(sections) if c == section_code("frame"))
    body = bytearray(sections[frame + 1][1])
    body[-3] ^= 0xFF  # in frame 1's payload; its own CRC no longer matches
    sections[frame + 1] = (sections[frame + 1][0], bytes(body))
    frames = decompress_sequence(join(sections), config=CONFIG)
    next(frames)  # frame 0 is intact
    with pytest.raises(BitstreamError, match=r"frame \d+: checksum"):
        next(frames)


def _with_header(data: bytes, header: Header) -> bytes:
    sections = split(data)
    sections[0] = (sections[0][0], pack_header(header))
    return join(sections)


def test_declared_sizes_are_checked_before_anything_is_allocated(seeds: list[bytes]) -> None:
    with pytest.raises(BitstreamError, match="max_pixels"):
        list(decompress_sequence(_with_header(seeds[0], Header(100_000, 100_000)), config=CONFIG))
    with pytest.raises(BitstreamError, match="empty"):
        inspect_sequence(_with_header(seeds[0], Header(0, 32)), config=CONFIG)
    with pytest.raises(BitstreamError, match="max_error"):
        inspect_sequence(_with_header(seeds[0], Header(24, 32, mode=Mode.LOSSY, max_error=3)), config=CONFIG)
    # an index claiming millions of frames in a few bytes
    sections = split(seeds[0])
    at = next(i for i, (c, _) in enumerate(sections) if c == section_code("frame-index"))
    sections[at] = (sections[at][0], b"\xff\xff\xff\x07" + sections[at][1][1:])
    with pytest.raises(BitstreamError):
        decompress_frame(join(sections), 2, config=CONFIG)
    # entries pointing outside the stream
    sections = split(seeds[0])
    sections[at] = (sections[at][0], pack_index(20, [(1 << 40, True, False, k) for k in range(5)]))
    with pytest.raises(BitstreamError):
        decompress_frame(join(sections), 2, config=CONFIG)


def test_a_lossy_residual_in_a_lossless_sequence_is_refused(seeds: list[bytes]) -> None:
    lossy, lossless = split(seeds[0]), split(seeds[1])
    lossless[1] = lossy[1]  # the lossy pipeline (TransformResidual) under a lossless header
    with pytest.raises(BitstreamError, match="max_error"):
        list(decompress_sequence(join(lossless), config=CONFIG))


def test_inter_frame_without_keyframe_and_misnumbered_frames(seeds: list[bytes]) -> None:
    sections = split(seeds[0])
    frames = [i for i, (c, _) in enumerate(sections) if c == section_code("frame")]
    first = sections[frames[0]]
    sections[frames[0]] = (first[0], refit_frame(first[1], key=False, image=False))
    with pytest.raises(BitstreamError):
        list(decompress_sequence(join(sections), config=CONFIG))
    sections = split(seeds[0])
    del sections[frames[1]]
    with pytest.raises(BitstreamError, match=r"numbered|missing|out of order|previous field"):
        list(decompress_sequence(join(sections), config=CONFIG))


def test_vectors_beyond_the_declared_reach_are_refused() -> None:
    from vaerans_ecs.systems.motion.vectors import decode_vectors, encode_vectors

    mv = np.zeros((3, 4, 2), dtype=np.int32)
    mv[1, 2] = (40, -3)
    data = encode_vectors(mv)
    assert np.array_equal(decode_vectors(data, 3, 4, 40), mv)
    with pytest.raises(BitstreamError, match="range"):
        decode_vectors(data, 3, 4, 39)
    with pytest.raises(BitstreamError):
        decode_vectors(data, 4, 4, 40)


def test_unknown_sections(seeds: list[bytes]) -> None:
    sections = split(seeds[0])
    sections.insert(2, (0x9E, b"future ancillary data"))
    assert len(list(decompress_sequence(join(sections), config=CONFIG))) == 5
    sections[2] = (0x1E, b"future critical data")
    with pytest.raises(BitstreamError, match="0x1e"):
        list(decompress_sequence(join(sections), config=CONFIG))
    assert struct.unpack("<I", seeds[0][-4:])  # the fixture itself is a complete stream
