"""Bitstream v1: the container that makes a compressed image self-describing.

Layout (all integers are LEB128 varints unless noted; spec and compatibility promise in
``docs/bitstream.md``)::

    magic      4 bytes  b"\\x89VAE"
    version    1 byte   1
    flags      1 byte   0 (reserved; nonzero is refused)
    height, width       source image size in pixels
    pipeline            n_systems (1 byte), then per system: code (0 = name string follows),
                        then its stream fields as tagged values
    fingerprint         length byte + bytes of the decoder fingerprint (0 when no model)
    plane               channels, h, w of the quantized symbol planes
    quant params        length + bytes (format owned by the quantizer)
    payload             length + bytes (format owned by the entropy coder)
    crc32      4 bytes  little-endian CRC-32 of everything before it

The reader validates every length and declared size before allocating, checks the CRC before
parsing, and raises :class:`BitstreamError` for any malformed input.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vaerans_ecs.core.system import SYSTEMS, System
from vaerans_ecs.errors import BitstreamError, VaeransError

__all__ = [
    "MAGIC",
    "VERSION",
    "ByteReader",
    "ByteWriter",
    "StreamHeader",
    "accept",
    "pack_stream",
    "stream_code",
    "unpack_stream",
]

MAGIC = b"\x89VAE"
VERSION = 1
_MAX_SYSTEMS = 32
_MAX_STRING = 256

#: Stable one-byte codes of the built-in systems (append only: old streams must stay readable).
STREAM_CODES: dict[str, int] = {}


def stream_code(name: str, code: int) -> None:
    """Give system ``name`` the stream code ``code`` (1..127); codes are never reused."""
    if not 1 <= code <= 127:
        raise VaeransError(f"stream codes are 1..127, got {code}")
    for other, c in STREAM_CODES.items():
        if c == code and other != name:
            raise VaeransError(f"stream code {code} already belongs to {other!r}")
    STREAM_CODES[name] = code


def accept(prefix: bytes) -> bool:
    """True when ``prefix`` starts like a vaerans stream (for Pillow-style format sniffing)."""
    return prefix[:4] == MAGIC


class ByteWriter:
    """Append-only byte buffer with varint, string and tagged-value helpers."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, value: int) -> None:
        self.buf.append(value & 0xFF)

    def varint(self, value: int) -> None:
        if value < 0:
            raise VaeransError(f"varint cannot encode negative value {value}")
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                self.buf.append(byte | 0x80)
            else:
                self.buf.append(byte)
                return

    def blob(self, data: bytes) -> None:
        self.varint(len(data))
        self.buf += data

    def string(self, text: str) -> None:
        raw = text.encode()
        if len(raw) > _MAX_STRING:
            raise VaeransError(f"string too long for a stream header: {text[:40]!r}...")
        self.blob(raw)

    def value(self, v: Any) -> None:
        """Tagged value: None, bool, int, float, str, or a list of those."""
        if v is None:
            self.u8(0)
        elif isinstance(v, bool):
            self.u8(2 if v else 1)
        elif isinstance(v, int):
            self.u8(3)
            self.varint((v << 1) ^ (v >> 63) if -(1 << 62) < v < (1 << 62) else _too_big(v))
        elif isinstance(v, float):
            self.u8(4)
            self.buf += struct.pack("<d", v)
        elif isinstance(v, str):
            self.u8(5)
            self.string(v)
        elif isinstance(v, (list, tuple)):
            self.u8(6)
            self.varint(len(v))
            for item in v:
                self.value(item)
        else:
            raise VaeransError(f"cannot store a {type(v).__name__} in a stream header")


def _too_big(v: int) -> int:
    raise VaeransError(f"integer {v} too large for a stream header")


class ByteReader:
    """Bounds-checked reader: every overrun raises :class:`BitstreamError`, never IndexError."""

    def __init__(self, data: bytes, what: str = "stream") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise BitstreamError(f"truncated {self.what}: need {n} bytes at offset {self.pos}, {self.remaining()} left")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self, limit: int = 1 << 62) -> int:
        value = shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise BitstreamError(f"malformed varint in {self.what} at offset {self.pos}")
        if value > limit:
            raise BitstreamError(f"{self.what}: value {value} at offset {self.pos} exceeds the limit {limit}")
        return value

    def blob(self, limit: int | None = None) -> bytes:
        return self.take(self.varint(self.remaining() if limit is None else min(limit, self.remaining())))

    def string(self) -> str:
        raw = self.blob(_MAX_STRING)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise BitstreamError(f"{self.what}: invalid UTF-8 string") from None

    def value(self, depth: int = 0) -> Any:
        tag = self.u8()
        if tag == 0:
            return None
        if tag in (1, 2):
            return tag == 2
        if tag == 3:
            z = self.varint()
            return (z >> 1) ^ -(z & 1)
        if tag == 4:
            return struct.unpack("<d", self.take(8))[0]
        if tag == 5:
            return self.string()
        if tag == 6 and depth < 4:
            return [self.value(depth + 1) for _ in range(self.varint(64))]
        raise BitstreamError(f"{self.what}: unknown value tag {tag} at offset {self.pos - 1}")


