"""What ``compress`` builds for each image: the encoder's decisions, then the layers that code it.

A :class:`Request` is lossy (``quality`` 1..100 or ``target_bpp``), ``lossless`` or
``max_error=k`` (every pixel and channel within ``k``). For each source the encoder picks:

* lossy, RGB 8-bit, built-in models: the method whose measured rate curve (held-out training
  photos) gives the highest PSNR at the rate the quality stands for, among the VAE models
  (``models/*/rd.json``) and the transform coder (``systems/residual/transform_rd.json``);
  ``quality`` spans the whole range log-linearly (1 = the lowest VAE rate, 100 = the transform
  coder's finest measured step). A named model uses only that model, as before.
* lossy, any other layout (gray, gray + alpha, RGBA; 16-bit sources are coded at 8 bits,
  ``round(v / 257)``): the transform coder on all channels.
* lossless / ``max_error``: the pixel coder (its palette and LZ paths included), 16-bit sources
  at 16 bits.
* lossy with the default model, on images whose neighbours are mostly equal (text, graphics,
  charts): the lossless stream too, kept when it is no larger.
* ``base_quality=Q`` (RGB 8-bit): a layered stream, DLPR-style: a VAE base at quality ``Q`` and
  the request (lossless, ``max_error``, or a transform-coded residual at the quality's step) as
  an enhancement layer over the decoded base; ``decompress(layers=1)`` returns the base preview.

Every stream carries the source's ICC profile, EXIF block and (where the layout does not imply
it) its mode as ancillary sections.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components import ImageInfo
from vaerans_ecs.components.image import RGB
from vaerans_ecs.config import Config
from vaerans_ecs.core.system import System
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.imaging import SourceImage
from vaerans_ecs.imaging.source import mode_for
from vaerans_ecs.ratecurve import RATE_SLACK, RatePoint, bisect_rate, choose, load_curve
from vaerans_ecs.systems.residual.stages import MAX_ERROR, TRANSFORM_CURVE, PixelCode, TransformCode

__all__ = ["Request", "metadata_of", "transform_curve"]

log = logging.getLogger(__name__)

#: Share of equal horizontal/vertical neighbours above which a lossy request also tries lossless.
SYNTHETIC_SHARE = 0.3


@dataclass(frozen=True)
class Request:
    """One compression request; :meth:`check` refuses combinations that mean two things."""

    quality: float | None = None
    target_bpp: float | None = None
    lossless: bool = False
    max_error: int | None = None
    model: str = "default"
    wavelet: str | None = None
    levels: int | None = None
    coder: str | None = None
    stages: tuple[System, ...] = ()
    #: Code a VAE base layer at this quality and the request as an enhancement layer over it.
    base_quality: float | None = None

    def check(self) -> Request:
        """Validate and return the request."""
        if self.quality is not None and self.target_bpp is not None:
            raise VaeransError("give either quality or target_bpp, not both")
        exact = self.lossless or self.max_error is not None
        if exact and (self.quality is not None or self.target_bpp is not None):
            raise VaeransError("lossless and max_error exclude quality and target_bpp")
        if self.lossless and self.max_error not in (None, 0):
            raise VaeransError("give either lossless or max_error, not both")
        bad_bound = isinstance(self.max_error, bool) or not isinstance(self.max_error, int)
        if self.max_error is not None and (bad_bound or not 0 <= self.max_error <= MAX_ERROR):
            raise VaeransError(f"max_error must be an integer in 0..{MAX_ERROR}, got {self.max_error!r}")
        if self.quality is not None and not 1.0 <= float(self.quality) <= 100.0:
            raise VaeransError(f"quality must be in [1, 100], got {self.quality}")
        if self.target_bpp is not None and not (math.isfinite(self.target_bpp) and self.target_bpp > 0):
            raise VaeransError(f"target_bpp must be a positive number, got {self.target_bpp}")
        if self.base_quality is not None:
            if not 1.0 <= float(self.base_quality) <= 100.0:
                raise VaeransError(f"base_quality must be in [1, 100], got {self.base_quality}")
            if self.target_bpp is not None:
                raise VaeransError("base_quality takes quality, lossless or max_error, not target_bpp")
        return self

    @property
    def exact_error(self) -> int | None:
        """The l-infinity bound of an exact request (0: lossless), None for a lossy one."""
        if self.lossless:
            return 0
        return self.max_error


_CURVE: tuple[RatePoint, ...] | None = None


def transform_curve() -> tuple[RatePoint, ...]:
    """The transform coder's measured rate curve (empty when the file is absent)."""
    global _CURVE
    if _CURVE is None:
        _CURVE = load_curve(TRANSFORM_CURVE) if TRANSFORM_CURVE.is_file() else ()
    return _CURVE


