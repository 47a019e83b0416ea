"""Codecs the evaluation harness compares: vaerans specs, and the anchors of :mod:`.baselines`.

A codec is named by a spec string ``family[:key=value|:flag...]``:

``vaerans``
    :func:`vaerans_ecs.compress` / the stream decoder of :mod:`vaerans_ecs.api`, lossy: the encoder
    picks per image between the VAE models and the transform coder. Options: ``model`` (name or
    folder, default ``default``; a named model is used alone, through
    :func:`vaerans_ecs.api.encode_entities` on RGB sources so that every stage is timed), ``wavelet``
    (a registered wavelet or none), ``levels``, ``coder`` (a registered entropy coder), ``stages``
    (registered stages to add, ``A+B``); unset options come from the configuration. Setting:
    quality 1-100. Per-stage timings come from ``World.timings``, see :func:`stage_seconds`.
``vaerans:lossless``, ``vaerans:max_error=K``
    ``compress(img, lossless=True)`` / ``compress(img, max_error=K)``: one point each; the harness
    checks exactness / the l-infinity bound ``K`` on every image.
``jpeg``, ``webp``, ``avif``, ``jxl``, ``png``, ``webp-ll``, ``jxl-ll``, ``j2k-ll``, ``jpegls[:near=K]``
    Anchors, see :mod:`vaerans_ecs.eval.baselines`.

:meth:`Codec.unavailable` says why a codec cannot run here (None when it can); the harness skips
such codecs with that message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vaerans_ecs.core.arena import Arena
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval.base import Codec, Pixels, as_source
from vaerans_ecs.eval.baselines import (
    ANCHOR_FAMILIES,
    AvifCodec,
    J2kLosslessCodec,
    JpegCodec,
    JpegLsCodec,
    JxlCodec,
    JxlLosslessCodec,
    PillowCodec,
    PngCodec,
    WebpCodec,
    WebpLosslessCodec,
)

__all__ = [
    "DEFAULT_GRIDS",
    "FAMILIES",
    "AvifCodec",
    "Codec",
    "J2kLosslessCodec",
    "JpegCodec",
    "JpegLsCodec",
    "JxlCodec",
    "JxlLosslessCodec",
    "PillowCodec",
    "PngCodec",
    "VaeransCodec",
    "WebpCodec",
    "WebpLosslessCodec",
    "parse_codec",
    "stage_seconds",
]

#: Default quality grids of the lossy codecs, dense enough for BD-rate: ours spans ~0.02-3.1 bpp on
#: Kodak (the VAE models, then the transform coder); the anchors reach ~40-42 dB at their top.
DEFAULT_GRIDS: dict[str, tuple[float, ...]] = {
    "vaerans": (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
    "jpeg": (3, 5, 8, 12, 20, 30, 45, 65, 80, 90, 95),
    "webp": (0, 5, 15, 30, 45, 60, 72, 80, 90, 95),
    "avif": (5, 15, 25, 35, 45, 55, 65, 72, 80, 88),
    "jxl": (5, 15, 30, 45, 58, 68, 76, 84, 90, 95),
}


def _new_world() -> World:
    from vaerans_ecs.config import get_config

    cfg = get_config()
    mib = 1 << 20
    return World(Arena(cfg.arena.capacity_mb * mib, cfg.arena.max_capacity_mb * mib))


def stage_seconds(world: World, total: float, before: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-stage seconds from ``world.timings`` (one entry per system run by a Pipe).

    ``before`` are stages timed outside the pipes (listed first); whatever ``total`` leaves
    unexplained (building pipes, serialization, copies) is reported as ``other``.
    """
    stages: dict[str, float] = dict(before or {})
    for name, _n, seconds in getattr(world, "timings", []):
        stages[name] = stages.get(name, 0.0) + float(seconds)
    stages["other"] = max(total - sum(stages.values()), 0.0)
    return stages


