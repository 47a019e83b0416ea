"""Image streams: what the sections of a v2 container say, and the v1 layout read the same way.

An image stream holds the ``image`` section (size, channels, bit depth), the ``pipeline``
section of its base layer, the data sections of that layer's stages, one nested ``layer``
section per enhancement layer (its own ``pipeline`` and stage data), and ancillary metadata
(``icc``, ``exif``, ``mode``). Reading validates everything the header says before any stage
sees payload bytes: the declared size against ``max_pixels``, each layer's pipeline against what
an encoder can build (:func:`check_layer`), and the tensor geometry every stage makes
(:meth:`System.stream_shape`), so the work before the payloads are checked is O(header).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB, ReconRGB
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.byteio import ByteReader, ByteWriter
from vaerans_ecs.core.container import (
    ANCILLARY,
    SECTION_TYPES,
    Sections,
    pack_container,
    pack_sections,
    read_sections,
    register_section,
    section_type,
    stream_version,
    unpack_container,
)
from vaerans_ecs.core.system import KIND_LIMITS, SYSTEMS, Mode, StageKind, System, system_by_code
from vaerans_ecs.errors import BitstreamError, ModelError, RegistryError, VaeransError
from vaerans_ecs.plugins import GROUPS, missing_plugin_hint, providers_of

if TYPE_CHECKING:
    from vaerans_ecs.config import Config
    from vaerans_ecs.core.world import World

__all__ = [
    "MAX_LAYERS",
    "MAX_STAGES",
    "METADATA",
    "Geometry",
    "ImageStream",
    "Layer",
    "StreamContext",
    "check_image_size",
    "check_layer",
    "geometry_check",
    "pack_image_stream",
    "read_image_stream",
    "read_stage",
    "stage_inputs",
    "write_stage",
]

#: Most stages one layer may hold, and most layers one stream may hold.
MAX_STAGES = 8
MAX_LAYERS = 4
_MAX_FIELDS = 16

register_section(0x01, "image", "container")
register_section(0x02, "pipeline", "container")
register_section(0x06, "stage", "container (data of stages without a section type of their own)", repeatable=True)
register_section(0x07, "layer", "container (an enhancement layer: nested sections)", repeatable=True)
register_section(ANCILLARY | 0x01, "icc", "metadata: the source's ICC profile")
register_section(ANCILLARY | 0x02, "exif", "metadata: the source's EXIF block")
register_section(ANCILLARY | 0x03, "mode", "metadata: the source's image mode (e.g. 'L', 'P', 'RGBA')")
register_section(ANCILLARY | 0x04, "plugins", "container: the distributions providing the plugins the stream names")

#: The ancillary metadata sections an image stream may carry.
METADATA: tuple[str, ...] = ("icc", "exif", "mode")
_MAX_METADATA = 1 << 20


@dataclass(frozen=True)
class Geometry:
    """Tensor geometry between stages: ``channels`` x ``height`` x ``width``, and bands once made."""

    channels: int
    height: int
    width: int
    bands: tuple[Band, ...] = ()
    #: Name of the component the stages so far produce ("" for the source pixels).
    source: str = ""


def geometry_check(geom: Geometry) -> int:
    """One byte that a stage can store to bind its data to the geometry it was made for.

    Why: a stream whose size fields were corrupted (CRC recomputed) is refused at once, before a
    decoder produces the symbols of a size its payload never described.
    """
    sizes = [(b.h, b.w) for b in geom.bands] or [(geom.height, geom.width)]
    text = f"{geom.channels}:{geom.height}:{geom.width}:" + ",".join(f"{h}x{w}" for h, w in sizes)
    return zlib.crc32(text.encode()) & 0xFF


@dataclass(frozen=True)
class StreamContext:
    """What a stage may know while its stream data is read: the image and its input geometry."""

    height: int
    width: int
    channels: int
    bit_depth: int
    config: Config
    geometry: Geometry
    layer: int = 0
    #: Bitstream version being read (stage data formats may differ between versions).
    version: int = 2

    def at(self, geometry: Geometry) -> StreamContext:
        """The same context for a stage whose input is ``geometry``."""
        return replace(self, geometry=geometry)


@dataclass(frozen=True)
class Layer:
    """One layer of a stream: its stages (encode order), their data and their input geometries."""

    stages: tuple[System, ...]
    data: tuple[bytes | None, ...]
    inputs: tuple[Geometry, ...]

    def decoder(self) -> list[System]:
        """The systems that decode this layer, in run order."""
        return [s.inverse() for s in reversed(self.stages)]


@dataclass(frozen=True)
class ImageStream:
    """A parsed, validated image stream (no payload decoded yet)."""

    version: int
    height: int
    width: int
    channels: int
    bit_depth: int
    layers: tuple[Layer, ...]
    metadata: dict[str, bytes] = field(default_factory=dict)
    section_bytes: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0

    def context(self, config: Config, layer: int = 0) -> StreamContext:
        """A context for reading the stages of ``layer``."""
        return StreamContext(
            self.height, self.width, self.channels, self.bit_depth, config,
            Geometry(self.channels, self.height, self.width), layer, self.version,
        )


# -- stages in a pipeline section ---------------------------------------------------------------
def write_stage(w: ByteWriter, stage: System) -> None:
    """A stage as a pipeline records it: its code (or 0 and its name), then its stream fields."""
    w.u8(stage.stream_code)
    if stage.stream_code == 0:
        w.string(stage.name)
    fields = stage.stream_field_names()
    w.u8(len(fields))
    cfg = stage.get_config()
    for name in fields:
        w.value(cfg[name])


Providers = dict[tuple[str, str], str]


def read_stage(r: ByteReader, providers: Providers | None = None) -> System:
    """Rebuild a stage from :func:`write_stage` bytes through the registry alone.

    ``providers`` (from the stream's ``plugins`` section) name the distribution to install when
    the stage, or a coder or model it names, is missing.
    """
    code = r.u8()
    if code:
        cls = system_by_code(code)
        if cls is None:
            raise BitstreamError(f"unknown stage code {code} in the stream's pipeline")
    else:
        name = r.string()
        if name not in SYSTEMS:
            hint = missing_plugin_hint("systems", name, providers)
            raise BitstreamError(f"stream needs stage {name!r}, which is not registered{hint}")
        cls = SYSTEMS.get(name)
    n_fields = r.u8()
    names = cls.stream_field_names()
    if n_fields != len(names) or n_fields > _MAX_FIELDS:
        raise BitstreamError(f"stage {cls.name!r}: the stream records {n_fields} settings, expected {len(names)}")
    values = [r.value() for _ in range(n_fields)]
    try:
        return cls.from_config({"id": cls.name, **dict(zip(names, values, strict=True))})
    except BitstreamError:
        raise
    except RegistryError as exc:  # a coder or model the stage names is missing
        hint = missing_plugin_hint(exc.family, exc.name, providers) if exc.family else ""
        raise BitstreamError(f"stage {cls.name!r}: {exc}{hint}") from None
    except Exception as exc:  # a forged setting must not escape as TypeError & co.
        raise BitstreamError(f"invalid settings for stage {cls.name!r} in the stream: {exc}") from None


def _pack_pipeline(stages: Sequence[System]) -> bytes:
    """The stages one after the other (the section's length delimits the list)."""
    w = ByteWriter()
    for stage in stages:
        write_stage(w, stage)
    return bytes(w.buf)


def _read_pipeline(body: bytes, providers: Providers) -> tuple[System, ...]:
    r = ByteReader(body, "pipeline section")
    stages: list[System] = []
    while r.remaining():
        if len(stages) == MAX_STAGES:
            raise BitstreamError(f"a layer holds at most {MAX_STAGES} stages")
        stages.append(read_stage(r, providers))
    return tuple(stages)


# -- what encoders can build -------------------------------------------------------------------
def _has(avail: set[type[Component]], needed: type[Component]) -> bool:
    return any(issubclass(a, needed) for a in avail)


def check_layer(stages: Sequence[System], layer: int) -> None:
    """Refuse a layer no encoder makes: wrong order, repeats, a stage without input, no coder.

    Stages are listed in non-decreasing :class:`StageKind` with at most :data:`KIND_LIMITS` of a
    kind and no stage twice; each must find its inputs among what the source (``RGB``, plus the
    layers below as ``ReconRGB`` for an enhancement layer) and the earlier stages provide, and the
    layer ends with a coder. Enhancement layers start with a residual stage.
    """
    if not 1 <= len(stages) <= MAX_STAGES:
        raise BitstreamError(f"a layer holds 1..{MAX_STAGES} stages, got {len(stages)}")
    counts: dict[StageKind, int] = {}
    seen: set[str] = set()
    last = StageKind.RESIDUAL
    avail: set[type[Component]] = {RGB} if layer == 0 else {RGB, ReconRGB}
    for stage in stages:
        kind = stage.stage_kind
        if kind is None:
            raise BitstreamError(f"{stage.name} is not a stream stage")
        if stage.mode is not Mode.FORWARD:
            raise BitstreamError(f"{stage.name} is recorded in {stage.mode.value} mode; streams record encoders")
        if kind < last:
            raise BitstreamError(f"{stage.name} ({kind.name.lower()}) cannot follow a {last.name.lower()} stage")
        if stage.name in seen:
            raise BitstreamError(f"stage {stage.name} appears twice in one layer")
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] > KIND_LIMITS[kind]:
            raise BitstreamError(f"a layer holds at most {KIND_LIMITS[kind]} {kind.name.lower()} stage(s)")
        seen.add(stage.name)
        last = kind
        missing = [c.__name__ for c in stage.required_components() if not _has(avail, c)]
        choices = stage.input_choices()
        if choices and not any(_has(avail, c) for c in choices):
            missing.append(" or ".join(c.__name__ for c in choices))
        if missing:
            raise BitstreamError(f"{stage.name} has no input in this pipeline (needs {', '.join(missing)})")
        avail.update(stage.produced_components())
    if (layer == 0) == (stages[0].stage_kind == StageKind.RESIDUAL):
        raise BitstreamError("enhancement layers (and only they) start with a residual stage")
    if stages[-1].stage_kind != StageKind.CODER:
        raise BitstreamError("a layer must end with an entropy coder")


# -- plugin providers ---------------------------------------------------------------------------
_FAMILIES = tuple(GROUPS)


def _pack_providers(providers: Providers) -> bytes:
    w = ByteWriter()
    w.varint(len(providers))
    for (family, name), dist in sorted(providers.items()):
        w.u8(_FAMILIES.index(family))
        w.string(name)
        w.string(dist)
    return bytes(w.buf)


def _read_providers(body: bytes | None) -> Providers:
    """The ``plugins`` section; being ancillary, a malformed one is ignored rather than fatal."""
    if body is None:
        return {}
    try:
        r = ByteReader(body, "plugins section")
        out: Providers = {}
        for _ in range(r.varint(64)):
            family = r.u8()
            name, dist = r.string(), r.string()
            if family < len(_FAMILIES):
                out[(_FAMILIES[family], name)] = dist
        return out
    except BitstreamError:
        return {}


# -- writing -----------------------------------------------------------------------------------
#: Layout byte of RGB 8-bit images (channels - 1, plus 4 for 16 bits), which is never written.
_RGB8 = 2


def _image_header(height: int, width: int, channels: int, bit_depth: int) -> bytes:
    """Height, width, then a layout byte (channels - 1, plus 4 for 16 bits) unless RGB, 8 bits."""
    w = ByteWriter()
    w.varint(height)
    w.varint(width)
    layout = (channels - 1) | (4 if bit_depth == 16 else 0)
    if layout != _RGB8:
        w.u8(layout)
    return bytes(w.buf)


def _layer_sections(world: World, eid: int, stages: Sequence[System], layer: int) -> Sections:
    recorded = [s.for_stream(world, eid) for s in stages]
    try:
        check_layer(recorded, layer)
    except BitstreamError as exc:
        raise VaeransError(f"this pipeline cannot be stored in a stream: {exc}") from None
    sections = Sections()
    sections.add("pipeline", _pack_pipeline(recorded))
    for index, stage in enumerate(recorded):
        data = stage.stream_data(world, eid)
        if data is None:
            continue
        if stage.data_section == "stage":
            w = ByteWriter()
            w.varint(index)
            sections.add("stage", bytes(w.buf) + data)
        else:
            sections.add(stage.data_section, data)
    return sections


def pack_image_stream(
    world: World,
    eid: int,
    layers: Sequence[Sequence[System]],
    *,
    height: int,
    width: int,
    channels: int = 3,
    bit_depth: int = 8,
    metadata: dict[str, bytes] | None = None,
) -> bytes:
    """A v2 stream of entity ``eid`` coded by ``layers`` (the base layer first)."""
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise VaeransError(f"a stream holds 1..{MAX_LAYERS} layers, got {len(layers)}")
    sections = Sections()
    sections.add("image", _image_header(height, width, channels, bit_depth))
    for item in _layer_sections(world, eid, layers[0], 0):
        sections.items.append(item)
    for index, stages in enumerate(layers[1:], start=1):
        sections.add("layer", pack_sections(_layer_sections(world, eid, stages, index)))
    providers = providers_of(item for stages in layers for stage in stages for item in stage.names_used())
    if providers:
        sections.add("plugins", _pack_providers(providers))
    for name, body in (metadata or {}).items():
        if name not in METADATA:
            raise VaeransError(f"unknown metadata {name!r}; streams carry {', '.join(METADATA)}")
        if body:
            sections.add(name, body)
    return pack_container(sections)


# -- reading -----------------------------------------------------------------------------------
def check_image_size(height: int, width: int, max_pixels: int) -> None:
    """Refuse an empty image or one over ``max_pixels``."""
    if height == 0 or width == 0:
        raise BitstreamError(f"stream declares an empty image ({height}x{width})")
    if height * width > max_pixels:
        raise BitstreamError(
            f"stream declares {height}x{width} = {height * width} pixels, over max_pixels={max_pixels} "
            "(raise [runtime] max_pixels to decode it)"
        )


def stage_inputs(stages: Sequence[System], ctx: StreamContext) -> tuple[Geometry, ...]:
    """The geometry entering each stage, inferred with :meth:`System.stream_shape`."""
    inputs = []
    geom = ctx.geometry
    for stage in stages:
        inputs.append(geom)
        try:
            geom = stage.stream_shape(geom, ctx.at(geom))
        except (BitstreamError, ModelError):
            raise
        except VaeransError as exc:
            raise BitstreamError(f"{stage.name}: {exc}") from None
    return tuple(inputs)


def _stage_data(stages: Sequence[System], sections: Sections) -> tuple[bytes | None, ...]:
    generic: dict[int, bytes] = {}
    for body in sections.all("stage"):
        r = ByteReader(body, "stage section")
        index = r.varint(MAX_STAGES)
        if index >= len(stages) or index in generic or stages[index].data_section != "stage":
            raise BitstreamError(f"stage section for stage {index}, which has no such data")
        generic[index] = r.take(r.remaining())
    data: list[bytes | None] = []
    claimed = {"pipeline", "stage", "layer", "image", "plugins", *METADATA}
    for index, stage in enumerate(stages):
        if stage.data_section == "stage":
            data.append(generic.get(index))
        else:
            if stage.data_section in claimed:
                raise BitstreamError(f"two stages of one layer claim the {stage.data_section!r} section")
            claimed.add(stage.data_section)
            data.append(sections.get(stage.data_section))
        if stage.data_required and data[-1] is None:
            raise BitstreamError(f"the stream lacks the data of its {stage.name} stage ({stage.data_section!r})")
    for item in sections:
        spec = section_type(item.code)
        if spec is not None and spec.name not in claimed:
            raise BitstreamError(f"the stream holds a {spec.name!r} section that no stage of its pipeline owns")
    return tuple(data)


def _read_layer(sections: Sections, ctx: StreamContext, providers: Providers) -> Layer:
    stages = _read_pipeline(sections.require("pipeline"), providers)
    check_layer(stages, ctx.layer)
    inputs = stage_inputs(stages, ctx)
    return Layer(stages, _stage_data(stages, sections), inputs)


def _read_v2(data: bytes, config: Config, max_pixels: int) -> ImageStream:
    sections = unpack_container(data)
    r = ByteReader(sections.require("image"), "image section")
    height, width = r.varint(1 << 31), r.varint(1 << 31)
    layout = _RGB8
    if r.remaining():
        layout = r.u8()
        if layout == _RGB8:  # one encoding per layout: the default is never written
            raise BitstreamError("image section: the RGB 8-bit layout byte must be omitted")
    r.end()
    check_image_size(height, width, max_pixels)
    if layout > 7:
        raise BitstreamError(f"image section: unknown layout byte {layout:#04x}")
    channels, bit_depth = (layout & 3) + 1, 16 if layout & 4 else 8
    head = ImageStream(2, height, width, channels, bit_depth, ())
    providers = _read_providers(sections.get("plugins"))
    top = Sections(s for s in sections if s.code not in _NOT_BASE)
    layers = [_read_layer(top, head.context(config, 0), providers)]
    nested = sections.all("layer")
    if len(nested) + 1 > MAX_LAYERS:
        raise BitstreamError(f"stream declares {len(nested) + 1} layers, more than {MAX_LAYERS}")
    for index, body in enumerate(nested, start=1):
        nested_sections = read_sections(body, what=f"layer {index}")
        layers.append(_read_layer(nested_sections, head.context(config, index), providers))
    metadata = {name: blob for name in METADATA if (blob := sections.get(name)) is not None}
    if any(len(blob) > _MAX_METADATA for blob in metadata.values()):
        raise BitstreamError("stream metadata section larger than 1 MiB")
    sizes: dict[str, int] = {}
    for item in sections:
        spec = section_type(item.code)
        name = spec.name if spec is not None else f"{item.code:#04x}"
        sizes[name] = sizes.get(name, 0) + len(item.body)
    return replace(head, layers=tuple(layers), metadata=metadata, section_bytes=sizes, total_bytes=len(data))


def _codes(*names: str) -> frozenset[int]:
    return frozenset(SECTION_TYPES.get(n).code for n in names)


_NOT_BASE = _codes("image", "layer", "plugins", *METADATA)


def read_image_stream(data: bytes, config: Config, *, max_pixels: int | None = None) -> ImageStream:
    """Parse and validate an image stream of either version (no payload is decoded)."""
    limit = config.runtime.max_pixels if max_pixels is None else max_pixels
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    version = stream_version(data)
    if version == 1:
        from vaerans_ecs.core.stream_v1 import read_v1

        return read_v1(data, config, limit)
    return _read_v2(data, config, limit)
