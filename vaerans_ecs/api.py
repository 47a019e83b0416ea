"""One-liners: ``compress(img) -> bytes``, ``decompress(data) -> ndarray``, and their batch forms.

They build the standard pipeline ``OnnxVAEEncode | Hadamard4 | Wavelet | QuantizeU8 | ANSEncode``
on a private World (so concurrent calls never share an arena), and serialize with
:mod:`vaerans_ecs.core.serialization`. ``decompress`` rebuilds the decoder from the header alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components import ANSBitstream, ImageInfo, QuantParams, ReconRGB, SymbolsU8
from vaerans_ecs.config import Config, get_config
from vaerans_ecs.core import System, World
from vaerans_ecs.core.arena import Arena
from vaerans_ecs.core.serialization import StreamHeader, pack_stream, unpack_stream
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.imaging import to_rgb_uint8
from vaerans_ecs.models import ModelSpec, choose_model, get_model
from vaerans_ecs.systems.entropy import ANSDecode, ANSEncode
from vaerans_ecs.systems.hadamard import Hadamard4
from vaerans_ecs.systems.quantize import (
    QuantizeU8,
    pack_quant_params,
    step_for_quality,
    unpack_quant_params,
)
from vaerans_ecs.systems.vae import OnnxVAEEncode, is_tiled
from vaerans_ecs.systems.wavelet import WaveletCDF53, WaveletHaar, band_layout

__all__ = [
    "StreamInfo",
    "compress",
    "compress_batch",
    "decompress",
    "decompress_batch",
    "decode_streams",
    "encode_entities",
    "entity_to_bytes",
    "inspect",
]

log = logging.getLogger(__name__)
ImageLike = Any


def _new_world(config: Config) -> World:
    mib = 1 << 20
    return World(Arena(config.arena.capacity_mb * mib, config.arena.max_capacity_mb * mib))


def _spawn_images(world: World, arrays: Sequence[npt.NDArray[np.uint8]], config: Config) -> list[int]:
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


def _transform(wavelet: str, levels: int) -> list[System]:
    if wavelet == "cdf53":
        return [WaveletCDF53(levels=levels)]
    if wavelet == "haar":
        return [WaveletHaar(levels=levels)]
    if wavelet == "none":
        return []
    raise VaeransError(f"unknown wavelet {wavelet!r}; use 'cdf53', 'haar' or 'none'")


def entity_to_bytes(world: World, eid: int) -> bytes:
    """Serialize an entity that went through a pipeline ending in an entropy coder."""
    info = world.get_component(eid, ImageInfo)
    bits = world.get_component(eid, ANSBitstream)
    params = world.get_component(eid, QuantParams)
    history = world.history(eid)
    quantizers = [s for s in history if isinstance(s, QuantizeU8)]
    if not quantizers:
        raise VaeransError(f"entity {eid} was not quantized by QuantizeU8; nothing to serialize")
    quantizer = quantizers[-1]
    # record the resolved model name ("default" may mean another model tomorrow)
    history = [OnnxVAEEncode(model=info.model) if isinstance(s, OnnxVAEEncode) else s for s in history]
    fingerprint = bytes.fromhex(info.fingerprint) if info.fingerprint else b""
    return pack_stream(
        height=info.height,
        width=info.width,
        pipeline=history,
        fingerprint=fingerprint,
        channels=bits.channels,
        plane_h=bits.height,
        plane_w=bits.width,
        quant=pack_quant_params(
            params, bits.channels, bits.bands, quantizer.base_step, band_weights=quantizer.band_weights
        ),
        payload=bits.data,
    )


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
    config: Config | None = None,
) -> list[bytes]:
    """Compress entities holding RGB in ``world``: one batched VAE pass, then per-entity coding."""
    cfg = config or get_config()
    q = cfg.codec.quality if quality is None else float(quality)
    if not 1.0 <= q <= 100.0:
        raise VaeransError(f"quality must be in [1, 100], got {q}")
    if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
        raise VaeransError(f"target_bpp must be a positive number, got {target_bpp}")
    # "default" may stand for several built-in models sharing the rate range: the request picks one
    spec, step = choose_model(model, quality=q if target_bpp is None else None, target_bpp=target_bpp)
    if step is None:
        step = step_for_quality(q, spec.step_min, spec.step_max)
    transform = [Hadamard4(), *_transform(wavelet or cfg.codec.wavelet, cfg.codec.levels if levels is None else levels)]
    front = world.pipe(list(eids)) | OnnxVAEEncode(model=spec.name)
    for system in transform:
        front = front | system
    front.run()
    coder_name = coder or cfg.codec.coder
    out = []
    for eid in eids:
        if target_bpp is None:
            quant = QuantizeU8(step=step)
            (world.pipe(eid) | quant | ANSEncode(coder=coder_name)).run()
        else:
            _rate_control(world, eid, spec, target_bpp, coder_name, guess=step)
        out.append(entity_to_bytes(world, eid))
    return out


def _rate_control(
    world: World, eid: int, spec: ModelSpec, target_bpp: float, coder: str, guess: float | None = None
) -> None:
    """Bisection on the (continuous, log-scale) step until the stream is within 5 % of the target.

    ``guess`` (the step the model's rate curve predicts) is tried first and halves the bracket.
    """
    info = world.get_component(eid, ImageInfo)
    pixels = info.height * info.width
    before = world.history(eid)
    lo, hi = np.log(spec.step_min) - np.log(4.0), np.log(spec.step_max) + np.log(4.0)

    def trial(log_step: float) -> float:
        world.set_history(eid, before)  # each trial replaces the previous coding
        (world.pipe(eid) | QuantizeU8(step=float(np.exp(log_step))) | ANSEncode(coder=coder)).run()
        return len(entity_to_bytes(world, eid)) * 8 / pixels

    probe = 0.5 * (lo + hi)
    if guess is not None and lo < np.log(guess) < hi:
        probe = float(np.log(guess))
    best: tuple[float, float] | None = None
    for _ in range(24):
        bpp = trial(probe)
        if best is None or abs(bpp - target_bpp) < abs(best[1] - target_bpp):
            best = (probe, bpp)
        if abs(bpp - target_bpp) <= 0.05 * target_bpp:
            return
        if bpp > target_bpp:
            lo = probe
        else:
            hi = probe
        probe = 0.5 * (lo + hi)
    assert best is not None
    bpp = trial(best[0])
    log.warning("target_bpp=%.4f not reachable within 5%%; nearest reachable rate is %.4f bpp", target_bpp, bpp)


def compress(
    img: ImageLike,
    quality: float | None = None,
    model: str = "default",
    *,
    target_bpp: float | None = None,
    wavelet: str | None = None,
    levels: int | None = None,
    coder: str | None = None,
) -> bytes:
    """Compress one image (array or PIL; converted by :mod:`vaerans_ecs.imaging` rules) to bytes.

    ``quality`` in [1, 100] (default from config, 75) or ``target_bpp`` (rate control by bisection,
    within +-5 % or the nearest reachable rate, logged). ``model="default"`` lets the request pick
    among the built-in models by their measured rate curves (:func:`vaerans_ecs.models.choose_model`).
    """
    return compress_batch([img], quality, model, target_bpp=target_bpp, wavelet=wavelet, levels=levels, coder=coder)[0]


def compress_batch(
    images: Iterable[ImageLike],
    quality: float | None = None,
    model: str = "default",
    *,
    target_bpp: float | None = None,
    wavelet: str | None = None,
    levels: int | None = None,
    coder: str | None = None,
) -> list[bytes]:
    """Compress many images sharing one World; equal-size images share one VAE inference."""
    cfg = get_config()
    world = _new_world(cfg)
    eids = _spawn_images(world, [to_rgb_uint8(img) for img in images], cfg)
    return encode_entities(
        world, eids, quality=quality, model=model, target_bpp=target_bpp, wavelet=wavelet, levels=levels,
        coder=coder, config=cfg,
    )


@dataclass(frozen=True)
class StreamInfo:
    """What a stream header says (``vaerans info``)."""

    header: StreamHeader
    quant_bytes: int
    payload_bytes: int
    total_bytes: int

    @property
    def bpp(self) -> float:
        """Bits per source pixel."""
        return self.total_bytes * 8 / (self.header.height * self.header.width)

    @property
    def model(self) -> str:
        """Name of the model the stream was encoded with ("" when its pipeline has none)."""
        return next((s.model for s in self.header.pipeline if isinstance(s, OnnxVAEEncode)), "")


def inspect(data: bytes, *, max_pixels: int | None = None) -> StreamInfo:
    """Parse and validate a stream's header without decoding the image."""
    limit = max_pixels if max_pixels is not None else get_config().runtime.max_pixels
    header, quant, payload = unpack_stream(data, max_pixels=limit)
    return StreamInfo(header, len(quant), len(payload), len(data))


def _spawn_stream(world: World, data: bytes, max_pixels: int) -> tuple[int, list[System]]:
    header, quant, payload = unpack_stream(data, max_pixels=max_pixels)
    systems = list(header.pipeline)
    if not systems or not isinstance(systems[-1], ANSEncode):
        raise BitstreamError("stream pipeline must end with an entropy coder")
    levels = 0
    for system in systems:
        if isinstance(system, (WaveletCDF53, WaveletHaar)):
            levels = int(system.levels)
    try:
        bands = band_layout(header.plane_h, header.plane_w, levels)
    except VaeransError as exc:
        raise BitstreamError(f"invalid band layout in stream: {exc}") from None
    params = unpack_quant_params(quant, header.channels, bands)
    model_name = ""
    for system in systems:
        if isinstance(system, OnnxVAEEncode):
            model_name = system.model
            spec = get_model(system.model)
            spec.check_fingerprint(header.fingerprint.hex())
            expect = (-(-header.height // spec.stride), -(-header.width // spec.stride))
            if (header.plane_h, header.plane_w) != expect:
                raise BitstreamError(
                    f"stream declares a {header.plane_h}x{header.plane_w} latent for a {header.height}x"
                    f"{header.width} image; model {spec.name!r} (stride {spec.stride}) makes {expect[0]}x{expect[1]}"
                )
    try:
        bits = ANSBitstream(
            data=payload, coder=systems[-1].coder, channels=header.channels, height=header.plane_h,
            width=header.plane_w, bands=bands,
        )
        info = ImageInfo(
            height=header.height, width=header.width, model=model_name, fingerprint=header.fingerprint.hex()
        )
    except VaeransError as exc:
        raise BitstreamError(f"inconsistent stream header: {exc}") from None
    eid = world.spawn(bits, params, info)
    decoders = [s.inverse() for s in reversed(systems)]
    return eid, decoders


def decompress(data: bytes, *, max_pixels: int | None = None) -> npt.NDArray[np.uint8]:
    """Decode a stream to an HxWx3 uint8 image of the original size."""
    return decompress_batch([data], max_pixels=max_pixels)[0]


def decode_streams(world: World, streams: Iterable[bytes], *, max_pixels: int | None = None) -> list[int]:
    """Decode streams into ``world`` (ReconRGB on each returned entity); same pipelines batch together."""
    limit = max_pixels if max_pixels is not None else get_config().runtime.max_pixels
    groups: dict[tuple[System, ...], list[int]] = {}
    order: list[int] = []
    for data in streams:
        eid, decoders = _spawn_stream(world, data, limit)
        groups.setdefault(tuple(decoders), []).append(eid)
        order.append(eid)
    for chain, eids in groups.items():
        pipe = world.pipe(eids)
        for system in chain:
            pipe = pipe | system
        pipe.run()
    return order


def decompress_batch(streams: Iterable[bytes], *, max_pixels: int | None = None) -> list[npt.NDArray[np.uint8]]:
    """Decode many streams sharing one World; streams with the same pipeline decode as a batch.

    Images decoded into buffers of their own (large, tiled ones: see ``OnnxVAEDecode``) are
    returned as they are; the others are copied out of the arena, which is then reset.
    """
    world = _new_world(get_config())
    out = []
    for eid in decode_streams(world, streams, max_pixels=max_pixels):
        ref = world.get_component(eid, ReconRGB).ref
        view = world.view(ref)
        out.append(view if world.arena.is_external(ref) else np.array(view, dtype=np.uint8, copy=True))
    world.clear()
    return out


def symbols_of(data: bytes, *, max_pixels: int | None = None) -> npt.NDArray[np.uint8]:
    """Entropy-decode a stream's symbols only (bit-exact on every machine; for golden tests)."""
    limit = max_pixels if max_pixels is not None else get_config().runtime.max_pixels
    world = World(Arena(1 << 24))
    eid, _ = _spawn_stream(world, data, limit)
    coder = world.get_component(eid, ANSBitstream).coder
    sym = (world.pipe(eid) | ANSDecode(coder=coder)).out(SymbolsU8)
    return np.array(world.view(sym.ref), copy=True)
