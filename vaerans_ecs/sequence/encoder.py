"""Sequence encoder: frames in, one stream out, a frame at a time (memory independent of length).

Each frame is an entity of a private World. A keyframe (the first frame, one every ``gop``
frames, or a scene cut) goes through the image pipeline (:func:`vaerans_ecs.compress` in the
sequence's mode: lossy, lossless or within ``max_error``), or on request through the sequence's
residual coder alone. An inter frame
goes through the sequence stages (motion search, compensation, residual coding) against the
decoded previous frame, which the residual stage rebuilds exactly as the decoder will (closed
loop). Rate control picks each frame's settings and learns from what it cost.
"""

from __future__ import annotations

import io
import logging
import zlib
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.image import RGB, ReconRGB
from vaerans_ecs.config import Config, get_config
from vaerans_ecs.core.arena import Arena
from vaerans_ecs.core.byteio import ByteWriter
from vaerans_ecs.core.container import ContainerWriter, Sections, pack_sections, unpack_container
from vaerans_ecs.core.stream import write_stage
from vaerans_ecs.core.system import System
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.imaging import to_rgb_uint8
from vaerans_ecs.sequence import format as fmt
from vaerans_ecs.systems.motion.components import (
    CodingParams,
    CutScore,
    FrameMeta,
    FutureReference,
    MotionField,
    Reference,
)
from vaerans_ecs.systems.motion.control import ConstantQuality, FrameStats, RateControl, SceneCut, TargetRate
from vaerans_ecs.systems.motion.stages import (
    BiCompensate,
    BiMotion,
    BlockMotion,
    MotionCompensate,
    PixelResidual,
    PriorMotion,
    TransformResidual,
    release_caches,
)

__all__ = ["DEFAULT_GOP", "SequenceWriter", "collect_timings", "compress_sequence", "default_stages", "frame_world"]

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]
#: Longest keyframe interval unless told otherwise.
DEFAULT_GOP = 64
#: B-frames between anchors unless told otherwise, and the most allowed.
DEFAULT_BFRAMES = 1
MAX_BFRAMES = 7


def default_stages(mode: fmt.Mode, max_error: int = 0, *, bi: bool = False) -> list[System]:
    """The stages of a mode's P-frames (or B-frames): motion search, compensation, the residual coder."""
    motion, compensate = (BiMotion, BiCompensate) if bi else (BlockMotion, MotionCompensate)
    if mode is fmt.Mode.LOSSY:
        return [motion(), compensate(), TransformResidual()]
    return [motion(lam=2), compensate(), PixelResidual(max_error=max_error)]


def pack_pipeline(stages: Sequence[System]) -> bytes:
    """A ``pipeline`` section body: the stages' :func:`write_stage` records."""
    w = ByteWriter()
    for stage in stages:
        write_stage(w, stage)
    return bytes(w.buf)


def frame_world(header: fmt.Header, config: Config) -> World:
    """A World for one frame at a time: its arena starts at a few frames' worth and grows if needed."""
    first = 16 * header.pixels * header.channels + (256 << 10)
    return World(Arena(first, max(first, config.arena.max_capacity_mb << 20)), config=config)


def collect_timings(world: World, timings: dict[str, float]) -> None:
    """Add the world's stage timings to ``timings`` and clear the world for the next frame."""
    for name, _, seconds in world.timings:
        timings[name] = timings.get(name, 0.0) + seconds
    world.clear()


def _mse(a: U8, b: U8) -> float:
    d = a.astype(np.int32) - b.astype(np.int32)
    return float(np.mean(d * d))


