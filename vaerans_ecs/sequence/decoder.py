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
from vaerans_ecs.core.container import ContainerReader, pack_container, pack_section, read_sections, section_type
from vaerans_ecs.core.stream import Geometry, StreamContext, read_stage
from vaerans_ecs.core.system import System
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.sequence import format as fmt
from vaerans_ecs.sequence.encoder import collect_timings, frame_world
from vaerans_ecs.systems.motion.components import FrameMeta, FutureReference, MotionField, Reference
from vaerans_ecs.systems.motion.stages import ROLES, PriorMotion, release_caches, role_of

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


def check_pipeline(stages: Sequence[System], key: bool, mode: fmt.Mode, max_error: int, bi: bool = False) -> None:
    """Refuse a pipeline no encoder makes: inter frames run motion, compensate, residual; intra a residual.

    B-frames (``bi``) need bidirectional motion and compensation stages, P-frames one-way ones. In
    the lossless and near-lossless modes the residual coder must guarantee the declared bound.
    """
    roles = [role_of(s) for s in stages]
    want = ["residual"] if key else list(ROLES)
    kind = "key" if key else "B" if bi else "P"
    if roles != want:
        names = ", ".join(s.name for s in stages) or "none"
        raise BitstreamError(f"a {kind}-frame's stages must be {'/'.join(want)}, got {names}")
    if not key and any(bool(getattr(s, "bidirectional", False)) != bi for s in stages[:2]):
        raise BitstreamError(f"a {kind}-frame's motion stages must be {'two' if bi else 'one'}-way")
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
            self._reader.limit = self.header.frame_limit()  # the loop below may read the first frame
            #: How the source named its frames (a checked pattern), when the stream says.
            self.names: str | None = None
            self.bstages: list[System] | None = None
            stages: list[System] | None = None
            # the header sections, up to the first frame (kept for the frame loop)
            self._after_header: tuple[int, bytes] | None = None
            while (item := self._reader.next()) is not None:
                code, body = item
                if code == fmt.section_code("frame-names") and stages is None:
                    with contextlib.suppress(UnicodeDecodeError):  # ancillary: a bad one is ignored
                        self.names = fmt.check_names(body.decode())
                elif code == fmt.section_code("pipeline") and stages is None:
                    stages = read_pipeline(body)
                    check_pipeline(stages, False, self.header.mode, self.header.max_error)
                elif code == fmt.section_code("b-pipeline") and stages is not None and self.bstages is None:
                    self.bstages = read_pipeline(body)
                    check_pipeline(self.bstages, False, self.header.mode, self.header.max_error, bi=True)
                elif section_type(code) is None and code & 0x80:
                    continue
                else:
                    self._after_header = item
                    break
            if stages is None:
                raise BitstreamError("sequence stream lacks its pipeline section")
            self.stages = stages
        except BaseException:
            self.close()
            raise
        self._first = self._reader.offset
        if self._after_header is not None:  # the first frame's section, already read
            self._first -= len(pack_section(*self._after_header))
        self._world = frame_world(self.header, self.config)
        self._anchor: U8 | None = None  # the last anchor (I or P frame) decoded
        self._past: U8 | None = None  # the anchor before it (a B-frame's first reference)
        self._prior: NDArray[np.int32] | None = None  # the last P-frame's field
        self._state = -1  # stream position of the last anchor decoded (-1: none)
        self._started = False
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
        """Close a file this reader opened (and drop the motion stages' kept references)."""
        release_caches()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SequenceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sequential decoding --------------------------------------------------------------------
    def sections(self) -> Iterator[tuple[int, bytes]]:
        """The stream's remaining top-level sections ``(code, body)`` (the checksum is checked at the end)."""
        return self._sections()

    def _sections(self) -> Iterator[tuple[int, bytes]]:
        if self._after_header is not None:
            yield self._after_header
            self._after_header = None
        while (item := self._reader.next()) is not None:
            yield item

    def __iter__(self) -> Iterator[U8]:
        """Every frame in display order (from the start), then the stream's checksum is verified.

        Frames come in stream order, an anchor before the B-frames that precede it in display
        order; an anchor is held back until those are out.
        """
        if self._started or not self._reader.checked:
            raise VaeransError("a SequenceReader iterates its frames once, from the start")
        self._started = True
        shown = 0  # the next display number to yield
        waiting: tuple[int, U8] | None = None  # an anchor decoded before the B-frames shown ahead of it
        count = 0
        index_seen = False
        for code, body in self._sections():
            if code == fmt.section_code("frame"):
                if index_seen:
                    raise BitstreamError("a frame follows the frame index")
                info, rest = fmt.read_frame_info(body, None)
                count += 1
                if info.bi:
                    if waiting is None or info.number != shown:
                        raise BitstreamError(f"B-frame {info.number} is out of order (next frame to show: {shown})")
                    yield self._decode(info, rest)
                    shown += 1
                else:
                    if waiting is not None:
                        raise BitstreamError(f"frames {shown}..{waiting[0] - 1} are missing before frame {waiting[0]}")
                    if info.number < shown or (self.bstages is None and info.number != shown):
                        raise BitstreamError(f"frame {shown} is numbered {info.number}: frames are missing, "
                                             "repeated or reordered")
                    waiting = (info.number, self._decode(info, rest))
                if waiting is not None and waiting[0] == shown:
                    yield waiting[1]
                    shown += 1
                    waiting = None
            elif code == fmt.section_code("frame-index"):
                index_seen = True
                self._check_count(body, count)
            elif section_type(code) is None and code & 0x80:
                continue
            elif code != fmt.section_code("index-locator"):
                raise BitstreamError(f"unexpected section {code:#04x} in a sequence stream")
        if waiting is not None:
            raise BitstreamError(f"frames {shown}..{waiting[0] - 1} are missing before frame {waiting[0]}")
        if count == 0:
            raise BitstreamError("the sequence holds no frame")
        release_caches()  # the last frame is out

    def _check_count(self, body: bytes, count: int) -> None:
        r = ByteReader(body, "frame index")
        if r.varint(fmt.MAX_FRAMES) != count:
            raise BitstreamError("the frame index counts another number of frames than the stream holds")

    # -- random access --------------------------------------------------------------------------
    def index(self) -> list[fmt.FrameEntry]:
        """The frame index (offset, size, kind, display number of every frame, in stream order)."""
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
            self._positions = {e.number: i for i, e in enumerate(entries)}
        return self._entries

    def frame(self, k: int) -> U8:
        """Frame ``k`` (display order), decoded from the keyframe at or before the anchors it needs.

        Only anchors (I and P frames) are decoded on the way, no frame before that keyframe, and no
        B-frame but ``k`` itself when it is one.
        """
        entries = self.index()
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < len(entries):
            raise VaeransError(f"frame {k!r} is out of range: the sequence has {len(entries)} frames")
        pos = self._positions[int(k)]
        last = pos
        if entries[pos].bi:  # its anchors: the one just before it in the stream, and the one before that
            last = max((i for i in range(pos) if not entries[i].bi), default=-1)
            if last < 1 or any(entries[i].key for i in range(last, pos)):
                raise BitstreamError(f"the frame index gives B-frame {k} no anchors")
        key = max(i for i in range(last + 1) if entries[i].key)
        start = self._state + 1 if key <= self._state <= last else key
        todo = [i for i in range(start, last + 1) if not entries[i].bi] + ([pos] if pos != last else [])
        if not todo:  # k is the anchor this reader decoded last
            assert self._anchor is not None
            return self._anchor
        out = self._anchor
        for i in todo:
            out = self._decode(*self._read_entry(entries[i], i))
            if not entries[i].bi:
                self._state = i
        assert out is not None
        return out

    def _read_entry(self, entry: fmt.FrameEntry, i: int) -> tuple[fmt.FrameInfo, bytes]:
        self._reader.seek(entry.offset)
        item = self._reader.next()
        if item is None or item[0] != fmt.section_code("frame") or self._reader.offset - entry.offset != entry.size:
            raise BitstreamError(f"the frame index does not point at frame {entry.number}")
        info, rest = fmt.read_frame_info(item[1], entry.number)
        if (info.key, info.bi) != (entry.key, entry.bi):
            raise BitstreamError(f"frame {entry.number}'s kind differs from the frame index's")
        return info, rest

    # -- one frame ------------------------------------------------------------------------------
    def _decode(self, info: fmt.FrameInfo, rest: bytes) -> U8:
        h = self.header
        number = info.number
        if not info.key and self._anchor is None:
            raise BitstreamError(f"frame {number} is an inter frame without a decoded reference")
        if info.bi and self._past is None:
            raise BitstreamError(f"B-frame {number} has no earlier anchor")
        if info.image:
            recon = self._decode_image(rest, number)
            field = None
        else:
            recon, field = self._decode_coded(rest, number, info.key, info.bi)
        if zlib.crc32(np.ascontiguousarray(recon).tobytes()) != info.pixels_crc:
            if h.mode is not fmt.Mode.LOSSY:
                raise BitstreamError(f"frame {number}: decoded pixels differ from the encoder's (no exact decoding "
                                     "on this machine, or a corrupted stream)")
            if not self._warned:
                log.warning("frame %d: decoded pixels differ slightly from the encoder's; later frames of its GOP "
                            "may drift (floating-point differences between machines)", number)
                self._warned = True
        if not info.bi:
            self._past, self._anchor, self._prior = self._anchor, recon, field
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

    def _decode_coded(self, rest: bytes, number: int, key: bool,
                      bi: bool) -> tuple[U8, NDArray[np.int32] | None]:
        h = self.header
        sections = read_sections(rest, what=f"frame {number}")
        own = sections.get("pipeline")
        default = self.bstages if bi else self.stages
        if own is None and default is None:
            raise BitstreamError(f"B-frame {number} has no pipeline (the stream declares no B-frame stages)")
        stages = read_pipeline(own) if own is not None else default
        assert stages is not None
        check_pipeline(stages, key, h.mode, h.max_error, bi)
        claimed = {"pipeline"} | {s.data_section for s in stages}
        for item in sections:
            spec = section_type(item.code)
            if spec is not None and spec.name not in claimed:
                raise BitstreamError(f"frame {number} holds a {spec.name!r} section that none of its stages owns")
        world = self._world
        world.clear()
        eid = world.spawn(FrameMeta(number=number, height=h.height, width=h.width, channels=h.channels))
        if bi:
            assert self._past is not None and self._anchor is not None
            world.add_component(eid, Reference(ref=world.arena.copy_in(self._past)))
            world.add_component(eid, FutureReference(ref=world.arena.copy_in(self._anchor)))
        elif not key:
            assert self._anchor is not None
            world.add_component(eid, Reference(ref=world.arena.copy_in(self._anchor)))
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
                 if world.has_component(eid, MotionField) and not bi else None)
        collect_timings(world, self.timings)
        return recon, field
