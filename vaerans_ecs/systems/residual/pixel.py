"""Lossless and near-lossless (l-infinity bounded) pixel-domain image coder.

:func:`encode_pixels` codes an (H, W, C) uint8 or uint16 image (C = 1 gray, 2 gray+alpha, 3 RGB,
4 RGBA)
exactly (``max_error=0``) or with ``|x - x_hat| <= max_error`` on every pixel and channel
(``max_error`` = k in 1..16: prediction errors quantised with step 2k+1, closed loop). Two paths,
the encoder keeps the smaller stream:

* predictive (:mod:`.pixel_predict`): hierarchical interlaced prediction (:mod:`.pixel_passes`)
  with classified least-squares predictors, inter-channel terms and context-classified rANS;
  an optional ``base`` (a lossy decoding of the image that the decoder has too, e.g. the VAE
  reconstruction) adds the base's values to the predictors' inputs and contexts;
* palette (:mod:`.palette`, lossless, images of at most 256 colours): the colours and an index
  plane coded by the rank of each index among its known neighbours' indices;
* dictionary (:mod:`.pixel_lz`, lossless): LZMA2 of the filtered pixels or of the packed palette
  index plane, for graphics and text that repeat runs of pixels; and raw bytes (never larger).

Stream layout (the container stores H, W, C, the bit depth, max_error and a check of the base):

=========  ===================================================================================
byte 0     ``0x10 | path`` (format 1; path 0 predictive, 1 palette ranks, 2 LZMA2 of filtered
           colour bytes, 3 LZMA2 of the packed palette index plane, 4 raw bytes)
1..4       CRC-32 of (H, W, C, bit depth, max_error, base present), little-endian: a decoder
           told other sizes fails here, before any work
5..8       CRC-32 of the decoded image's bytes ((H, W, C), C order; 16-bit little-endian)
9..        the path's body; it must end exactly at the end of the stream
=========  ===================================================================================
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Collection
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError, ImageInputError, VaeransError
from vaerans_ecs.systems.residual import palette, pixel_lz
from vaerans_ecs.systems.residual.pixel_passes import Reader, Writer
from vaerans_ecs.systems.residual.pixel_predict import PixelState, decode_predictive, encode_predictive

__all__ = ["MAX_ERROR", "MAX_PIXELS", "PATHS", "decode_pixels", "encode_pixels"]

log = logging.getLogger(__name__)

FORMAT: Final = 1
PREDICTIVE: Final = 0
PALETTE: Final = 1
LZ_COLOUR: Final = 2
LZ_INDEX: Final = 3
RAW: Final = 4
N_PATHS: Final = 5
#: Path names for ``encode_pixels(paths=...)``: "lz" covers both dictionary bodies.
PATHS: Final = ("predictive", "palette", "lz", "raw")
#: The dictionary path is tried on images where at least this fraction of pixels repeat their left neighbour.
REPEAT_FRACTION: Final = 0.25
#: The largest supported ``max_error``.
MAX_ERROR: Final = 16
#: The most pixels (H * W) an image may have.
MAX_PIXELS: Final = 1 << 30
HEADER: Final = 9


def _geometry_check(height: int, width: int, channels: int, bit_depth: int, max_error: int, has_base: bool) -> bytes:
    raw = struct.pack("<IIBBBB", height, width, channels, bit_depth, max_error, int(has_base))
    return zlib.crc32(raw).to_bytes(4, "little")


def _pixels_check(img: NDArray[Any]) -> bytes:
    le = img.astype(img.dtype.newbyteorder("<"), copy=False)
    return zlib.crc32(np.ascontiguousarray(le).tobytes()).to_bytes(4, "little")


def _check_base(
    base: NDArray[np.generic] | None, shape: tuple[int, ...], dtype: type[np.generic], error: type[VaeransError]
) -> NDArray[np.int32] | None:
    if base is None:
        return None
    if not isinstance(base, np.ndarray) or base.shape != shape or base.dtype != dtype:
        what = f"{base.dtype} {base.shape}" if isinstance(base, np.ndarray) else type(base).__name__
        raise error(f"pixel coder: base must be a {np.dtype(dtype)} array of shape {shape}, got {what}")
    out: NDArray[np.int32] = np.ascontiguousarray(np.moveaxis(base, 2, 0), dtype=np.int32)
    return out


def _repeats(img: NDArray[np.uint8]) -> float:
    """Fraction of pixels equal (in every channel) to their left neighbour."""
    if img.shape[1] < 2:
        return 0.0
    eq = img[:, 1:, 0] == img[:, :-1, 0]
    for c in range(1, img.shape[2]):  # channel by channel: much cheaper than all(axis=2)
        eq &= img[:, 1:, c] == img[:, :-1, c]
    return float(eq.mean())


def encode_pixels(
    img: NDArray[Any], *, max_error: int = 0, base: NDArray[np.generic] | None = None, paths: Collection[str] = PATHS
) -> bytes:
    """Code an (H, W, C) uint8 or uint16 image losslessly (``max_error=0``) or within ``max_error``.

    ``base`` (same shape and dtype) is a prediction of the image that the decoder gets too.
    ``paths`` names the paths the encoder may choose from (a subset of :data:`PATHS`; the
    palette and LZ paths apply only where they can, and to 8-bit images only); the smallest
    stream wins. uint16 images are coded at 16 bits (decode them with ``bit_depth=16``).
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3 or not 1 <= img.shape[2] <= 4:
        what = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ImageInputError(f"pixel coder: expected an (H, W, C) array with C in 1..4, got {what}")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageInputError(f"pixel coder: only uint8 and uint16 images are supported (got {img.dtype})")
    depth = 8 * img.dtype.itemsize
    img = np.ascontiguousarray(img, dtype=img.dtype.newbyteorder("="))
    height, width, channels = img.shape
    if height < 1 or width < 1 or height * width > MAX_PIXELS:
        raise ImageInputError(f"pixel coder: image size {height}x{width} not supported")
    if isinstance(max_error, bool) or not isinstance(max_error, int | np.integer) or not 0 <= max_error <= MAX_ERROR:
        raise VaeransError(f"pixel coder: max_error must be an integer in 0..{MAX_ERROR}, got {max_error!r}")
    max_error = int(max_error)
    b = _check_base(base, img.shape, img.dtype.type, VaeransError)
    unknown = set(paths) - set(PATHS)
    if unknown or not paths:
        raise VaeransError(f"pixel coder: paths must be a non-empty subset of {PATHS}, got {sorted(paths)}")
    head = bytes([FORMAT << 4 | PREDICTIVE]) + _geometry_check(height, width, channels, depth, max_error, b is not None)
    st = PixelState(
        np.zeros((channels, height, width), np.int32),
        np.zeros((channels, height, width), np.int32),
        b,
        (1 << depth) - 1,
        max_error,
    )
    best = b""
    if "predictive" in paths:
        w = Writer()
        encode_predictive(img, st, w)
        rec = np.ascontiguousarray(np.moveaxis(st.recon, 0, 2).astype(img.dtype))
        best = head + _pixels_check(rec) + bytes(w.buf)
    exact = _pixels_check(img)
    options: list[tuple[int, Callable[[], bytes]]] = []
    if "raw" in paths:
        options.append((RAW, img.astype(img.dtype.newbyteorder("<"), copy=False).tobytes))
    pal = palette.build_palette(img) if {"palette", "lz"} & set(paths) and depth == 8 else None
    if pal is not None:
        colours, index = pal
        if "palette" in paths:
            options.append((PALETTE, lambda: palette.encode_palette(index, colours)))
        if "lz" in paths:
            options.append((LZ_INDEX, lambda: pixel_lz.encode_lz_index(index, colours)))
    if "lz" in paths and depth == 8 and (pal is not None or _repeats(img) >= REPEAT_FRACTION):
        options.append((LZ_COLOUR, lambda: pixel_lz.encode_lz_colour(img)))
    for path, make in options:
        body = make()
        if not best or len(body) + HEADER < len(best):
            best = bytes([FORMAT << 4 | path]) + head[1:] + exact + body
    if not best:  # only paths that do not apply to this image were allowed
        raise VaeransError(f"pixel coder: none of the paths {sorted(paths)} applies to this image")
    log.debug(
        "pixel coder: %dx%dx%d max_error=%d -> %d bytes (path %d)",
        height,
        width,
        channels,
        max_error,
        len(best),
        best[0] & 15,
    )
    return best


