"""The residual family's stages: ``Residual`` starts an enhancement layer, two coders end a layer.

* :class:`ComputeResidual` (registered as ``"Residual"``, kind RESIDUAL): source minus what the
  layers below decode to (``ReconRGB``), exact (int16, int32 for 16-bit pixels); its inverse adds
  the decoded residual back.
* :class:`TransformCode` (kind CODER): the lossy wavelet coder (:mod:`.transform`) of the source
  pixels (a base layer of its own) or of a residual.
* :class:`PixelCode` (kind CODER): the lossless / l-infinity bounded coder (:mod:`.pixel`) of the
  source, alone or over the decoded base (``residual=True``). Over a base its data starts with a
  CRC-32 of that base: a decoder whose base differs (another CPU, onnxruntime version or thread
  count can move a float VAE output by a level) refuses, rather than return pixels outside the
  promise.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB, ImageInfo, ReconRGB, Residual
from vaerans_ecs.components.quant import LayerBits
from vaerans_ecs.core.batching import parse_mode
from vaerans_ecs.core.container import register_section
from vaerans_ecs.core.system import Mode, StageKind, System, register_system
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import Geometry, StreamContext
    from vaerans_ecs.core.world import World

__all__ = ["MAX_ERROR", "TRANSFORM_CURVE", "PixelCode", "ComputeResidual", "TransformCode"]

register_section(0x08, "transform", "TransformCode: the lossy wavelet coder's bytes")
register_section(0x09, "pixels", "PixelCode: the lossless / near-lossless coder's bytes")

#: Largest l-infinity bound the pixel coder offers.
MAX_ERROR = 16
#: The transform coder's measured rate curve (``python -m vaerans_ecs.eval.curve transform``).
TRANSFORM_CURVE = Path(__file__).with_name("transform_rd.json")


def _view(world: World, eid: int, kind: type[RGB] | type[ReconRGB] | type[Residual]) -> npt.NDArray[Any]:
    return world.view(world.get_component(eid, kind).ref)


def _store(world: World, eid: int, array: npt.NDArray[Any], kind: type[ReconRGB] | type[Residual]) -> None:
    ref = world.alloc(array.shape, array.dtype)
    world.view(ref)[...] = array
    world.add_component(eid, kind(ref=ref))


def _pixel_dtype(bit_depth: int) -> type[np.uint8] | type[np.uint16]:
    return np.uint16 if bit_depth == 16 else np.uint8


@register_system
class ComputeResidual(System):
    """Forward: ``RGB - ReconRGB -> Residual`` (exact); inverse: ``ReconRGB + Residual -> ReconRGB``.

    The inverse rounds a float residual and clips to the pixel range of the base.
    """

    name: ClassVar[str] = "Residual"
    config_fields: ClassVar[tuple[str, ...]] = ("mode",)
    stream_code: ClassVar[int] = 9
    stage_kind: ClassVar[StageKind | None] = StageKind.RESIDUAL

    def __init__(self, mode: Mode | str = Mode.FORWARD) -> None:
        self.mode = parse_mode(mode)

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB, ReconRGB) if self.mode is Mode.FORWARD else (ReconRGB, Residual)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Residual,) if self.mode is Mode.FORWARD else (ReconRGB,)

    def inverse(self) -> System:
        return ComputeResidual(self.mode.opposite)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            base = _view(world, eid, ReconRGB)
            if self.mode is Mode.FORWARD:
                src = _view(world, eid, RGB)
                if src.shape != base.shape or src.dtype != base.dtype:
                    raise VaeransError(f"Residual: source {src.shape} {src.dtype} and base {base.shape} {base.dtype}")
                wide = np.int32 if src.dtype == np.uint16 else np.int16
                _store(world, eid, src.astype(wide) - base.astype(wide), Residual)
                continue
            res = _view(world, eid, Residual)
            if res.shape != base.shape:
                raise BitstreamError(f"Residual: decoded residual {res.shape} does not fit the base {base.shape}")
            total = base + (np.rint(res) if res.dtype.kind == "f" else res).astype(np.int64)
            top = np.iinfo(base.dtype).max
            _store(world, eid, np.clip(total, 0, top).astype(base.dtype), ReconRGB)


class _LayerCoder(System):
    """What both coders share: they code the source (a layer of its own) or a residual."""

    config_fields: ClassVar[tuple[str, ...]] = ("residual", "mode")
    stage_kind: ClassVar[StageKind | None] = StageKind.CODER
    data_required: ClassVar[bool] = True

    def __init__(self, residual: bool = False, mode: Mode | str = Mode.FORWARD) -> None:
        if not isinstance(residual, bool):
            raise ConfigError(f"{type(self).__name__}: residual must be a bool, got {residual!r}")
        self.residual = residual
        self.mode = parse_mode(mode)

    def required_components(self) -> tuple[type[Component], ...]:
        if self.mode is Mode.INVERSE:
            return (LayerBits, ImageInfo, ReconRGB) if self.residual else (LayerBits, ImageInfo)
        return (Residual, ReconRGB) if self.residual else (RGB,)

    def produced_components(self) -> tuple[type[Component], ...]:
        if self.mode is Mode.FORWARD:
            return (LayerBits,)
        return (Residual,) if self.residual else (ReconRGB,)

    def stream_data(self, world: World, eid: int) -> bytes:
        return world.get_component(eid, LayerBits).data

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        world.add_component(eid, LayerBits(data=data or b""))

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        return {**super().stream_settings(data, ctx), "bytes": len(data or b"")}

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        if geom.bands or geom.source:
            raise BitstreamError(f"{self.name} codes pixels, not this stream's {geom.source}")
        return geom


@register_system
class TransformCode(_LayerCoder):
    """Lossy wavelet coding (:func:`.transform.encode_transform`) at quantiser ``step`` (pixel units).

    8-bit sources only; the step is recorded in the coder's own header, not in the pipeline.
    """

    name: ClassVar[str] = "TransformCode"
    config_fields: ClassVar[tuple[str, ...]] = ("step", "residual", "mode")
    stream_fields: ClassVar[tuple[str, ...] | None] = ("residual",)
    stream_code: ClassVar[int] = 7
    data_section: ClassVar[str] = "transform"

    def __init__(self, step: float = 8.0, residual: bool = False, mode: Mode | str = Mode.FORWARD) -> None:
        super().__init__(residual, mode)
        self.step = float(step)

    def inverse(self) -> System:
        return TransformCode(self.step, self.residual, self.mode.opposite)

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        if ctx.bit_depth != 8:
            raise BitstreamError("TransformCode codes 8-bit images only")
        return super().stream_shape(geom, ctx)

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        from vaerans_ecs.systems.residual.transform_format import unpack
        from vaerans_ecs.systems.residual.transform_wavelet import WAVELETS

        g = ctx.geometry
        header = unpack(data or b"", (g.channels, g.height, g.width, g.channels >= 3)).header
        return {
            **super().stream_settings(data, ctx), "step": header.step, "levels": header.levels,
            "wavelet": WAVELETS[header.wavelet],
        }

    def run(self, world: World, eids: Sequence[int]) -> None:
        from vaerans_ecs.systems.residual.transform import decode_transform, encode_transform

        for eid in eids:
            if self.mode is Mode.FORWARD:
                src = _view(world, eid, Residual if self.residual else RGB)
                if src.dtype == np.uint16:
                    raise VaeransError("TransformCode codes 8-bit images only")
                planes = np.ascontiguousarray(np.moveaxis(src, -1, 0), dtype=np.float32)
                world.add_component(eid, LayerBits(data=encode_transform(planes, self.step)))
                continue
            info = world.get_component(eid, ImageInfo)
            planes = decode_transform(world.get_component(eid, LayerBits).data, info.channels, info.height, info.width)
            pixels = np.moveaxis(planes, 0, -1)
            if self.residual:
                _store(world, eid, np.ascontiguousarray(pixels, dtype=np.float32), Residual)
            else:
                _store(world, eid, np.clip(np.rint(pixels), 0, 255).astype(np.uint8), ReconRGB)


def _base_check(base: npt.NDArray[Any]) -> bytes:
    return struct.pack("<I", zlib.crc32(np.ascontiguousarray(base).tobytes()))


@register_system
class PixelCode(_LayerCoder):
    """Lossless (``max_error=0``) or l-infinity bounded (``|x - x'| <= max_error``) pixel coding."""

    name: ClassVar[str] = "PixelCode"
    config_fields: ClassVar[tuple[str, ...]] = ("max_error", "residual", "mode")
    stream_fields: ClassVar[tuple[str, ...] | None] = ("max_error", "residual")
    stream_code: ClassVar[int] = 8
    data_section: ClassVar[str] = "pixels"

    def __init__(self, max_error: int = 0, residual: bool = False, mode: Mode | str = Mode.FORWARD) -> None:
        super().__init__(residual, mode)
        if isinstance(max_error, bool) or not isinstance(max_error, int) or not 0 <= max_error <= MAX_ERROR:
            raise ConfigError(f"PixelCode: max_error must be an integer in 0..{MAX_ERROR}, got {max_error!r}")
        self.max_error = max_error

    def inverse(self) -> System:
        return PixelCode(self.max_error, self.residual, self.mode.opposite)

    def run(self, world: World, eids: Sequence[int]) -> None:
        from vaerans_ecs.systems.residual.pixel import decode_pixels, encode_pixels

        for eid in eids:
            if self.mode is Mode.FORWARD:
                if self.residual:
                    base = _view(world, eid, ReconRGB)
                    img = (base.astype(np.int64) + _view(world, eid, Residual)).astype(base.dtype)
                    data = _base_check(base) + encode_pixels(img, max_error=self.max_error, base=base)
                else:
                    data = encode_pixels(np.ascontiguousarray(_view(world, eid, RGB)), max_error=self.max_error)
                world.add_component(eid, LayerBits(data=data))
                continue
            info = world.get_component(eid, ImageInfo)
            data = world.get_component(eid, LayerBits).data
            shape = (info.height, info.width, info.channels)
            if not self.residual:
                out = decode_pixels(data, *shape, bit_depth=info.bit_depth, max_error=self.max_error)
                _store(world, eid, out.astype(_pixel_dtype(info.bit_depth), copy=False), ReconRGB)
                continue
            base = _view(world, eid, ReconRGB)
            if data[:4] != _base_check(base):
                raise BitstreamError(
                    "the base layer decodes differently here than where the stream was made (the VAE's float "
                    "output depends on the CPU, onnxruntime version and threads): exact decoding is impossible "
                    "here; decode where it was encoded, or re-encode without a base"
                )
            out = decode_pixels(data[4:], *shape, bit_depth=info.bit_depth, max_error=self.max_error, base=base)
            _store(world, eid, out.astype(np.int32) - base.astype(np.int32), Residual)
