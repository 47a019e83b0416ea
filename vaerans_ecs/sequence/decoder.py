"""Sequence decoder: frames out one at a time from bytes or a file, and random access by index.

:class:`SequenceReader` validates the header before any frame, keeps only the reference frame
(and its motion field) between frames, checks each frame's CRC before decoding it, and counts
the frames it decodes (:attr:`SequenceReader.decoded`). :meth:`SequenceReader.frame` finds the
keyframe at or before the wanted frame in the index and decodes from there only.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.image import ReconRGB
from vaerans_ecs.config import Config, get_config
from vaerans_ecs.core.byteio import ByteReader
from vaerans_ecs.core.container import ContainerReader, pack_container, read_sections, section_type
from vaerans_ecs.core.stream import Geometry, StreamContext, read_stage
from vaerans_ecs.core.system import System
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.sequence import format as fmt
from vaerans_ecs.sequence.encoder import collect_timings, frame_world
from vaerans_ecs.systems.motion.components import FrameMeta, MotionField, Reference
from vaerans_ecs.systems.motion.stages import ROLES, PriorMotion, role_of

__all__ = ["SequenceReader", "check_pipeline", "read_pipeline"]

log = logging.getLogger(__name__)
U8 = NDArray[np.uint8]
#: Most stages a frame's pipeline may hold.
MAX_STAGES = 8


def read_pipeline(body: bytes) -> list[System]:
    """Rebuild a frame pipeline's stages through the registry (at most :data:`MAX_STAGES`)."""
    r = ByteReader(body, "sequence pipeline")
    stages: list[System] = []
    while r.remaining():
        if len(stages) == MAX_STAGES:
            raise BitstreamError(f"a frame pipeline holds at most {MAX_STAGES} stages")
        stages.append(read_stage(r))
    return stages


def check_pipeline(stages: Sequence[System], key: bool, mode: fmt.Mode, max_error: int) -> None:
    """Refuse a pipeline no encoder makes: inter frames run motion, compensate, residual; intra a residual.

    In the lossless and near-lossless modes the residual coder must guarantee the declared bound.
    """
    roles = [role_of(s) for s in stages]
    want = ["residual"] if key else list(ROLES)
    if roles != want:
        names = ", ".join(s.name for s in stages) or "none"
        raise BitstreamError(f"a{' key' if key else 'n inter'} frame's stages must be {'/'.join(want)}, got {names}")
    bound = getattr(stages[-1], "bound", None)
    if mode is not fmt.Mode.LOSSY and bound != max_error:
        raise BitstreamError(f"the sequence promises max_error {max_error}, its residual coder {stages[-1].name} "
                             f"guarantees {bound}")