def metadata_of(src: SourceImage) -> dict[str, bytes]:
    """The ancillary sections a stream of ``src`` carries: ICC, EXIF, and a mode the layout does not imply."""
    meta: dict[str, bytes] = {}
    if src.icc:
        meta["icc"] = src.icc
    if src.exif:
        meta["exif"] = src.exif
    if src.mode != mode_for(src.pixels.shape[2], src.bit_depth):
        meta["mode"] = src.mode.encode()
    return meta


def looks_synthetic(pixels: npt.NDArray[np.generic]) -> bool:
    """Whether most horizontal and vertical neighbours are exactly equal (text, graphics, charts)."""
    h, w = pixels.shape[:2]
    same = 0
    if w > 1:
        same += int(np.count_nonzero(np.all(pixels[:, 1:] == pixels[:, :-1], axis=2)))
    if h > 1:
        same += int(np.count_nonzero(np.all(pixels[1:] == pixels[:-1], axis=2)))
    pairs = h * (w - 1) + (h - 1) * w
    return bool(pairs > 0 and same > SYNTHETIC_SHARE * pairs)


def to_8bit(pixels: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """16-bit samples as 8-bit ``round(v / 257)``; 8-bit ones unchanged."""
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels, dtype=np.uint8)
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


@dataclass
class _Job:
    """One source on its way to a stream."""

    src: SourceImage
    pixels: npt.NDArray[np.generic]  # what is coded (8-bit for lossy requests)
    eid: int = 0
    out: bytes = b""


def _spawn(world: World, pixels: npt.NDArray[np.generic]) -> int:
    h, w, c = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    return world.spawn(RGB(ref=world.arena.copy_in(np.ascontiguousarray(pixels))),
                       ImageInfo(height=h, width=w, channels=c, bit_depth=depth))


def _single_layer(world: World, job: _Job, stage: System) -> bytes:
    from vaerans_ecs.api import entity_to_bytes

    job.eid = _spawn(world, job.pixels)
    (world.pipe(job.eid) | stage).run()
    return entity_to_bytes(world, job.eid, layers=[[stage]], metadata=metadata_of(job.src))


def _pinned(request: Request, config: Config) -> bool:
    """Whether the request or ``[codec] model`` names one VAE, which is then used alone."""
    return request.model != "default" or config.codec.model not in ("", "default")


def _lossy_method(request: Request, config: Config, rgb: bool) -> tuple[str, float]:
    """``("vae", 0)`` or ``("transform", step)`` for a lossy request."""
    from vaerans_ecs.models import default_models

    curve = transform_curve()
    if not curve or (rgb and _pinned(request, config)):
        if not rgb:
            raise VaeransError("lossy coding of this image layout needs the transform coder's rate curve")
        return "vae", 0.0
    curves = [spec.curve for spec in default_models(config) if spec.curve] if rgb else []
    q = config.codec.quality if request.quality is None and request.target_bpp is None else request.quality
    index, step = choose([*curves, curve], quality=q, target_bpp=request.target_bpp)
    return ("transform", step) if index == len(curves) else ("vae", 0.0)


