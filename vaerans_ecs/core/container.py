"""Bitstream v2: a container of typed, length-prefixed sections (PNG's chunk rules, compact).

Layout (spec and compatibility promise in ``docs/bitstream.md``)::

    magic    4 bytes  b"\\x89VAE"
    version  1 byte   2
    sections          each: type (1 byte), body length (LEB128 varint), body
    crc32    4 bytes  little-endian CRC-32 of every byte before it

A section type's high bit says what a reader that does not know the type must do, as PNG's
chunk-name case does: set = *ancillary* (skip it), clear = *critical* (refuse the stream).
Types are registered with :func:`register_section` (built-ins in
:mod:`vaerans_ecs.core.sections`); each belongs to one owner, the stage or the front door
that writes and reads it. A section body may itself be a list of sections
(:func:`pack_sections` / :func:`read_sections`): enhancement layers and frames nest that way.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from vaerans_ecs.core.byteio import ByteReader, ByteWriter
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.errors import BitstreamError, VaeransError

__all__ = [
    "ANCILLARY",
    "MAGIC",
    "ContainerReader",
    "ContainerWriter",
    "SECTION_TYPES",
    "Section",
    "SectionType",
    "Sections",
    "accept",
    "pack_container",
    "pack_section",
    "pack_sections",
    "read_sections",
    "register_section",
    "section_type",
    "stream_version",
    "unpack_container",
]

MAGIC = b"\x89VAE"
VERSION = 2
#: Bit of a section type code that marks it ancillary (skippable when unknown).
ANCILLARY = 0x80
#: Most sections one list may hold (a forged count cannot make the reader loop for long).
MAX_SECTIONS = 4096


@dataclass(frozen=True)
class SectionType:
    """A registered section type: its one-byte ``code``, a short ``name`` and who owns it."""

    code: int
    name: str
    owner: str
    repeatable: bool = False

    @property
    def critical(self) -> bool:
        """A reader that does not know a critical section must refuse the stream."""
        return not self.code & ANCILLARY


SECTION_TYPES: Registry[SectionType] = Registry("section type")
_BY_CODE: dict[int, SectionType] = {}


def register_section(code: int, name: str, owner: str, *, repeatable: bool = False) -> SectionType:
    """Register section type ``code`` (1..255, never reused) under ``name`` for ``owner``."""
    if not 1 <= code <= 255:
        raise VaeransError(f"section codes are 1..255, got {code}")
    spec = SectionType(code, name, owner, repeatable)
    known = _BY_CODE.get(code)
    if known is not None and known != spec:
        raise VaeransError(f"section code {code:#04x} already belongs to {known.name!r} ({known.owner})")
    SECTION_TYPES.add(name, spec)
    _BY_CODE[code] = spec
    return spec


def section_type(code: int) -> SectionType | None:
    """The registered type of ``code``, or None."""
    return _BY_CODE.get(code)


def accept(prefix: bytes) -> bool:
    """True when ``prefix`` starts like a vaerans stream (Pillow-style format sniffing)."""
    return bytes(prefix[:4]) == MAGIC


def stream_version(data: bytes) -> int:
    """The version byte of a stream (after checking the magic)."""
    if len(data) < 5 or bytes(data[:4]) != MAGIC:
        raise BitstreamError("not a vaerans stream (bad magic or too short)")
    return data[4]


@dataclass(frozen=True)
class Section:
    """One section as read: its type code and body."""

    code: int
    body: bytes


class Sections:
    """The sections of one list, in stream order, looked up by type name."""

    def __init__(self, items: Iterable[Section] = ()) -> None:
        self.items: list[Section] = list(items)

    def __iter__(self) -> Iterator[Section]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _code(self, name: str) -> int:
        return SECTION_TYPES.get(name).code

    def get(self, name: str) -> bytes | None:
        """The body of the (single) section of type ``name``, or None when absent."""
        code = self._code(name)
        return next((s.body for s in self.items if s.code == code), None)

    def require(self, name: str) -> bytes:
        """The body of section ``name``; its absence is a :class:`BitstreamError`."""
        body = self.get(name)
        if body is None:
            raise BitstreamError(f"stream lacks its {name!r} section")
        return body

    def all(self, name: str) -> list[bytes]:
        """Bodies of every section of type ``name``, in order."""
        code = self._code(name)
        return [s.body for s in self.items if s.code == code]

    def add(self, name: str, body: bytes) -> None:
        """Append a section of registered type ``name`` (writers)."""
        spec = SECTION_TYPES.get(name)
        if not spec.repeatable and any(s.code == spec.code for s in self.items):
            raise VaeransError(f"section {name!r} written twice")
        self.items.append(Section(spec.code, bytes(body)))


def pack_sections(sections: Sequence[Section] | Sections) -> bytes:
    """Serialize a list of sections (no magic, version or CRC): a nested section body."""
    w = ByteWriter()
    for s in sections:
        w.u8(s.code)
        w.blob(s.body)
    return bytes(w.buf)


def read_sections(body: bytes, *, what: str = "stream") -> Sections:
    """Parse a list of sections; skip unknown ancillary ones, refuse unknown critical ones."""
    r = ByteReader(body, what)
    items: list[Section] = []
    seen: set[int] = set()
    while r.remaining():
        if len(items) >= MAX_SECTIONS:
            raise BitstreamError(f"{what}: more than {MAX_SECTIONS} sections")
        code = r.u8()
        data = r.blob()
        spec = _BY_CODE.get(code)
        if spec is None:
            if code & ANCILLARY:
                continue
            raise BitstreamError(
                f"{what} has a critical section of unknown type {code:#04x}: it was written by a newer "
                "vaerans_ecs or needs a plugin this installation lacks"
            )
        if code in seen and not spec.repeatable:
            raise BitstreamError(f"{what} has two {spec.name!r} sections")
        seen.add(code)
        items.append(Section(code, data))
    return Sections(items)


def pack_container(sections: Sequence[Section] | Sections) -> bytes:
    """A complete v2 stream: magic, version, the sections, CRC-32."""
    buf = MAGIC + bytes([VERSION]) + pack_sections(sections)
    return buf + struct.pack("<I", zlib.crc32(buf))


def unpack_container(data: bytes) -> Sections:
    """Check a v2 stream's magic, version and CRC, then parse its top-level sections."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    version = stream_version(data)
    if version != VERSION:
        raise BitstreamError(f"unsupported stream version {version}; this build reads versions 1 and {VERSION}")
    if len(data) < 4 + 1 + 4:
        raise BitstreamError("stream too short")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError("stream checksum mismatch: the data is corrupted, truncated or extended")
    return read_sections(body[5:])


