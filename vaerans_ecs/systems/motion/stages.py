"""Inter-frame stages: motion search, motion compensation, and the two residual coders.

Frames are entities. An inter frame's entity holds its source (``RGB``, encoder only), the
decoded previous frame (:class:`Reference`) and, when the previous frame was an inter frame, that
frame's field (:class:`PriorMotion`: the vector coder's context). The stages run in this order
in both directions: :class:`BlockMotion` (encoder: search; decoder: nothing, its vectors were
loaded from the stream), :class:`MotionCompensate` (the same in both directions) and a residual
coder, :class:`TransformResidual` (lossy, the wavelet transform coder) or
:class:`PixelResidual` (lossless or l-infinity bounded, the pixel coder with the prediction as
its base). The residual coders make the reconstruction in the encoder too (closed loop), so the
next frame is predicted from exactly what the decoder will have. A frame without a
:class:`Prediction` is coded on its own (intra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB, ReconRGB
from vaerans_ecs.core.batching import parse_mode
from vaerans_ecs.core.byteio import ByteReader, ByteWriter
from vaerans_ecs.core.container import register_section
from vaerans_ecs.core.system import Mode, System, register_system
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError
from vaerans_ecs.systems.motion.compensate import FILTERS, predict
from vaerans_ecs.systems.motion.compensate import clear_cache as _clear_planes
from vaerans_ecs.systems.motion.components import (
    CodingParams,
    FrameCode,
    FrameMeta,
    FutureReference,
    MotionField,
    Prediction,
    Reference,
)
from vaerans_ecs.systems.motion.search import LumaPyramid, estimate_motion, luma, luma_pyramid, pad_to_blocks
from vaerans_ecs.systems.motion.search import clear_cache as _clear_pyramids
from vaerans_ecs.systems.motion.vectors import decode_vectors, encode_vectors
from vaerans_ecs.systems.residual.pixel import MAX_ERROR, decode_pixels, encode_pixels
from vaerans_ecs.systems.residual.transform import (
    MAX_STEP,
    MIN_STEP,
    decode_transform,
    encode_transform,
    encode_transform_recon,
)

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import StreamContext
    from vaerans_ecs.core.world import World

__all__ = [
    "ROLES",
    "BiCompensate",
    "BiMotion",
    "BlockMotion",
    "FutureMotion",
    "MotionCompensate",
    "PixelResidual",
    "PriorMotion",
    "TransformResidual",
    "frame_shape",
    "release_caches",
    "role_of",
]

#: What a sequence stage does, in the order an inter frame runs them (``sequence_role``).
ROLES = ("motion", "compensate", "residual")


def role_of(stage: System) -> str | None:
    """The ``sequence_role`` of a stage (None: not a sequence stage)."""
    role = getattr(stage, "sequence_role", None)
    return role if role in ROLES else None

U8 = NDArray[np.uint8]
I32 = NDArray[np.int32]

register_section(0x12, "motion", "BlockMotion: a frame's motion vectors")
register_section(0x13, "residual", "the residual coder of a sequence frame (TransformResidual, PixelResidual)")


class PriorMotion(MotionField):
    """The motion field of the previous frame (context of the vector coder), when it had one."""


class FutureMotion(MotionField):
    """A B-frame's vectors into its :class:`FutureReference`."""


def release_caches() -> None:
    """Drop what the motion stages keep of recent references (a sequence coder calls it when done)."""
    _clear_pyramids()
    _clear_planes()


def frame_shape(world: World, eid: int) -> tuple[int, int, int]:
    """(H, W, C) of a frame entity: its :class:`FrameMeta`, else its source or reference."""
    if world.has_component(eid, FrameMeta):
        meta = world.get_component(eid, FrameMeta)
        return meta.height, meta.width, meta.channels
    for ctype in (RGB, Reference):
        if world.has_component(eid, ctype):
            shape = world.get_component(eid, ctype).ref.shape  # type: ignore[attr-defined]
            return int(shape[0]), int(shape[1]), int(shape[2])
    raise VaeransError(f"frame entity {eid} has no image component")


def _view(world: World, eid: int, ctype: type[Component]) -> NDArray[Any]:
    return world.view(world.get_component(eid, ctype).ref)  # type: ignore[attr-defined]