class SequenceReader:
    """Decode a sequence stream (bytes, a binary file or a path); iterate it for its frames."""

    def __init__(self, source: bytes | bytearray | BinaryIO | str | Path, *, max_pixels: int | None = None,
                 config: Config | None = None) -> None:
        self.config = config or get_config()
        self.max_pixels = self.config.runtime.max_pixels if max_pixels is None else max_pixels
        self._file: BinaryIO | None = open(source, "rb") if isinstance(source, (str, Path)) else None  # noqa: SIM115
        src: bytes | bytearray | BinaryIO = self._file if self._file is not None else source  # type: ignore[assignment]
        try:
            self._reader = ContainerReader(src, 1 << 16)
            first = self._reader.next()
            if first is None or first[0] != fmt.section_code("sequence"):
                raise BitstreamError("not a sequence stream (it does not start with a sequence header)")
            self.header = fmt.read_header(first[1], self.max_pixels)
            second = self._reader.next()
            #: How the source named its frames (a checked pattern), when the stream says.
            self.names: str | None = None
            if second is not None and second[0] == fmt.section_code("frame-names"):
                with contextlib.suppress(UnicodeDecodeError):  # ancillary: a bad one is ignored
                    self.names = fmt.check_names(second[1].decode())
                second = self._reader.next()
            if second is None or second[0] != fmt.section_code("pipeline"):
                raise BitstreamError("sequence stream lacks its pipeline section")
            self.stages = read_pipeline(second[1])
            check_pipeline(self.stages, False, self.header.mode, self.header.max_error)
        except BaseException:
            self.close()
            raise
        self._reader.limit = self.header.frame_limit()
        self._first = self._reader.offset
        self._world = frame_world(self.header, self.config)
        self._ref: U8 | None = None
        self._prior: NDArray[np.int32] | None = None
        self._next = 0
        self._entries: list[fmt.FrameEntry] | None = None
        self._warned = False
        #: Frames decoded so far by this reader (random access decodes from the keyframe only).
        self.decoded = 0
        #: Seconds spent in each stage (by system name) over all frames decoded, for benchmarks.
        self.timings: dict[str, float] = {}

    @property
    def seekable(self) -> bool:
        """Whether random access works (bytes or a seekable file)."""
        return self._reader.seekable

    @property
    def container(self) -> ContainerReader:
        """The section reader underneath (positioned after the last section read)."""
        return self._reader

    def size(self) -> int:
        """Length of the whole stream in bytes (seekable sources)."""
        return self._reader.size()

    def close(self) -> None:
        """Close a file this reader opened."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SequenceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sequential decoding --------------------------------------------------------------------
    def __iter__(self) -> Iterator[U8]:
        """Every frame in order (from the start), then the stream's checksum is verified."""
        if self._next or not self._reader.checked:
            raise VaeransError("a SequenceReader iterates its frames once, from the start")
        index_seen = False
        while (item := self._reader.next()) is not None:
            code, body = item
            if code == fmt.section_code("frame"):
                if index_seen:
                    raise BitstreamError("a frame follows the frame index")
                yield self._decode(body, self._next)
            elif code == fmt.section_code("frame-index"):
                index_seen = True
                self._check_count(body)
            elif section_type(code) is None and code & 0x80:
                continue
            elif code != fmt.section_code("index-locator"):
                raise BitstreamError(f"unexpected section {code:#04x} in a sequence stream")
        if self._next == 0:
            raise BitstreamError("the sequence holds no frame")

    def _check_count(self, body: bytes) -> None:
        r = ByteReader(body, "frame index")
        if r.varint(fmt.MAX_FRAMES) != self._next:
            raise BitstreamError("the frame index counts another number of frames than the stream holds")

    # -- random access --------------------------------------------------------------------------
    def index(self) -> list[fmt.FrameEntry]:
        """The frame index (offset, size, key of every frame), read from the stream's end."""
        if self._entries is None:
            r = self._reader
            if not r.seekable:
                raise BitstreamError("random access needs bytes or a seekable file")
            size = r.size()
            if size < self._first + fmt.TRAILER:
                raise BitstreamError("the stream is too short to hold a frame index")
            at = fmt.locate_index(r.read_at(size - fmt.TRAILER, fmt.TRAILER))
            if not self._first <= at <= size - fmt.TRAILER:
                raise BitstreamError("the frame index lies outside the stream")
            head = ByteReader(r.read_at(at, 11), "frame index section")
            if head.u8() != fmt.section_code("frame-index"):
                raise BitstreamError("the index locator does not point at the frame index")
            length = head.varint(size - fmt.TRAILER - at)
            body = r.read_at(at + head.pos, length)
            if at + head.pos + length != size - fmt.TRAILER:
                raise BitstreamError("the frame index does not end where the locator begins")
            entries = fmt.read_index(body, at)
            if entries and entries[0].offset != self._first:
                raise BitstreamError("the frame index does not start at the first frame")
            self._entries = entries
        return self._entries

    def frame(self, k: int) -> U8:
        """Frame ``k``, decoded from the keyframe at or before it (no frame before that is touched)."""
        entries = self.index()
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < len(entries):
            raise VaeransError(f"frame {k!r} is out of range: the sequence has {len(entries)} frames")
        k = int(k)
        key = max(i for i in range(k + 1) if entries[i].key)
        # carry on from the last decoded frame when it lies in the same GOP before k
        start = self._next if self._ref is not None and key < self._next <= k else key
        self._reader.seek(entries[start].offset)
        out: U8 | None = None
        for i in range(start, k + 1):
            before = self._reader.offset
            item = self._reader.next()
            if item is None or item[0] != fmt.section_code("frame") or self._reader.offset - before != entries[i].size:
                raise BitstreamError(f"the frame index does not point at frame {i}")
            out = self._decode(item[1], i)
        assert out is not None
        return out

    # -- one frame ------------------------------------------------------------------------------
    def _decode(self, body: bytes, number: int) -> U8:
        info, rest = fmt.read_frame_info(body, number)
        h = self.header
        if not info.key and self._ref is None:
            raise BitstreamError(f"frame {number} is an inter frame without a decoded reference")
        if info.image:
            recon = self._decode_image(rest, number)
            field = None
        else:
            recon, field = self._decode_coded(rest, number, info.key)
        if zlib.crc32(np.ascontiguousarray(recon).tobytes()) != info.pixels_crc:
            if h.mode is not fmt.Mode.LOSSY:
                raise BitstreamError(f"frame {number}: decoded pixels differ from the encoder's (no exact decoding "
                                     "on this machine, or a corrupted stream)")
            if not self._warned:
                log.warning("frame %d: decoded pixels differ slightly from the encoder's; later frames of its GOP "
                            "may drift (floating-point differences between machines)", number)
                self._warned = True
        self._ref, self._prior = recon, field
        self._next = number + 1
        self.decoded += 1
        return recon

    def _decode_image(self, rest: bytes, number: int) -> U8:
        from vaerans_ecs.api import decompress, inspect

        stream = pack_container(read_sections(rest, what=f"frame {number}"))
        info = inspect(stream, max_pixels=self.max_pixels, config=self.config)
        if (info.height, info.width) != (self.header.height, self.header.width):
            raise BitstreamError(f"frame {number} is {info.width}x{info.height}, the sequence "
                                 f"{self.header.width}x{self.header.height}")
        out = decompress(stream, max_pixels=self.max_pixels, config=self.config)
        if out.shape != (self.header.height, self.header.width, 3):
            raise BitstreamError(f"frame {number} decodes to {out.shape}")
        return np.ascontiguousarray(out)

    def _decode_coded(self, rest: bytes, number: int, key: bool) -> tuple[U8, NDArray[np.int32] | None]:
        h = self.header
        sections = read_sections(rest, what=f"frame {number}")
        own = sections.get("pipeline")
        stages = read_pipeline(own) if own is not None else self.stages
        check_pipeline(stages, key, h.mode, h.max_error)
        claimed = {"pipeline"} | {s.data_section for s in stages}
        for item in sections:
            spec = section_type(item.code)
            if spec is not None and spec.name not in claimed:
                raise BitstreamError(f"frame {number} holds a {spec.name!r} section that none of its stages owns")
        world = self._world
        world.clear()
        eid = world.spawn(FrameMeta(number=number, height=h.height, width=h.width, channels=h.channels))
        if not key:
            assert self._ref is not None
            world.add_component(eid, Reference(ref=world.arena.copy_in(self._ref)))
            if self._prior is not None:
                world.add_component(eid, PriorMotion(ref=world.arena.copy_in(self._prior), block=1, subpel=1))
        ctx = StreamContext(h.height, h.width, h.channels, 8, self.config, Geometry(h.channels, h.height, h.width))
        for stage in stages:
            stage.load_stream_data(world, eid, sections.get(stage.data_section), ctx)
        pipe = world.pipe(eid)
        for stage in stages:
            pipe = pipe | stage.inverse()
        pipe.run()
        recon = np.array(world.view(world.get_component(eid, ReconRGB).ref), copy=True)
        field = (np.array(world.view(world.get_component(eid, MotionField).ref), copy=True)
                 if world.has_component(eid, MotionField) else None)
        collect_timings(world, self.timings)
        return recon, field