@dataclass(frozen=True)
class StreamHeader:
    """Everything a stream declares besides its two payloads."""

    version: int
    height: int
    width: int
    pipeline: tuple[System, ...]
    fingerprint: bytes
    channels: int
    plane_h: int
    plane_w: int


def pack_stream(
    *,
    height: int,
    width: int,
    pipeline: Sequence[System],
    fingerprint: bytes,
    channels: int,
    plane_h: int,
    plane_w: int,
    quant: bytes,
    payload: bytes,
) -> bytes:
    """Serialize a stream (see the module docstring for the layout)."""
    w = ByteWriter()
    w.buf += MAGIC
    w.u8(VERSION)
    w.u8(0)
    w.varint(height)
    w.varint(width)
    if len(pipeline) > _MAX_SYSTEMS:
        raise VaeransError(f"pipelines of more than {_MAX_SYSTEMS} systems cannot be stored")
    w.u8(len(pipeline))
    for system in pipeline:
        code = STREAM_CODES.get(system.name, 0)
        w.u8(code)
        if code == 0:
            w.string(system.name)
        fields = system.stream_field_names()
        w.u8(len(fields))
        cfg = system.get_config()
        for field in fields:
            w.value(cfg[field])
    w.u8(len(fingerprint))
    w.buf += fingerprint
    for v in (channels, plane_h, plane_w):
        w.varint(v)
    w.blob(quant)
    w.blob(payload)
    w.buf += struct.pack("<I", zlib.crc32(w.buf))
    return bytes(w.buf)


def _system_from_stream(r: ByteReader) -> System:
    code = r.u8()
    if code == 0:
        name = r.string()
    else:
        names = [n for n, c in STREAM_CODES.items() if c == code]
        if not names:
            raise BitstreamError(f"unknown system code {code} in stream pipeline")
        name = names[0]
    if name not in SYSTEMS:
        raise BitstreamError(f"stream needs system {name!r}, which is not registered (missing plugin?)")
    cls = SYSTEMS.get(name)
    n_fields = r.u8()
    values = [r.value() for _ in range(n_fields)]
    fields = cls.stream_field_names()
    if len(fields) != n_fields:
        raise BitstreamError(f"system {name!r}: stream has {n_fields} fields, expected {len(fields)}")
    try:
        return cls.from_config({"id": name, **dict(zip(fields, values, strict=True))})
    except BitstreamError:
        raise
    except Exception as exc:  # a forged config must not escape as TypeError & co.
        raise BitstreamError(f"invalid configuration for system {name!r} in stream: {exc}") from None


def unpack_stream(data: bytes, *, max_pixels: int) -> tuple[StreamHeader, bytes, bytes]:
    """Parse and validate a stream; returns the header, quantizer bytes and coder payload."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 + 2 + 4 or data[:4] != MAGIC:
        raise BitstreamError("not a vaerans stream (bad magic or too short)")
    version = data[4]
    if version != VERSION:
        raise BitstreamError(f"unsupported stream version {version}; this build reads version {VERSION}")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError("stream checksum mismatch: the data is corrupted, truncated or extended")
    r = ByteReader(body)
    r.take(5)
    if r.u8() != 0:
        raise BitstreamError("stream uses flags this version does not know")
    height, width = r.varint(1 << 31), r.varint(1 << 31)
    if height == 0 or width == 0:
        raise BitstreamError(f"stream declares an empty image ({height}x{width})")
    if height * width > max_pixels:
        raise BitstreamError(
            f"stream declares {height}x{width} = {height * width} pixels, over max_pixels={max_pixels} "
            "(raise [runtime] max_pixels to decode it)"
        )
    n = r.u8()
    if n > _MAX_SYSTEMS:
        raise BitstreamError(f"stream declares {n} systems, more than {_MAX_SYSTEMS}")
    pipeline = tuple(_system_from_stream(r) for _ in range(n))
    fingerprint = r.take(r.u8())
    channels, plane_h, plane_w = r.varint(64), r.varint(1 << 31), r.varint(1 << 31)
    if channels * plane_h * plane_w > 4 * max_pixels:
        raise BitstreamError(f"stream declares a {channels}x{plane_h}x{plane_w} latent, too large for max_pixels")
    if channels == 0 or plane_h == 0 or plane_w == 0:
        raise BitstreamError("stream declares an empty latent plane")
    if plane_h > height or plane_w > width:  # a latent is never larger than its image (stride >= 1)
        raise BitstreamError(f"stream declares a {plane_h}x{plane_w} latent for a {height}x{width} image")
    quant = r.blob()
    payload = r.blob()
    if r.remaining():
        raise BitstreamError(f"{r.remaining()} unexpected bytes after the payload")
    header = StreamHeader(version, height, width, pipeline, fingerprint, channels, plane_h, plane_w)
    return header, quant, payload