def _filter_setting(value: Any, subpel: int) -> str:
    if value not in FILTERS:
        raise ConfigError(f"filter must be one of {', '.join(FILTERS)}, got {value!r}")
    if value == "sharp" and subpel not in (1, 2, 4):
        raise ConfigError(f"the sharp filter supports subpel 1, 2 and 4, not {subpel}")
    return str(value)


def _int_setting(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


@register_system
class BlockMotion(System):
    """RGB + Reference -> MotionField: hierarchical block matching with sub-pel refinement.

    ``block`` (8..64, a power of two) and ``subpel`` (1, 2, 4 or 8) shape the field; ``radius``
    is the full-search range at the coarsest of ``levels`` pyramid levels; vector bits are
    weighed against SAD by ``max(lam, lam_step * step)``, ``step`` being the frame's residual
    quantiser step (:class:`CodingParams`). Streams record ``block``, ``subpel`` and ``reach`` (the largest vector
    component in pixels, which the decoder checks).
    """

    name: ClassVar[str] = "BlockMotion"
    sequence_role: ClassVar[str] = "motion"
    config_fields: ClassVar[tuple[str, ...]] = (
        "block", "subpel", "reach", "levels", "radius", "lam", "lam_step", "filter", "mode")
    stream_fields: ClassVar[tuple[str, ...] | None] = ("block", "subpel", "reach")
    stream_code: ClassVar[int] = 32
    data_section: ClassVar[str] = "motion"
    data_required: ClassVar[bool] = True

    def __init__(self, block: int = 16, subpel: int = 4, reach: int = 0, levels: int = 2, radius: int = 8,
                 lam: int = 4, lam_step: float = 1.0, filter: str = "sharp",
                 mode: Mode | str = Mode.FORWARD) -> None:
        self.block = _int_setting("block", block, 4, 64)
        if self.block & (self.block - 1):
            raise ConfigError(f"block must be a power of two, got {block}")
        self.subpel = _int_setting("subpel", subpel, 1, 8)
        if self.subpel not in (1, 2, 4, 8):
            raise ConfigError(f"subpel must be 1, 2, 4 or 8, got {subpel}")
        self.levels = _int_setting("levels", levels, 0, 4)
        self.radius = _int_setting("radius", radius, 1, 64)
        self.lam = _int_setting("lam", lam, 0, 1 << 16)
        if not isinstance(lam_step, int | float) or not 0 <= lam_step <= 64:
            raise ConfigError(f"lam_step must be in [0, 64], got {lam_step!r}")
        self.lam_step = float(lam_step)
        self.filter = _filter_setting(filter, self.subpel)
        bound = (self.radius + 1) << self.levels
        self.reach = _int_setting("reach", reach, 0, 4096) or bound
        self.mode = parse_mode(mode)

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB, Reference) if self.mode is Mode.FORWARD else (MotionField,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (MotionField,)

    def inverse(self) -> BlockMotion:
        cfg = {k: v for k, v in self.get_config().items() if k not in ("id", "mode")}
        return type(self)(**cfg, mode=Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)

    def _lam(self, world: World, eid: int) -> int:
        """Vector bits against SAD: coarser residual steps make vectors matter less."""
        step = world.get_component(eid, CodingParams).step if world.has_component(eid, CodingParams) else 0.0
        return max(self.lam, round(self.lam_step * step))

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Blocks per column and per row of a frame of this size."""
        return -(-height // self.block), -(-width // self.block)

    def run(self, world: World, eids: Sequence[int]) -> None:
        if self.mode is Mode.INVERSE:
            return  # the decoder's vectors were loaded from the stream
        for eid in eids:
            cur = LumaPyramid(pad_to_blocks(luma(_view(world, eid, RGB)), self.block))
            ref = luma_pyramid(_view(world, eid, Reference), self.block)  # shared with the other searches into it
            lam = self._lam(world, eid)
            world.add_component(eid, self._field(world, MotionField, cur, ref, lam))

    def _field(self, world: World, kind: type[MotionField], cur: LumaPyramid, ref: LumaPyramid,
               lam: int) -> MotionField:
        mv = estimate_motion(cur, ref, block=self.block, levels=self.levels, radius=self.radius,
                             subpel=self.subpel, lam=lam, taps=self.filter)
        limit = self.reach * self.subpel
        mv = np.clip(mv, -limit, limit).astype(np.int32)
        return kind(ref=world.arena.copy_in(mv), block=self.block, subpel=self.subpel)

    def stream_data(self, world: World, eid: int) -> bytes:
        mv = _view(world, eid, MotionField)
        prior = _view(world, eid, PriorMotion) if world.has_component(eid, PriorMotion) else None
        return encode_vectors(mv, prior)

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        if data is None:
            raise BitstreamError("an inter frame lacks its motion vectors")
        ny, nx = self.grid(ctx.height, ctx.width)
        prior = _view(world, eid, PriorMotion) if world.has_component(eid, PriorMotion) else None
        mv = decode_vectors(data, ny, nx, self.reach * self.subpel, prior)
        world.add_component(eid, MotionField(ref=world.arena.copy_in(mv), block=self.block, subpel=self.subpel))

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        return {"stage": self.name, "block": self.block, "subpel": self.subpel, "reach": self.reach,
                "bytes": len(data or b"")}


@register_system
class BiMotion(BlockMotion):
    """RGB + Reference + FutureReference -> MotionField + FutureMotion: a B-frame's two fields.

    The same search as :class:`BlockMotion`, once into each reference; both fields go to the
    ``motion`` section (the first one's length, then the two vector payloads; the second field
    uses the first as its coding context).
    """

    name: ClassVar[str] = "BiMotion"
    stream_code: ClassVar[int] = 36
    bidirectional: ClassVar[bool] = True

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB, Reference, FutureReference) if self.mode is Mode.FORWARD else (MotionField, FutureMotion)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (MotionField, FutureMotion)

    def run(self, world: World, eids: Sequence[int]) -> None:
        if self.mode is Mode.INVERSE:
            return
        for eid in eids:
            cur = LumaPyramid(pad_to_blocks(luma(_view(world, eid, RGB)), self.block))  # one for both searches
            lam = self._lam(world, eid)
            for kind, ref_kind in ((MotionField, Reference), (FutureMotion, FutureReference)):
                ref = luma_pyramid(_view(world, eid, ref_kind), self.block)
                world.add_component(eid, self._field(world, kind, cur, ref, lam))

    def stream_data(self, world: World, eid: int) -> bytes:
        past = _view(world, eid, MotionField)
        first = encode_vectors(past)
        w = ByteWriter()
        w.varint(len(first))
        return bytes(w.buf) + first + encode_vectors(_view(world, eid, FutureMotion), past)

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        if data is None:
            raise BitstreamError("a B-frame lacks its motion vectors")
        ny, nx = self.grid(ctx.height, ctx.width)
        r = ByteReader(data, "B-frame motion")
        first = r.take(r.varint(r.remaining()))
        limit = self.reach * self.subpel
        past = decode_vectors(first, ny, nx, limit)
        future = decode_vectors(r.take(r.remaining()), ny, nx, limit, past)
        for kind, mv in ((MotionField, past), (FutureMotion, future)):
            world.add_component(eid, kind(ref=world.arena.copy_in(mv), block=self.block, subpel=self.subpel))


@register_system
class MotionCompensate(System):
    """Reference + MotionField -> Prediction (integer sub-pel with ``filter``; ``obmc`` blends block edges).

    ``filter`` is ``sharp`` (6-tap half-pel samples) or ``bilinear``; a ``sharp`` field must use
    1, 2 or 4 sub-pel steps. The search (:class:`BlockMotion`) should use the same filter.
    """

    name: ClassVar[str] = "MotionCompensate"
    sequence_role: ClassVar[str] = "compensate"
    config_fields: ClassVar[tuple[str, ...]] = ("obmc", "filter", "mode")
    stream_code: ClassVar[int] = 33

    def __init__(self, obmc: bool = True, filter: str = "sharp", mode: Mode | str = Mode.FORWARD) -> None:
        if not isinstance(obmc, bool):
            raise ConfigError(f"obmc must be true or false, got {obmc!r}")
        self.obmc = obmc
        self.filter = _filter_setting(filter, 1)
        self.mode = parse_mode(mode)

    def required_components(self) -> tuple[type[Component], ...]:
        return (Reference, MotionField)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Prediction,)

    def inverse(self) -> MotionCompensate:
        return MotionCompensate(self.obmc, self.filter, Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            field = world.get_component(eid, MotionField)
            ref = _view(world, eid, Reference)
            if self.filter == "sharp" and field.subpel not in (1, 2, 4):
                raise BitstreamError(f"the sharp filter cannot interpolate 1/{field.subpel} pixel vectors")
            out = predict(ref, world.view(field.ref), block=field.block, subpel=field.subpel, obmc=self.obmc,
                          shape=ref.shape[:2], taps=self.filter)
            world.add_component(eid, Prediction(ref=world.arena.copy_in(out)))


@register_system
class BiCompensate(MotionCompensate):
    """Reference + FutureReference + both fields -> Prediction: the rounded mean of the two predictions."""

    name: ClassVar[str] = "BiCompensate"
    stream_code: ClassVar[int] = 37
    bidirectional: ClassVar[bool] = True

    def required_components(self) -> tuple[type[Component], ...]:
        return (Reference, FutureReference, MotionField, FutureMotion)

    def inverse(self) -> BiCompensate:
        return BiCompensate(self.obmc, self.filter, Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            preds = []
            for field_kind, ref_kind in ((MotionField, Reference), (FutureMotion, FutureReference)):
                field = world.get_component(eid, field_kind)
                ref = _view(world, eid, ref_kind)
                if self.filter == "sharp" and field.subpel not in (1, 2, 4):
                    raise BitstreamError(f"the sharp filter cannot interpolate 1/{field.subpel} pixel vectors")
                preds.append(predict(ref, world.view(field.ref), block=field.block, subpel=field.subpel,
                                     obmc=self.obmc, shape=ref.shape[:2], taps=self.filter).astype(np.uint16))
            out = ((preds[0] + preds[1] + 1) >> 1).astype(np.uint8)
            world.add_component(eid, Prediction(ref=world.arena.copy_in(out)))


def _prediction(world: World, eid: int) -> U8 | None:
    return _view(world, eid, Prediction) if world.has_component(eid, Prediction) else None


class _Residual(System):
    """Shared parts of the residual coders: FrameCode in the stream, ReconRGB out."""

    data_section: ClassVar[str] = "residual"
    data_required: ClassVar[bool] = True
    sequence_role: ClassVar[str] = "residual"
    #: The l-infinity error the coder guarantees (None: lossy, no bound).
    bound: int | None = None

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB,) if self.mode is Mode.FORWARD else (FrameCode,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (FrameCode, ReconRGB) if self.mode is Mode.FORWARD else (ReconRGB,)

    def stream_data(self, world: World, eid: int) -> bytes:
        return world.get_component(eid, FrameCode).data

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        if data is None:
            raise BitstreamError(f"a frame lacks the data of its {self.name} stage")
        world.add_component(eid, FrameCode(data=data))

    def _store(self, world: World, eid: int, recon: U8) -> None:
        world.add_component(eid, ReconRGB(ref=world.arena.copy_in(np.ascontiguousarray(recon))))

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            pred = _prediction(world, eid)
            h, w, c = frame_shape(world, eid)
            if self.mode is Mode.FORWARD:
                img = _view(world, eid, RGB)
                data, recon = self.encode_recon(world, eid, img, pred)
                world.add_component(eid, FrameCode(data=data))
                self._store(world, eid, recon)
            else:
                data = world.get_component(eid, FrameCode).data
                self._store(world, eid, self.decode(data, (h, w, c), pred))

    @property
    def exact(self) -> bool:
        """Whether the reconstruction is the source itself (the encoder then skips decoding)."""
        return False

    def encode(self, world: World, eid: int, img: U8, pred: U8 | None) -> bytes:
        """The frame's residual payload."""
        raise NotImplementedError

    def encode_recon(self, world: World, eid: int, img: U8, pred: U8 | None) -> tuple[bytes, U8]:
        """The payload and the decoder's reconstruction (by default: decoded from the payload)."""
        data = self.encode(world, eid, img, pred)
        h, w, c = img.shape
        return data, img if self.exact else self.decode(data, (h, w, c), pred)

    def decode(self, data: bytes, shape: tuple[int, int, int], pred: U8 | None) -> U8:
        """The reconstruction from the payload and the prediction."""
        raise NotImplementedError


def _add_prediction(res: NDArray[np.float32], pred: U8 | None) -> U8:
    """Pixels from decoded (C, H, W) residual planes and the prediction."""
    out = np.moveaxis(res, 0, 2)
    if pred is not None:
        out = out + pred
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@register_system
class TransformResidual(_Residual):
    """RGB (- Prediction) -> FrameCode + ReconRGB with the wavelet transform coder (lossy).

    The quantiser step comes from the frame's :class:`CodingParams` (rate control), ``step``
    otherwise; the transform coder's stream records it (and ``levels``). ``chroma`` (step factor
    of the colour differences) and ``rdo`` (its rate-distortion quantiser's Lagrangian) are
    encoder choices.
    """

    name: ClassVar[str] = "TransformResidual"
    config_fields: ClassVar[tuple[str, ...]] = ("step", "levels", "chroma", "rdo", "mode")
    stream_fields: ClassVar[tuple[str, ...] | None] = ()
    stream_code: ClassVar[int] = 34

    def __init__(self, step: float = 32.0, levels: int = 4, chroma: float = 1.1, rdo: float = 0.1,
                 mode: Mode | str = Mode.FORWARD) -> None:
        if not isinstance(step, int | float) or not MIN_STEP <= float(step) <= MAX_STEP:
            raise ConfigError(f"step must be in [{MIN_STEP:g}, {MAX_STEP:g}], got {step!r}")
        self.step = float(step)
        self.levels = _int_setting("levels", levels, 0, 8)
        for name, value, hi in (("chroma", chroma, 8.0), ("rdo", rdo, 10.0)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= hi:
                raise ConfigError(f"{name} must be a number in [0, {hi:g}], got {value!r}")
        self.chroma, self.rdo = float(chroma), float(rdo)
        self.mode = parse_mode(mode)

    def inverse(self) -> TransformResidual:
        mode = Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD
        return TransformResidual(self.step, self.levels, self.chroma, self.rdo, mode)

    def _planes(self, world: World, eid: int, img: U8, pred: U8 | None) -> tuple[NDArray[np.float32], float]:
        step = world.get_component(eid, CodingParams).step if world.has_component(eid, CodingParams) else self.step
        res = img.astype(np.float32)
        if pred is not None:
            res -= pred
        return np.moveaxis(res, 2, 0), float(np.clip(step, MIN_STEP, MAX_STEP))

    def encode(self, world: World, eid: int, img: U8, pred: U8 | None) -> bytes:
        planes, step = self._planes(world, eid, img, pred)
        return encode_transform(planes, step, levels=self.levels, chroma=self.chroma, rdo=self.rdo)

    def encode_recon(self, world: World, eid: int, img: U8, pred: U8 | None) -> tuple[bytes, U8]:
        planes, step = self._planes(world, eid, img, pred)
        data, res = encode_transform_recon(planes, step, levels=self.levels, chroma=self.chroma, rdo=self.rdo)
        return data, _add_prediction(res, pred)

    def decode(self, data: bytes, shape: tuple[int, int, int], pred: U8 | None) -> U8:
        h, w, c = shape
        return _add_prediction(decode_transform(data, c, h, w), pred)


@register_system
class PixelResidual(_Residual):
    """RGB -> FrameCode + ReconRGB with the pixel coder, exact (``max_error=0``) or within ``max_error``.

    The prediction, when there is one, is the pixel coder's ``base``: its predictors and contexts
    use it, so a lossless inter frame costs what the prediction fails to explain.
    """

    name: ClassVar[str] = "PixelResidual"
    config_fields: ClassVar[tuple[str, ...]] = ("max_error", "mode")
    stream_code: ClassVar[int] = 35

    def __init__(self, max_error: int = 0, mode: Mode | str = Mode.FORWARD) -> None:
        self.max_error = _int_setting("max_error", max_error, 0, MAX_ERROR)
        self.bound = self.max_error
        self.mode = parse_mode(mode)

    def inverse(self) -> PixelResidual:
        return PixelResidual(self.max_error, Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)

    @property
    def exact(self) -> bool:
        return self.max_error == 0

    def encode(self, world: World, eid: int, img: U8, pred: U8 | None) -> bytes:
        return encode_pixels(np.ascontiguousarray(img), max_error=self.max_error, base=pred)

    def decode(self, data: bytes, shape: tuple[int, int, int], pred: U8 | None) -> U8:
        h, w, c = shape
        return decode_pixels(data, h, w, c, max_error=self.max_error, base=pred)