class VaeransCodec(Codec):
    """Our codec; options ``model``, ``wavelet``, ``levels``, ``coder``, ``stages``, or exact
    ``lossless`` / ``max_error`` (see the module doc)."""

    family: ClassVar[str] = "vaerans"
    OPTIONS: ClassVar[tuple[str, ...]] = ("model", "wavelet", "levels", "coder", "stages", "lossless", "max_error")

    def __init__(self, label: str, **options: str | None) -> None:
        super().__init__(label)
        unknown = set(options) - set(self.OPTIONS)
        if unknown:
            raise VaeransError(f"codec {label!r}: unknown option(s) {sorted(unknown)}; known: {list(self.OPTIONS)}")
        flags = {k for k, v in options.items() if v is None} - {"lossless"}
        if flags:
            raise VaeransError(f"codec {label!r}: option(s) {sorted(flags)} need a value (key=value)")
        if "lossless" in options and options["lossless"] not in (None, "true", "True", "1"):
            raise VaeransError(f"codec {label!r}: lossless takes no value")
        self.bound = self._bound(label, options)
        lossy_only = sorted(set(options) - {"lossless", "max_error"})
        if self.bound is not None and lossy_only:
            raise VaeransError(f"codec {label!r}: {lossy_only} do not apply to lossless / max_error coding")
        self.model = options.get("model") or "default"
        self.wavelet = options.get("wavelet")
        self.coder = options.get("coder")
        #: registered stage names added to the pipeline (``stages=A+B``)
        self.stages = [n for n in (options.get("stages") or "").split("+") if n]
        levels = options.get("levels")
        try:
            self.levels = None if levels is None else int(levels)
        except ValueError:
            raise VaeransError(f"codec {label!r}: levels must be an integer, got {levels!r}") from None

    @staticmethod
    def _bound(label: str, options: Mapping[str, str | None]) -> int | None:
        from vaerans_ecs.systems.residual.stages import MAX_ERROR

        if "lossless" in options and "max_error" in options:
            raise VaeransError(f"codec {label!r}: give lossless or max_error, not both")
        if "lossless" in options:
            return 0
        if "max_error" not in options:
            return None
        text = options["max_error"] or ""
        if not text.isdigit() or not 0 <= int(text) <= MAX_ERROR:
            raise VaeransError(f"codec {label!r}: max_error must be an integer in 0..{MAX_ERROR}, got {text!r}")
        return int(text)

    def _settings(self) -> dict[str, Any]:
        from vaerans_ecs.config import get_config
        from vaerans_ecs.systems.entropy import DEFAULT_CODER

        cfg = get_config().codec
        return {
            "model": self.model,
            "wavelet": self.wavelet or cfg.wavelet,
            "levels": cfg.levels if self.levels is None else self.levels,
            "coder": self.coder or cfg.coder or DEFAULT_CODER,
        }

    def _stages(self) -> list[Any]:
        from vaerans_ecs.core.system import SYSTEMS

        return [SYSTEMS.get(name)() for name in self.stages]

    def unavailable(self) -> str | None:
        from vaerans_ecs.core.system import SYSTEMS
        from vaerans_ecs.models import get_model
        from vaerans_ecs.systems.entropy import coder_names
        from vaerans_ecs.systems.wavelet import wavelet_names

        if self.bound is not None:
            return None
        try:
            get_model(self.model)
        except VaeransError as exc:
            return f"model {self.model!r} is not available: {exc}"
        settings = self._settings()
        if settings["wavelet"] not in wavelet_names():
            return f"unknown wavelet {settings['wavelet']!r}; use one of {', '.join(wavelet_names())}"
        missing = [n for n in self.stages if n not in SYSTEMS]
        if missing:
            return f"stage(s) {', '.join(missing)} not registered (known: {', '.join(SYSTEMS.names())})"
        coder = settings["coder"]
        if coder not in coder_names():
            return f"entropy coder {coder!r} is not registered (known: {', '.join(coder_names())})"
        return None

    def describe(self) -> str:
        if self.bound == 0:
            return "vaerans_ecs compress(lossless=True): the pixel coder (palette, LZ and predictive paths)"
        if self.bound is not None:
            return f"vaerans_ecs compress(max_error={self.bound}): the pixel coder, step {2 * self.bound + 1}"
        s = self._settings()
        specs = self.models()
        models = ", ".join(f"{spec.name} (stride {spec.stride}, fingerprint {spec.fingerprint})" for spec in specs)
        if self.model == "default":
            return (f"vaerans_ecs compress(quality=q): per image the best of model {models} and the transform "
                    f"coder by their rate curves; VAE path wavelet {s['wavelet']} x{s['levels']}, coder {s['coder']}")
        return f"vaerans_ecs, model {models} only, wavelet {s['wavelet']} x{s['levels']}, coder {s['coder']}"

    def models(self) -> list[Any]:
        from vaerans_ecs.models import default_models, get_model

        if self.bound is not None:
            return []
        return default_models() if self.model == "default" else [get_model(self.model)]

    def encode(self, img: Any, quality: float) -> tuple[bytes, dict[str, float]]:
        from vaerans_ecs.api import compress

        src = as_source(img)
        if self.bound == 0:
            return compress(src, lossless=True), {}
        if self.bound is not None:
            return compress(src, max_error=self.bound), {}
        s = self._settings()
        if self.model != "default" and src.pixels.shape[2] == 3:
            return self._encode_vae(src, quality, s)
        data = compress(src, quality, s["model"], wavelet=s["wavelet"], levels=s["levels"], coder=s["coder"],
                        stages=self._stages())
        return data, {}

    def _encode_vae(self, src: Any, quality: float, s: Mapping[str, Any]) -> tuple[bytes, dict[str, float]]:
        """A named model on an RGB source, as ``compress`` codes it, with every stage timed."""
        from vaerans_ecs.api import encode_entities
        from vaerans_ecs.encoder import metadata_of

        world = _new_world()
        t0 = time.perf_counter()
        eid = world.spawn_image(np.ascontiguousarray(src.pixels))
        t1 = time.perf_counter()
        data = encode_entities(
            world, [eid], quality=quality, model=s["model"], wavelet=s["wavelet"], levels=s["levels"],
            coder=s["coder"], stages=self._stages(), metadata=[metadata_of(src)],
        )[0]
        stages = stage_seconds(world, time.perf_counter() - t0, {"spawn": t1 - t0})
        world.clear()
        return data, stages

    def decode(self, data: bytes, channels: int = 3) -> tuple[Pixels, dict[str, float]]:
        from vaerans_ecs.api import decode_streams
        from vaerans_ecs.components import ReconRGB

        world = _new_world()
        t0 = time.perf_counter()
        (eid,) = decode_streams(world, [data])
        recon = np.array(world.view(world.get_component(eid, ReconRGB).ref), copy=True)
        stages = stage_seconds(world, time.perf_counter() - t0)
        world.clear()
        return recon, stages


FAMILIES: dict[str, type[Codec]] = {"vaerans": VaeransCodec, **ANCHOR_FAMILIES}


def parse_codec(spec: str) -> Codec:
    """Build a codec from ``family[:key=value|:flag...]`` (see the module doc)."""
    text = spec.strip()
    family, *parts = text.split(":")
    family = family.strip().lower()
    cls = FAMILIES.get(family)
    if cls is None:
        raise VaeransError(f"unknown codec {family!r} in {spec!r}; known: {', '.join(FAMILIES)}")
    options: dict[str, str | None] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not key:
            raise VaeransError(f"codec {spec!r}: option {part!r} is not key=value")
        if not sep:
            if cls is not VaeransCodec:
                raise VaeransError(f"codec {spec!r}: option {part!r} is not key=value")
            options[key] = None
            continue
        options[key] = value.strip()
    label = family + "".join(f":{k}" if v is None else f":{k}={v}" for k, v in options.items())
    return cls(label, **options)