class SequenceWriter:
    """Streaming encoder: ``write(frame)`` for each frame, then ``close()``; a context manager.

    ``out`` is a binary file (or path) the stream goes to; without one, :meth:`getvalue` returns
    the bytes. Exactly one of ``quality`` (1..100, keyframes at that image quality and inter
    frames at the same error), ``target_bpp`` (average bits per pixel), ``lossless=True`` or
    ``max_error=k`` (every pixel within k) picks the mode; the default is the configured quality.
    ``names`` (e.g. ``"frame_{:04d}.png"``) records how the source named its frames.
    ``stages`` replaces the inter stages, ``control`` the rate controller, ``scene_cut`` the cut
    detector (True: the default :class:`SceneCut`; False: no detection). Keyframes go through
    :func:`vaerans_ecs.compress` (``keyframes="image"``), or with ``keyframes="intra"`` through
    the sequence's residual coder alone (:class:`TransformResidual` or :class:`PixelResidual`).
    """

    def __init__(
        self,
        out: BinaryIO | str | Path | None = None,
        *,
        quality: float | None = None,
        target_bpp: float | None = None,
        lossless: bool = False,
        max_error: int = 0,
        gop: int = DEFAULT_GOP,
        bframes: int = DEFAULT_BFRAMES,
        fps: tuple[int, int] | None = None,
        stages: Sequence[System] | None = None,
        bstages: Sequence[System] | None = None,
        control: RateControl | None = None,
        scene_cut: SceneCut | bool = True,
        model: str = "default",
        keyframes: str = "image",
        names: str | None = None,
        b_factor: float = 1.8,
        config: Config | None = None,
    ) -> None:
        self.config = config or get_config()
        modes = sum([quality is not None, target_bpp is not None, bool(lossless), bool(max_error)])
        if modes > 1:
            raise VaeransError("give at most one of quality, target_bpp, lossless and max_error")
        if isinstance(gop, bool) or not isinstance(gop, int) or gop < 1 or gop > fmt.MAX_FRAMES:
            raise VaeransError(f"gop must be a positive integer, got {gop!r}")
        if isinstance(max_error, bool) or not isinstance(max_error, int) or not 0 <= max_error <= 16:
            raise VaeransError(f"max_error must be an integer in 0..16, got {max_error!r}")
        if isinstance(bframes, bool) or not isinstance(bframes, int) or not 0 <= bframes <= MAX_BFRAMES:
            raise VaeransError(f"bframes must be an integer in 0..{MAX_BFRAMES}, got {bframes!r}")
        self.mode = fmt.Mode.LOSSLESS if lossless else fmt.Mode.NEAR_LOSSLESS if max_error else fmt.Mode.LOSSY
        self.max_error = max_error
        self.gop = gop
        self.bframes = bframes
        self.fps = fps or (0, 0)
        self.model = model
        if keyframes not in ("image", "intra"):
            raise VaeransError(f"keyframes must be 'image' or 'intra', got {keyframes!r}")
        self.key_coder = keyframes
        if names is not None and fmt.check_names(names) is None:
            raise VaeransError(f"frame names {names!r}: give a pattern like 'frame_{{:04d}}.png' (no folders)")
        self.names = names
        self.stages = list(stages) if stages is not None else default_stages(self.mode, max_error)
        self.bstages = list(bstages) if bstages is not None else default_stages(self.mode, max_error, bi=True)
        if control is None:
            control = TargetRate(bpp=target_bpp) if target_bpp is not None else ConstantQuality(
                quality=self.config.codec.quality if quality is None else quality)
        self.control = control
        self.scene_cut = SceneCut() if scene_cut is True else scene_cut or None
        #: B-frames are referenced by no frame, so they take a coarser step (this factor).
        self.b_factor = b_factor
        self._own = isinstance(out, (str, Path))
        self._buffer = io.BytesIO() if out is None else None
        target = open(out, "wb") if isinstance(out, (str, Path)) else out  # noqa: SIM115
        self._out: BinaryIO = target if target is not None else self._buffer  # type: ignore[assignment]
        self._writer: ContainerWriter | None = None
        self._header: fmt.Header | None = None
        self._index = array("Q")  # size << 2 | bi << 1 | key of every frame written, in stream order
        self._numbers = array("Q")  # display number of every frame written, in stream order
        self._first = 0
        self._reference: U8 | None = None  # the last anchor (I or P frame) as decoded
        self._prior: NDArray[np.int32] | None = None  # the last P-frame's field
        self._pending: list[tuple[int, U8]] = []  # frames waiting for their anchor (at most bframes + 1)
        self._last_source: U8 | None = None
        self._key_number = 0
        self._seen = 0
        self._world: World | None = None
        self.closed = False
        #: Squared error of every frame written (the encoder knows it; a few bytes a frame).
        self.mse = array("d")
        #: Seconds spent in each stage (by system name) over all frames, for benchmarks.
        self.timings: dict[str, float] = {}

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        elif self._own:
            self._out.close()

    # -- writing --------------------------------------------------------------------------------
    def _start(self, img: U8) -> None:
        h, w, c = img.shape
        if h * w > self.config.runtime.max_pixels:
            limit = self.config.runtime.max_pixels
            raise VaeransError(f"frames of {h}x{w} pixels are over [runtime] max_pixels={limit}")
        self._header = fmt.Header(h, w, c, self.mode, self.max_error, self.gop, *self.fps)
        self._writer = ContainerWriter(self._out)
        self._writer.section("sequence", fmt.pack_header(self._header))
        if self.names:
            self._writer.section("frame-names", self.names.encode())
        self._writer.section("pipeline", pack_pipeline(self.stages))
        if self.bframes:
            self._writer.section("b-pipeline", pack_pipeline(self.bstages))
        self._first = self._writer.tell()
        self._world = frame_world(self._header, self.config)

    def write(self, frame: Any) -> None:
        """Code one frame (HxWx3 uint8 array or PIL image; every frame of a sequence the same size)."""
        if self.closed:
            raise VaeransError("this sequence writer is closed")
        img = to_rgb_uint8(frame)
        if self._header is None:
            self._start(img)
        assert self._header is not None and self._writer is not None
        if img.shape != (self._header.height, self._header.width, self._header.channels):
            raise VaeransError(f"frame {len(self._index)} is {img.shape[1]}x{img.shape[0]}, the sequence is "
                               f"{self._header.width}x{self._header.height}")
        number = self._seen
        self._seen += 1
        if self._last_source is None:
            self._code(img, number, "key")
        elif number - self._key_number >= self.gop or self._is_cut(img, number):
            self._flush()
            self._code(img, number, "key")
        else:
            self._pending.append((number, img))
            if len(self._pending) > self.bframes:
                self._flush()
        self._last_source = img

    def _new_frame(self, img: U8, number: int) -> tuple[World, int]:
        world = self._world
        assert world is not None
        collect_timings(world, self.timings)
        eid = world.spawn(RGB(ref=world.arena.copy_in(img)), FrameMeta(number=number, height=img.shape[0],
                                                                          width=img.shape[1]))
        return world, eid

    def _is_cut(self, img: U8, number: int) -> bool:
        """Whether the scene-cut stage finds ``img`` unpredictable from the previous source frame."""
        if self.scene_cut is None:
            return False
        assert self._last_source is not None
        world, eid = self._new_frame(img, number)
        world.add_component(eid, Reference(ref=world.arena.copy_in(self._last_source)))
        (world.pipe(eid) | self.scene_cut).run()
        score = world.get_component(eid, CutScore)
        if score.cut:
            log.info("frame %d: scene cut (score %.2f), new keyframe", number, score.score)
        return score.cut

    def _flush(self) -> None:
        """Code the waiting frames: the last as a P-frame (an anchor), then the others as B-frames."""
        if not self._pending:
            return
        past = self._reference
        number, img = self._pending[-1]
        future = self._code(img, number, "p")
        for number, img in self._pending[:-1]:
            self._code(img, number, "b", past=past, future=future)
        self._pending = []

    def _code(self, img: U8, number: int, kind: str, past: U8 | None = None, future: U8 | None = None) -> U8:
        """Code one frame as a keyframe, P-frame or B-frame and write its section; returns its decoding."""
        assert self._writer is not None
        world, eid = self._new_frame(img, number)
        step = None
        if kind == "key":
            body, recon = self._keyframe(world, eid)
            self._key_number = number
        elif kind == "p":
            assert self._reference is not None
            world.add_component(eid, Reference(ref=world.arena.copy_in(self._reference)))
            if self._prior is not None:
                world.add_component(eid, PriorMotion(ref=world.arena.copy_in(self._prior), block=1, subpel=1))
            body, recon, step = self._inter(world, eid, self.stages, 1.0)
            self._prior = (np.array(world.view(world.get_component(eid, MotionField).ref), copy=True)
                           if world.has_component(eid, MotionField) else None)
        else:
            assert past is not None and future is not None
            world.add_component(eid, Reference(ref=world.arena.copy_in(past)))
            world.add_component(eid, FutureReference(ref=world.arena.copy_in(future)))
            body, recon, step = self._inter(world, eid, self.bstages, self.b_factor)
        key, bi = kind == "key", kind == "b"
        image = key and self.key_coder == "image"
        crc = zlib.crc32(np.ascontiguousarray(recon).tobytes())
        section = fmt.pack_frame_info(number, key, image, body, crc, bi) + body
        size = self._writer.section("frame", section)
        self._index.append(size << 2 | int(bi) << 1 | int(key))
        self._numbers.append(number)
        mse = _mse(img, recon)
        self.control.update(FrameStats(key, size * 8, mse, img.shape[0] * img.shape[1], step, bi))
        self.mse.append(mse)
        if not bi:
            self._reference = np.array(recon, copy=True)
        return recon

    def _keyframe(self, world: World, eid: int) -> tuple[bytes, U8]:
        """A keyframe's sections (an image stream's, or an intra-coded residual stage's) and its decoding."""
        self._prior = None
        if self.key_coder == "image":
            from vaerans_ecs.api import compress, decompress

            img = world.view(world.get_component(eid, RGB).ref)
            if self.mode is fmt.Mode.LOSSY:
                rate = self.control.keyframe()
                stream = compress(img, rate.get("quality"), self.model, target_bpp=rate.get("target_bpp"),
                                  config=self.config)
            else:
                stream = compress(img, lossless=self.mode is fmt.Mode.LOSSLESS, max_error=self.max_error or None,
                                  config=self.config)
            # lossless keyframes decode to the source by the image coder's guarantee
            recon = np.array(img if self.mode is fmt.Mode.LOSSLESS else decompress(stream, config=self.config),
                             copy=True)
            return pack_sections(unpack_container(stream)), recon
        stage: System = PixelResidual(max_error=self.max_error)
        if self.mode is fmt.Mode.LOSSY:
            stage = next((s for s in self.stages if isinstance(s, TransformResidual)), TransformResidual())
            world.add_component(eid, CodingParams(step=self.control.key_step()))
        (world.pipe(eid) | stage).run()
        recon = np.array(world.view(world.get_component(eid, ReconRGB).ref), copy=True)
        sections = Sections()
        sections.add("pipeline", pack_pipeline([stage]))
        data = stage.stream_data(world, eid)
        if data is not None:
            sections.add(stage.data_section, data)
        return pack_sections(sections), recon

    def _inter(self, world: World, eid: int, stages: Sequence[System],
               scale: float) -> tuple[bytes, U8, float | None]:
        """An inter frame's sections (the stages' data), its reconstruction and its step."""
        (world.pipe(eid) | self.control).run()
        step = world.get_component(eid, CodingParams).step * scale
        world.add_component(eid, CodingParams(step=step))
        pipe = world.pipe(eid)
        for stage in stages:
            pipe = pipe | stage
        pipe.run()
        sections = Sections()
        for stage in stages:
            data = stage.stream_data(world, eid)
            if data is not None:
                sections.add(stage.data_section, data)
        recon = np.array(world.view(world.get_component(eid, ReconRGB).ref), copy=True)
        return pack_sections(sections), recon, step

    def close(self) -> None:
        """Write the frame index and the checksum (and close a file this writer opened)."""
        if self.closed:
            return
        if self._writer is None:
            raise VaeransError("a sequence needs at least one frame")
        self._flush()
        at = self._writer.tell()
        entries = [(v >> 2, bool(v & 1), bool(v & 2), n) for v, n in zip(self._index, self._numbers, strict=True)]
        self._writer.section("frame-index", fmt.pack_index(self._first, entries))
        self._writer.section("index-locator", fmt.pack_locator(at))
        self._writer.close()
        self.closed = True
        release_caches()
        if self._world is not None:
            collect_timings(self._world, self.timings)
        if self._own:
            self._out.close()

    @property
    def frames(self) -> int:
        """Frames coded so far."""
        return len(self._index)

    @property
    def keyframes(self) -> list[int]:
        """Display numbers of the keyframes coded so far."""
        return sorted(n for v, n in zip(self._index, self._numbers, strict=True) if v & 1)

    @property
    def frame_bytes(self) -> list[int]:
        """Bytes of every coded frame's section, in display order."""
        return [v >> 2 for _, v in sorted(zip(self._numbers, self._index, strict=True))]

    def getvalue(self) -> bytes:
        """The whole stream (writers made without ``out`` only, after :meth:`close`)."""
        if self._buffer is None or not self.closed:
            raise VaeransError("getvalue() needs a closed writer that was made without an output file")
        return self._buffer.getvalue()


def compress_sequence(
    frames: Iterable[Any],
    *,
    quality: float | None = None,
    target_bpp: float | None = None,
    lossless: bool = False,
    max_error: int = 0,
    gop: int = DEFAULT_GOP,
    config: Config | None = None,
    **options: Any,
) -> bytes:
    """Compress an iterable of frames (arrays or PIL images of one size) to one sequence stream."""
    with SequenceWriter(quality=quality, target_bpp=target_bpp, lossless=lossless, max_error=max_error, gop=gop,
                        config=config, **options) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.getvalue()
