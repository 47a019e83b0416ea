"""One-liners: ``compress(img) -> bytes``, ``decompress(data) -> ndarray``, and their batch forms.

They build the standard pipeline ``OnnxVAEEncode | Hadamard4 | Wavelet | QuantizeU8 | ANSEncode``
(plus any extra stages, placed by their :class:`~vaerans_ecs.core.system.StageKind`) on a private
World, so concurrent calls never share an arena, and write a bitstream v2
(:mod:`vaerans_ecs.core.stream`) in which every stage stores its own data. ``decompress``
rebuilds the decoder from the stream's header through the registry alone; it reads v1 streams too.
Every function takes ``config=``: without it the process-wide configuration is read, and no call
ever changes it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components import ImageInfo, ReconRGB, SymbolsU8
from vaerans_ecs.config import Config, get_config
from vaerans_ecs.core import System, World
from vaerans_ecs.core.arena import Arena
from vaerans_ecs.core.stream import ImageStream, pack_image_stream, read_image_stream
from vaerans_ecs.core.system import StageKind
from vaerans_ecs.encoder import Request, encode_sources
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.imaging import ImageMeta, load_source
from vaerans_ecs.imaging.source import mode_for
from vaerans_ecs.models import ModelSpec, choose_model
from vaerans_ecs.ratecurve import RATE_SLACK, bisect_rate
from vaerans_ecs.systems.entropy import DEFAULT_CODER, ANSEncode
from vaerans_ecs.systems.hadamard import Hadamard4
from vaerans_ecs.systems.quantize import QuantizeU8, step_for_quality
from vaerans_ecs.systems.vae import OnnxVAEEncode, is_tiled
from vaerans_ecs.systems.wavelet import wavelet_stage

__all__ = [
    "StreamInfo",
    "compress",
    "compress_batch",
    "decode_streams",
    "decompress",
    "decompress_batch",
    "decompress_image",
    "encode_entities",
    "entity_to_bytes",
    "inspect",
    "new_world",
    "spawn_images",
    "stream_meta",
    "symbols_of",
]

log = logging.getLogger(__name__)
ImageLike = Any


def new_world(config: Config) -> World:
    """A private World sized by ``[arena]`` that reads ``config`` (one per call: threads never share one)."""
    mib = 1 << 20
    return World(Arena(config.arena.capacity_mb * mib, config.arena.max_capacity_mb * mib), config=config)


def spawn_images(world: World, arrays: Sequence[npt.NDArray[np.uint8]], config: Config) -> list[int]:
    """Spawn RGB entities: small images copied into the arena, large (tiled) ones read in place.

    Why: for an image the VAE tiles (more than ``[runtime] tile_size**2`` pixels) the arena copy
    would be the largest allocation of the whole call; small images keep the arena's batching
    (one contiguous block per size) and its capacity limits.
    """
    large = [is_tiled(a.shape[0], a.shape[1], config.runtime.tile_size) for a in arrays]
    small = iter(world.spawn_batch_images([a for a, big in zip(arrays, large, strict=True) if not big]))
    return [
        world.spawn_image(a, copy=False) if big else next(small) for a, big in zip(arrays, large, strict=True)
    ]


def _front(model: str, wavelet: str, levels: int, extra: Sequence[System]) -> list[System]:
    """The stages before the quantizer, extra ones placed after the built-ins of their kind."""
    stages: list[System] = [OnnxVAEEncode(model=model), Hadamard4()]
    if wavelet != "none":
        stages.append(wavelet_stage(wavelet)(levels=levels))
    for stage in extra:
        kind = stage.stage_kind
        if kind is None or kind >= StageKind.QUANTIZER:
            raise VaeransError(f"{stage!r} cannot be added to the image pipeline (kind {kind}): only stages "
                               "before the quantizer can")
        at = max((i + 1 for i, s in enumerate(stages) if s.stage_kind is not None and s.stage_kind <= kind), default=0)
        stages.insert(at, stage)
    return stages


def entity_to_bytes(
    world: World,
    eid: int,
    *,
    layers: Sequence[Sequence[System]] | None = None,
    metadata: dict[str, bytes] | None = None,
) -> bytes:
    """Serialize an entity coded by ``layers`` (default: its history, one layer) as a v2 stream."""
    if not world.has_component(eid, ImageInfo):
        raise VaeransError(f"entity {eid} has no ImageInfo: run an image pipeline on it first")
    info = world.get_component(eid, ImageInfo)
    chosen = [world.history(eid)] if layers is None else [list(layer) for layer in layers]
    return pack_image_stream(
        world, eid, chosen, height=info.height, width=info.width, channels=info.channels, bit_depth=info.bit_depth,
        metadata=metadata,
    )


def _check_rate(quality: float, target_bpp: float | None) -> None:
    if not 1.0 <= quality <= 100.0:
        raise VaeransError(f"quality must be in [1, 100], got {quality}")
    if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
        raise VaeransError(f"target_bpp must be a positive number, got {target_bpp}")


def encode_entities(
    world: World,
    eids: Sequence[int],
    *,
    quality: float | None = None,
    model: str = "default",
    target_bpp: float | None = None,
    wavelet: str | None = None,
    levels: int | None = None,
    coder: str | None = None,
    stages: Sequence[System] = (),
    config: Config | None = None,
    metadata: Sequence[dict[str, bytes]] | None = None,
) -> list[bytes]:
    """Compress entities holding RGB in ``world``: one batched VAE pass, then per-entity coding.

    ``metadata`` gives each entity's ancillary sections (ICC, EXIF, mode).
    """
    cfg = config or world.config
    if quality is not None and target_bpp is not None:
        raise VaeransError("give either quality or target_bpp, not both")
    q = cfg.codec.quality if quality is None else float(quality)
    _check_rate(q, target_bpp)
    # "default" may stand for several built-in models sharing the rate range: the request picks one
    spec, step = choose_model(model, quality=q if target_bpp is None else None, target_bpp=target_bpp, config=cfg)
    if step is None:
        step = step_for_quality(q, spec.step_min, spec.step_max)
    front = _front(spec.name, wavelet or cfg.codec.wavelet, cfg.codec.levels if levels is None else levels, stages)
    pipe = world.pipe(list(eids))
    for system in front:
        pipe = pipe | system
    pipe.run()
    coder_name = coder or cfg.codec.coder or DEFAULT_CODER
    out = []
    for i, eid in enumerate(eids):
        if target_bpp is None:
            (world.pipe(eid) | QuantizeU8(step=step) | ANSEncode(coder=coder_name)).run()
        else:
            _rate_control(world, eid, spec, target_bpp, coder_name, guess=step)
        out.append(entity_to_bytes(world, eid, metadata=metadata[i] if metadata else None))
    return out


def _rate_control(
    world: World, eid: int, spec: ModelSpec, target_bpp: float, coder: str, guess: float | None = None
) -> None:
    """Code ``eid`` at the quantizer step whose stream is nearest ``target_bpp`` (:func:`bisect_rate`).

    ``guess`` (the step the model's rate curve predicts) is tried first and halves the bracket.
    """
    info = world.get_component(eid, ImageInfo)
    pixels = info.height * info.width
    before = world.history(eid)

    def trial(log_step: float) -> float:
        world.set_history(eid, before)  # each trial replaces the previous coding
        (world.pipe(eid) | QuantizeU8(step=math.exp(log_step)) | ANSEncode(coder=coder)).run()
        return len(entity_to_bytes(world, eid)) * 8 / pixels

    lo, hi = math.log(spec.step_min / 4.0), math.log(spec.step_max * 4.0)
    log_step, bpp = bisect_rate(trial, lo, hi, target_bpp, None if guess is None else math.log(guess))
    if abs(bpp - target_bpp) > RATE_SLACK * target_bpp:
        trial(log_step)
        log.warning("target_bpp=%.4f not reachable within 5%%; nearest reachable rate is %.4f bpp", target_bpp, bpp)


def compress(
    img: ImageLike,
    quality: float | None = None,
    model: str = "default",
    *,
    target_bpp: float | None = None,
    lossless: bool = False,
    max_error: int | None = None,
    base_quality: float | None = None,
    wavelet: str | None = None,
    levels: int | None = None,
    coder: str | None = None,
    stages: Sequence[System] = (),
    config: Config | None = None,
) -> bytes:
    """Compress one image (array, PIL image, path or file bytes; :mod:`vaerans_ecs.imaging` rules).

    Lossy: ``quality`` in [1, 100] (default from config, 75; 100 is the best lossy quality) or
    ``target_bpp`` (within +-5 % or the nearest reachable rate, logged), not both. Exact:
    ``lossless=True``, or ``max_error=k`` (k = 1..16: every pixel and channel within ``k``).
    The encoder picks the method per image (:mod:`vaerans_ecs.encoder`); ``model`` names a VAE to
    use only it; ``stages`` adds registered stages to the VAE pipeline; ``base_quality`` makes a
    layered stream (a VAE base at that quality, the request as an enhancement layer).
    """
    return compress_batch(
        [img], quality, model, target_bpp=target_bpp, lossless=lossless, max_error=max_error,
        base_quality=base_quality, wavelet=wavelet, levels=levels, coder=coder, stages=stages, config=config,
    )[0]


def compress_batch(
    images: Iterable[ImageLike],
    quality: float | None = None,
    model: str = "default",
    *,
    target_bpp: float | None = None,
    lossless: bool = False,
    max_error: int | None = None,
    base_quality: float | None = None,
    wavelet: str | None = None,
    levels: int | None = None,
    coder: str | None = None,
    stages: Sequence[System] = (),
    config: Config | None = None,
) -> list[bytes]:
    """Compress many images sharing one World; equal-size images coded by a VAE share one inference."""
    cfg = config or get_config()
    request = Request(
        quality=quality, target_bpp=target_bpp, lossless=lossless, max_error=max_error, model=model,
        wavelet=wavelet, levels=levels, coder=coder, stages=tuple(stages), base_quality=base_quality,
    ).check()
    sources = [load_source(img, max_pixels=cfg.runtime.max_pixels) for img in images]
    return encode_sources(sources, request, cfg)


@dataclass(frozen=True)
class StreamInfo:
    """What a stream's header says (``vaerans info``): sizes, sections and every stage's settings."""

    stream: ImageStream
    #: Per layer, per stage: the stage's settings (:meth:`System.stream_settings`).
    stages: tuple[tuple[dict[str, Any], ...], ...]

    @property
    def version(self) -> int:
        """Bitstream version (1 or 2)."""
        return self.stream.version

    @property
    def height(self) -> int:
        """Source image height."""
        return self.stream.height

    @property
    def width(self) -> int:
        """Source image width."""
        return self.stream.width

    @property
    def channels(self) -> int:
        """Channels the stream decodes to (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA)."""
        return self.stream.channels

    @property
    def bit_depth(self) -> int:
        """Bits per sample of the decoded pixels (8 or 16)."""
        return self.stream.bit_depth

    @property
    def pipeline(self) -> tuple[System, ...]:
        """The stages of the base layer, in encode order."""
        return self.stream.layers[0].stages

    @property
    def total_bytes(self) -> int:
        """Size of the whole stream."""
        return self.stream.total_bytes

    @property
    def bpp(self) -> float:
        """Bits per source pixel."""
        return self.total_bytes * 8 / (self.height * self.width)

    @property
    def model(self) -> str:
        """Name of the model the stream was encoded with ("" when its pipeline has none)."""
        return next((str(s["model"]) for layer in self.stages for s in layer if "model" in s), "")

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the decoder the stream needs ("" when none)."""
        return next((str(s["fingerprint"]) for layer in self.stages for s in layer if "fingerprint" in s), "")


def inspect(data: bytes, *, max_pixels: int | None = None, config: Config | None = None) -> StreamInfo:
    """Parse and validate a stream's header and side information without decoding the image."""
    cfg = config or get_config()
    stream = read_image_stream(data, cfg, max_pixels=max_pixels)
    stages = []
    for index, layer in enumerate(stream.layers):
        ctx = stream.context(cfg, index)
        settings = []
        for stage, blob, geom in zip(layer.stages, layer.data, layer.inputs, strict=True):
            try:
                settings.append(stage.stream_settings(blob, ctx.at(geom)))
            except BitstreamError:
                raise
            except VaeransError as exc:
                raise BitstreamError(f"{stage.name}: {exc}") from None
        stages.append(tuple(settings))
    return StreamInfo(stream, tuple(stages))


def _info(stream: ImageStream) -> ImageInfo:
    return ImageInfo(height=stream.height, width=stream.width, channels=stream.channels, bit_depth=stream.bit_depth)


def _load_layer(world: World, eid: int, stream: ImageStream, index: int, config: Config) -> list[System]:
    """Give ``eid`` the components layer ``index`` decodes from; return its decoder."""
    layer = stream.layers[index]
    ctx = stream.context(config, index)
    for stage, blob, geom in zip(layer.stages, layer.data, layer.inputs, strict=True):
        stage.load_stream_data(world, eid, blob, ctx.at(geom))
    return layer.decoder()


def decode_streams(
    world: World, streams: Iterable[bytes], *, max_pixels: int | None = None, layers: int | None = None
) -> list[int]:
    """Decode streams into ``world`` (ReconRGB on each returned entity); same decoders batch together.

    ``layers`` limits decoding to the first layers of layered streams (1 = the base preview).
    """
    t0 = time.perf_counter()
    parsed = [read_image_stream(data, world.config, max_pixels=max_pixels) for data in streams]
    world.timings.append(("parse", len(parsed), time.perf_counter() - t0))
    return _decode_parsed(world, parsed, layers)


def _decode_parsed(world: World, parsed: Sequence[ImageStream], layers: int | None) -> list[int]:
    cfg = world.config
    order = [world.spawn(_info(s)) for s in parsed]
    depth = max((len(s.layers) for s in parsed), default=0)
    if layers is not None:
        if layers < 1:
            raise VaeransError(f"layers must be >= 1, got {layers}")
        depth = min(depth, layers)
    for index in range(depth):
        groups: dict[tuple[System, ...], list[int]] = {}
        for eid, stream in zip(order, parsed, strict=True):
            if index < len(stream.layers):
                groups.setdefault(tuple(_load_layer(world, eid, stream, index, cfg)), []).append(eid)
        for chain, eids in groups.items():
            pipe = world.pipe(eids)
            for system in chain:
                pipe = pipe | system
            pipe.run()
    return order


def decompress(
    data: bytes, *, max_pixels: int | None = None, layers: int | None = None, config: Config | None = None
) -> npt.NDArray[Any]:
    """Decode a stream to pixels of the source's size and layout: HxW (gray), HxWx2, HxWx3 or
    HxWx4, uint8 or uint16. ``layers=1`` gives the base layer of a layered stream only."""
    return decompress_batch([data], max_pixels=max_pixels, layers=layers, config=config)[0]


def decompress_batch(
    streams: Iterable[bytes],
    *,
    max_pixels: int | None = None,
    layers: int | None = None,
    config: Config | None = None,
) -> list[npt.NDArray[Any]]:
    """Decode many streams sharing one World; streams with the same decoder run as a batch.

    Images decoded into buffers of their own (large, tiled ones: see ``OnnxVAEDecode``) are
    returned as they are; the others are copied out of the arena, which is then reset.
    """
    cfg = config or get_config()
    parsed = [read_image_stream(data, cfg, max_pixels=max_pixels) for data in streams]  # before any arena
    world = new_world(cfg)
    out = []
    for eid in _decode_parsed(world, parsed, layers):
        ref = world.get_component(eid, ReconRGB).ref
        view = world.view(ref)
        pixels = view if world.arena.is_external(ref) else np.array(view, copy=True)
        out.append(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    world.clear()
    return out


def stream_meta(info: StreamInfo) -> ImageMeta:
    """The source's mode, ICC profile and EXIF block as the stream records them."""
    meta = info.stream.metadata
    mode = meta["mode"].decode(errors="replace") if "mode" in meta else mode_for(info.channels, info.bit_depth)
    try:
        return ImageMeta(mode=mode, icc=meta.get("icc"), exif=meta.get("exif"))
    except VaeransError as exc:
        raise BitstreamError(f"invalid metadata in the stream: {exc}") from None


def decompress_image(data: bytes, *, layers: int | None = None, config: Config | None = None) -> Any:
    """Decode a stream to a PIL image in the source's mode, with its ICC profile and EXIF in ``info``."""
    from vaerans_ecs.imaging import restore_image

    meta = stream_meta(inspect(data, config=config))
    return restore_image(decompress(data, layers=layers, config=config), meta)


def symbols_of(data: bytes, *, max_pixels: int | None = None, config: Config | None = None) -> npt.NDArray[np.uint8]:
    """Entropy-decode the base layer's symbols only (bit-exact on every machine; for golden tests)."""
    cfg = config or get_config()
    stream = read_image_stream(data, cfg, max_pixels=max_pixels)
    world = World(Arena(1 << 24), config=cfg)
    eid = world.spawn(_info(stream))
    decoder = _load_layer(world, eid, stream, 0, cfg)
    sym = (world.pipe(eid) | decoder[0]).out(SymbolsU8)  # the entropy decoder runs first
    return np.array(world.view(sym.ref), copy=True)