def encode_sources(sources: Sequence[SourceImage], request: Request, config: Config) -> list[bytes]:
    """Streams of ``sources`` for ``request`` (see the module docstring for the decisions)."""
    from vaerans_ecs.api import encode_entities, new_world

    request.check()
    world = new_world(config)
    exact = request.exact_error
    jobs = [_Job(src, src.pixels if exact is not None else to_8bit(src.pixels)) for src in sources]
    vae: list[_Job] = []
    for job in jobs:
        if request.base_quality is not None and job.pixels.shape[2] == 3 and job.pixels.dtype == np.uint8:
            job.out = _layered(world, job, request, config)
            continue
        if exact is not None:
            job.out = _single_layer(world, job, PixelCode(max_error=exact))
            continue
        if job.src.bit_depth == 16:
            log.warning("lossy coding of a 16-bit image: coded at 8 bits, round(v / 257)")
        method, step = _lossy_method(request, config, job.pixels.shape[2] == 3)
        if method == "vae":
            vae.append(job)
        elif request.target_bpp is not None:
            job.out = _transform_at_rate(world, job, request.target_bpp)
        else:
            job.out = _single_layer(world, job, TransformCode(step=step))
    if vae:
        from vaerans_ecs.api import spawn_images

        eids = spawn_images(world, [np.ascontiguousarray(job.pixels) for job in vae], config)
        streams = encode_entities(
            world, eids, quality=request.quality, model=request.model, target_bpp=request.target_bpp,
            wavelet=request.wavelet, levels=request.levels, coder=request.coder, stages=request.stages,
            config=config, metadata=[metadata_of(job.src) for job in vae],
        )
        for job, data in zip(vae, streams, strict=True):
            job.out = data
    if exact is None and not _pinned(request, config):  # a named model is used alone
        for job in jobs:
            if looks_synthetic(job.pixels):
                exact_job = _Job(job.src, job.src.pixels)
                lossless = _single_layer(world, exact_job, PixelCode(max_error=0))
                if len(lossless) <= len(job.out):
                    log.info("lossless coding is no larger than the lossy stream here: using it")
                    job.out = lossless
    world.clear()
    return [job.out for job in jobs]


def _layered(world: World, job: _Job, request: Request, config: Config) -> bytes:
    """A VAE base at ``request.base_quality``, then the request coded over what the base decodes to.

    The base the residual is taken from is the one this machine's decoder produces from the base
    stream, so encoder and decoder agree wherever the VAE's float output agrees (PixelCode checks).
    """
    from vaerans_ecs.api import decompress, encode_entities, entity_to_bytes, spawn_images
    from vaerans_ecs.components import ReconRGB
    from vaerans_ecs.systems.residual.stages import ComputeResidual

    (eid,) = spawn_images(world, [np.ascontiguousarray(job.pixels)], config)
    base_stream = encode_entities(
        world, [eid], quality=request.base_quality, model=request.model, wavelet=request.wavelet,
        levels=request.levels, coder=request.coder, stages=request.stages, config=config,
    )[0]
    base_layer = world.history(eid)
    base = decompress(base_stream, config=config)
    ref = world.alloc(base.shape, np.uint8)
    world.view(ref)[...] = base
    world.add_component(eid, ReconRGB(ref=ref))
    exact = request.exact_error
    if exact is not None:
        coder: System = PixelCode(max_error=exact, residual=True)
    else:
        _, step = _lossy_method(Request(quality=request.quality), config, rgb=False)
        coder = TransformCode(step=step, residual=True)
    enhancement = [ComputeResidual(), coder]
    pipe = world.pipe(eid)
    for stage in enhancement:
        pipe = pipe | stage
    pipe.run()
    return entity_to_bytes(world, eid, layers=[base_layer, enhancement], metadata=metadata_of(job.src))


def _transform_at_rate(world: World, job: _Job, target_bpp: float) -> bytes:
    """The transform coder at the step whose stream is nearest ``target_bpp`` (:func:`bisect_rate`)."""
    from vaerans_ecs.systems.residual.transform import MAX_STEP, MIN_STEP

    pixels = int(job.pixels.shape[0] * job.pixels.shape[1])
    streams: dict[float, bytes] = {}

    def trial(log_step: float) -> float:
        streams[log_step] = _single_layer(world, job, TransformCode(step=max(MIN_STEP, math.exp(log_step))))
        return len(streams[log_step]) * 8 / pixels

    log_step, bpp = bisect_rate(trial, math.log(0.25), math.log(min(MAX_STEP, 512.0)), target_bpp, rounds=20)
    if abs(bpp - target_bpp) > RATE_SLACK * target_bpp:
        log.warning("target_bpp=%.4f not reachable within 5%%; nearest reachable rate is %.4f bpp", target_bpp, bpp)
    return streams[log_step]
