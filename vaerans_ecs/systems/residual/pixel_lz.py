"""Dictionary (LZMA2) and raw paths of the pixel coder, for graphics, text and noise.

Screenshots, charts and rendered text repeat whole runs of pixels, which a context model with
static per-class tables cannot exploit; LZ77 matching can. Two bodies:

* colour bytes: one byte ``f | s << 2`` (filter ``f``: 0 none, 1 left difference, 2 up
  difference, 3 both, all modulo 256 per channel, so the decoder inverts them with cumulative
  sums; ``s`` indexes :data:`PROPS`, the LZMA2 literal settings), then a raw LZMA2 stream
  (dictionary size derived from the image size) of the filtered (H, W, C) bytes;
* palette: ``K - 1`` and ``s`` (one byte each), the K colours (C bytes each), then a raw LZMA2
  stream of the index plane, rows packed to 1, 2, 4 or 8 bits per index as the colour count
  allows (as PNG).

The encoder picks the filter and setting by compressed size (of a sample of row bands for
large images).

The raw path stores the (H, W, C) bytes as they are.
"""

from __future__ import annotations

import lzma
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.residual.pixel_passes import Reader

__all__ = ["decode_lz_colour", "decode_lz_index", "encode_lz_colour", "encode_lz_index", "index_bits"]

U8 = NDArray[np.uint8]

N_FILTERS: Final = 4
#: LZMA2 literal context settings (lc, lp, pb) the encoder chooses from: default, none, 4 bits.
PROPS: Final = ((3, 0, 2), (0, 0, 0), (4, 0, 0))
SAMPLE_BYTES: Final = 1 << 17


def _filters(raw_len: int, props: int) -> list[dict[str, Any]]:
    dict_size = 1 << 16
    while dict_size < raw_len and dict_size < 1 << 26:
        dict_size <<= 1
    lc, lp, pb = PROPS[props]
    return [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}]


def _compress(raw: bytes, props: int) -> bytes:
    return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_filters(len(raw), props))


def _sample(rows: NDArray[np.uint8]) -> bytes:
    """About SAMPLE_BYTES of whole row bands spread over the image, to compare options cheaply."""
    band = max(1, SAMPLE_BYTES // (8 * max(1, rows[0].nbytes)))
    step = max(band, rows.shape[0] // 8)
    return b"".join(rows[i : i + band].tobytes() for i in range(0, rows.shape[0], step))


def _best(options: dict[int, NDArray[np.uint8]]) -> tuple[int, int, bytes]:
    """(option key, props, compressed) of the smallest of filtered planes x LZMA2 literal settings:
    options are ranked on a sample of rows when the planes are large."""
    large = next(iter(options.values())).nbytes > 2 * SAMPLE_BYTES
    sample = (lambda a: _sample(a)) if large else (lambda a: a.tobytes())
    ranked = sorted((len(_compress(sample(a), pr)), key, pr) for key, a in options.items() for pr in range(len(PROPS)))
    key, pr = ranked[0][1], ranked[0][2]
    return key, pr, _compress(options[key].tobytes(), pr)


def _decompress(data: bytes, size: int, props: int) -> bytes:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_filters(size, props))
    try:
        out = d.decompress(data, max_length=size + 1)
        ok = len(out) == size and d.eof and not d.unused_data
    except (lzma.LZMAError, EOFError) as exc:
        raise BitstreamError(f"pixel stream: corrupted LZMA2 data ({exc})") from None
    if not ok:
        raise BitstreamError("pixel stream: LZMA2 data of the wrong length")
    return out


def _filter(img: U8, f: int) -> U8:
    x = img.astype(np.int16)
    if f & 1:
        x[:, 1:] -= img[:, :-1]
    if f & 2:
        x[1:] -= x[:-1].copy()
    out: U8 = (x & 255).astype(np.uint8)
    return out


def _unfilter(x: U8, f: int) -> U8:
    y = x.astype(np.int64)
    if f & 2:
        y = np.cumsum(y, axis=0)
    if f & 1:
        y = np.cumsum(y, axis=1)
    out: U8 = (y & 255).astype(np.uint8)
    return out


def encode_lz_colour(img: U8) -> bytes:
    """The best filter and literal setting + LZMA2 of an (H, W, C) uint8 image."""
    f, pr, data = _best({f: _filter(img, f) for f in range(N_FILTERS)})
    return bytes([f | pr << 2]) + data


def decode_lz_colour(r: Reader, height: int, width: int, channels: int) -> U8:
    head = r.take(1)[0]
    f, pr = head & 3, head >> 2
    if pr >= len(PROPS):
        raise BitstreamError("pixel stream: unknown LZMA2 setting")
    raw = _decompress(r.take(r.left), height * width * channels, pr)
    return _unfilter(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, channels), f)


def index_bits(colours: int) -> int:
    """Bits per packed index for a palette of this many colours."""
    return 1 if colours <= 2 else 2 if colours <= 4 else 4 if colours <= 16 else 8


def encode_lz_index(index: U8, colours: NDArray[np.uint8]) -> bytes:
    """Palette (K, C) + LZMA2 of the packed index plane."""
    bits = index_bits(colours.shape[0])
    h, w = index.shape
    per = 8 // bits
    padded = np.zeros((h, -(-w // per) * per), dtype=np.uint8)
    padded[:, :w] = index
    groups = padded.reshape(h, -1, per).astype(np.uint16)
    packed = np.zeros(groups.shape[:2], dtype=np.uint16)
    for i in range(per):
        packed |= groups[:, :, i] << (8 - bits * (i + 1))
    _, pr, data = _best({0: packed.astype(np.uint8)})
    return bytes([colours.shape[0] - 1, pr]) + colours.tobytes() + data


def decode_lz_index(r: Reader, height: int, width: int, channels: int) -> U8:
    k, pr = r.take(1)[0] + 1, r.take(1)[0]
    if pr >= len(PROPS):
        raise BitstreamError("pixel stream: unknown LZMA2 setting")
    colours = np.frombuffer(r.take(k * channels), dtype=np.uint8).reshape(k, channels)
    bits = index_bits(k)
    per = 8 // bits
    row = -(-width // per)
    raw = np.frombuffer(_decompress(r.take(r.left), height * row, pr), dtype=np.uint8).reshape(height, row)
    parts = [(raw >> (8 - bits * (i + 1))) & ((1 << bits) - 1) for i in range(per)]
    index = np.stack(parts, 2).reshape(height, row * per)[:, :width]
    if int(index.max(initial=0)) >= k:
        raise BitstreamError("pixel stream: colour index out of range")
    out: U8 = colours[index]
    return out
