"""The 16-bit PNG writer, checked by independent readers (libpng through imagecodecs, and Pillow)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.imaging.pngfiles import ramp16
from vaerans_ecs.errors import ImageInputError
from vaerans_ecs.imaging.png import encode_png16


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        out.append((kind, body))
        pos += 12 + length
    return out


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 4), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.booleans())
def test_libpng_reads_what_we_write(channels: int, h: int, w: int, seed: int, smooth: bool) -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    rng = np.random.default_rng(seed)
    if smooth:  # favours the Sub/Up/Average/Paeth filters
        px = np.cumsum(rng.integers(0, 300, (h, w, channels)), axis=1).astype(np.uint16)
    else:
        px = rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)
    decoded = imagecodecs.png_decode(encode_png16(px))
    np.testing.assert_array_equal(decoded.reshape(px.shape), px)


def test_every_value_and_the_filters_used() -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    for channels in (1, 2, 3, 4):
        px = ramp16(channels)
        data = encode_png16(px)
        np.testing.assert_array_equal(imagecodecs.png_decode(data).reshape(px.shape), px)
    y, x = np.mgrid[0:64, 0:64]
    data = encode_png16(np.stack([x * 1000, y * 1000, (x * y) % 65536], axis=2).astype(np.uint16))
    raw = zlib.decompress(b"".join(body for kind, body in _chunks(data) if kind == b"IDAT"))
    filters = set(np.frombuffer(raw, np.uint8).reshape(64, -1)[:, 0].tolist())
    assert filters <= {0, 1, 2, 3, 4} and len(filters) >= 2  # adaptive: more than one filter chosen


def test_metadata_chunks_and_many_idats() -> None:
    px = np.random.default_rng(0).integers(0, 65536, (400, 400, 4), dtype=np.uint16)  # ~1.3 MB deflated
    icc = b"\x00" * 16 + b"RGB " + b"\x01" * 200
    exif = b"MM\x00*\x00\x00\x00\x08\x00\x00"
    data = encode_png16(px, icc=icc, exif=exif)
    kinds = [kind for kind, _ in _chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and kinds.count(b"IDAT") >= 2
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT") and kinds.index(b"eXIf") < kinds.index(b"IDAT")
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.info["icc_profile"] == icc and img.info["exif"].endswith(exif)
    gray = encode_png16(px[:, :, :1])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(gray))), px[:, :, 0])  # Pillow reads I;16


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 5), np.uint16), np.zeros((2, 2, 3), np.uint8),
                                 np.zeros((2, 2), np.uint16), np.zeros((0, 2, 3), np.uint16)])
def test_refuses_what_it_cannot_write(bad: np.ndarray) -> None:
    with pytest.raises(ImageInputError):
        encode_png16(bad)
