"""Bounds-checked byte reading and writing: LEB128 varints, blobs, strings and tagged values.

Shared by both bitstream versions (:mod:`vaerans_ecs.core.stream_v1`, :mod:`vaerans_ecs.core.container`)
and by stages that write their own section bodies. Every overrun or malformed value read raises
:class:`BitstreamError`, never ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import struct
from typing import Any

from vaerans_ecs.errors import BitstreamError, VaeransError

__all__ = ["MAX_STRING", "ByteReader", "ByteWriter", "varint_bytes"]

#: Longest string a header may hold, in bytes.
MAX_STRING = 256


def varint_bytes(value: int) -> bytes:
    """``value`` (>= 0) as an LEB128 varint: 7 bits a byte, low bits first, high bit = more follow."""
    if value < 0:
        raise VaeransError(f"varint cannot encode negative value {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class ByteWriter:
    """Append-only byte buffer with varint, string and tagged-value helpers."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, value: int) -> None:
        self.buf.append(value & 0xFF)

    def varint(self, value: int) -> None:
        self.buf += varint_bytes(value)

    def blob(self, data: bytes) -> None:
        self.varint(len(data))
        self.buf += data

    def string(self, text: str) -> None:
        raw = text.encode()
        if len(raw) > MAX_STRING:
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

    def end(self) -> None:
        """Raise unless every byte was read (trailing bytes mean a malformed body)."""
        if self.remaining():
            raise BitstreamError(f"{self.what}: {self.remaining()} unexpected bytes at offset {self.pos}")

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
        raw = self.blob(MAX_STRING)
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