def decode_pixels(
    data: bytes,
    height: int,
    width: int,
    channels: int,
    *,
    bit_depth: int = 8,
    max_error: int = 0,
    base: NDArray[np.generic] | None = None,
) -> NDArray[Any]:
    """Decode what :func:`encode_pixels` wrote for an image of the given geometry.

    Malformed data, or a geometry, bit depth, ``max_error`` or base presence other than the
    encoder's, raise BitstreamError (cheap checks first; allocations are O(H * W * C)).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BitstreamError(f"pixel stream must be bytes, got {type(data).__name__}")
    data = bytes(data)
    for name, v in (
        ("height", height),
        ("width", width),
        ("channels", channels),
        ("bit_depth", bit_depth),
        ("max_error", max_error),
    ):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise BitstreamError(f"pixel stream: {name} must be an integer, got {v!r}")
    height, width, channels, max_error = int(height), int(width), int(channels), int(max_error)
    if height < 1 or width < 1 or height * width > MAX_PIXELS or not 1 <= channels <= 4:
        raise BitstreamError(f"pixel stream: unsupported geometry {height}x{width}x{channels}")
    if int(bit_depth) not in (8, 16):
        raise BitstreamError(f"pixel stream: bit depth {bit_depth} is not supported (8 or 16)")
    depth = int(bit_depth)
    dtype = np.uint8 if depth == 8 else np.uint16
    if not 0 <= max_error <= MAX_ERROR:
        raise BitstreamError(f"pixel stream: max_error {max_error} out of range 0..{MAX_ERROR}")
    shape = (height, width, channels)
    b = _check_base(base, shape, dtype, BitstreamError)
    if len(data) < HEADER or data[0] >> 4 != FORMAT or data[0] & 15 >= N_PATHS:
        raise BitstreamError("pixel stream: too short or unknown format")
    if data[1:5] != _geometry_check(height, width, channels, depth, max_error, b is not None):
        raise BitstreamError("pixel stream: geometry, max_error or base presence differ from the encoder's")
    r = Reader(data, HEADER)
    img: NDArray[Any]
    try:
        path = data[0] & 15
        if depth != 8 and path not in (PREDICTIVE, RAW):
            raise BitstreamError("pixel stream: palette and LZ paths are for 8-bit images only")
        if path == PALETTE:
            img = palette.decode_palette(r, height, width, channels)
        elif path == LZ_COLOUR:
            img = pixel_lz.decode_lz_colour(r, height, width, channels)
        elif path == LZ_INDEX:
            img = pixel_lz.decode_lz_index(r, height, width, channels)
        elif path == RAW:
            raw = r.take(height * width * channels * depth // 8)
            img = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
        else:
            st = PixelState(
                np.zeros((channels, height, width), np.int32),
                np.zeros((channels, height, width), np.int32),
                b,
                (1 << depth) - 1,
                max_error,
            )
            decode_predictive(st, r)
            img = np.ascontiguousarray(np.moveaxis(st.recon, 0, 2).astype(dtype))
    except BitstreamError:
        raise
    except (ValueError, IndexError, OverflowError, KeyError, MemoryError) as exc:  # a safety net
        raise BitstreamError(f"pixel stream: corrupted ({type(exc).__name__}: {exc})") from None
    if r.left:
        raise BitstreamError("pixel stream: trailing data")
    if data[5:9] != _pixels_check(img):
        raise BitstreamError("pixel stream: check value mismatch (corrupted data or a different base)")
    return img