# -- incremental writing and reading (streams that do not fit in memory at once) ----------------
def pack_section(code: int, body: bytes) -> bytes:
    """One section's bytes: its type code, the LEB128 body length, the body."""
    w = ByteWriter()
    w.u8(code)
    w.blob(body)
    return bytes(w.buf)


class ContainerWriter:
    """Write a v2 stream section by section to a binary file, keeping only a running CRC.

    ``tell()`` is the offset the next section starts at (from the stream's first byte).
    """

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0
        self.crc = 0
        self.closed = False
        self._put(MAGIC + bytes([VERSION]))

    def _put(self, data: bytes) -> None:
        self.out.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.offset += len(data)

    def tell(self) -> int:
        """Offset of the next section."""
        return self.offset

    def section(self, name: str, body: bytes) -> int:
        """Append a section of registered type ``name``; returns its size in bytes."""
        data = pack_section(SECTION_TYPES.get(name).code, body)
        self._put(data)
        return len(data)

    def close(self) -> None:
        """Append the CRC-32 of everything written (the stream is complete)."""
        if not self.closed:
            self.out.write(struct.pack("<I", self.crc))
            self.closed = True


class ContainerReader:
    """Read a v2 stream section by section from bytes or a binary file, with a running CRC.

    Memory stays at one section: :meth:`next` returns ``(code, body)`` of the next section, or
    None once only the 4-byte CRC is left (checked then: a mismatch, a truncation or extra bytes
    raise :class:`BitstreamError`). Each body length is checked against ``limit`` before it is
    read, and a file is read in chunks, so a forged length never allocates more than the file
    holds. :meth:`seek` jumps to a section boundary (random access); the CRC is then not checked.
    """

    _CHUNK = 1 << 20

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO, limit: int) -> None:
        self._mem: memoryview | None = None
        self._file: BinaryIO | None = None
        self._buf = bytearray()  # file bytes read ahead, not consumed yet
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._mem = memoryview(source).cast("B")
        else:
            self._file = source
            self._start = source.tell() if source.seekable() else 0
        self.offset = 0
        self.crc = 0
        self.limit = limit
        self.checked = True  # False after a seek: the CRC covers bytes this reader skipped
        head = self._peek(5)
        if len(head) < 5 or head[:4] != MAGIC:
            raise BitstreamError("not a vaerans stream (bad magic or too short)")
        if head[4] != VERSION:
            raise BitstreamError(f"unsupported stream version {head[4]}; this reader reads version {VERSION}")
        self._take(5)

    def _peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current offset, not consumed."""
        if self._mem is not None:
            return bytes(self._mem[self.offset: self.offset + n])
        assert self._file is not None
        while len(self._buf) < n:
            chunk = self._file.read(min(self._CHUNK, n - len(self._buf)))
            if not chunk:
                break
            self._buf += chunk
        return bytes(self._buf[:n])

    def _take(self, n: int) -> bytes:
        """Consume exactly ``n`` bytes (file bodies arrive in chunks) and add them to the CRC."""
        if self._mem is not None:
            out = bytes(self._mem[self.offset: self.offset + n])
        else:
            self._peek(n)
            out = bytes(self._buf[:n])
            del self._buf[:n]
        if len(out) < n:
            raise BitstreamError(f"truncated stream: a section needs {n} bytes at offset {self.offset}, "
                                 f"{len(out)} left")
        self.crc = zlib.crc32(out, self.crc)
        self.offset += n
        return out

    @property
    def seekable(self) -> bool:
        """Whether :meth:`seek` and :meth:`size` work (bytes, or a seekable file)."""
        return self._mem is not None or (self._file is not None and self._file.seekable())

    def size(self) -> int:
        """Length of the whole stream in bytes (seekable sources only)."""
        if self._mem is not None:
            return len(self._mem)
        assert self._file is not None
        here = self._file.tell()
        end = self._file.seek(0, 2)
        self._file.seek(here)
        return end - self._start

    def read_at(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (seekable sources; fewer at the end), leaving the position alone."""
        if self._mem is not None:
            return bytes(self._mem[offset: offset + n])
        assert self._file is not None
        here = self._file.tell()
        self._file.seek(self._start + offset)
        out = self._file.read(n)
        self._file.seek(here)
        return out

    def seek(self, offset: int) -> None:
        """Continue reading at ``offset`` (a section boundary); the final CRC is then not checked."""
        if not self.seekable:
            raise BitstreamError("random access needs bytes or a seekable file")
        if self._file is not None:
            self._file.seek(self._start + offset)
            self._buf.clear()
        self.offset = offset
        self.checked = False

    def next(self) -> tuple[int, bytes] | None:
        """The next section's ``(code, body)``, or None at the end (after checking the CRC)."""
        head = self._peek(5)
        if len(head) < 5:
            if len(head) < 4:
                raise BitstreamError("truncated stream: it ends without its checksum")
            expected = self.crc
            (crc,) = struct.unpack("<I", self._take(4))
            if self.checked and crc != expected:
                raise BitstreamError("stream checksum mismatch: the data is corrupted, truncated or extended")
            return None
        code = self._take(1)[0]
        length = shift = 0
        while True:
            byte = self._take(1)[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 56:
                raise BitstreamError(f"malformed section length at offset {self.offset}")
        if length > self.limit:
            raise BitstreamError(f"section {code:#04x} declares {length} bytes, over the limit of {self.limit}")
        return code, self._take(length)
