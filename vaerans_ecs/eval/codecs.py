"""Codecs the evaluation harness compares: vaerans pipelines and Pillow baselines.

A codec is named by a spec string ``family[:key=value[:key=value...]]``:

``vaerans``
    Our pipeline through :func:`vaerans_ecs.api.encode_entities` (``OnnxVAEEncode | Hadamard4 |
    wavelet | QuantizeU8 | ANSEncode``) and the stream decoder of :mod:`vaerans_ecs.api`. Options:
    ``model`` (name or folder, default ``default``), ``wavelet`` (a registered wavelet or none),
    ``levels``, ``coder`` (a registered entropy coder), ``stages`` (registered stages to add,
    ``A+B``); unset options come from
    the configuration, as for :func:`vaerans_ecs.compress`. Setting: quality 1-100. Per-stage
    timings come from ``World.timings`` (every system a Pipe runs), see :func:`stage_seconds`.
``jpeg``, ``webp``, ``avif``, ``jxl``
    Pillow encoders (AVIF: Pillow's built-in plugin when ``features.check("avif")``; JPEG XL: the
    ``pillow-jxl-plugin`` package). Setting: the encoder's ``quality``. Other options are passed to
    ``Image.save`` (numbers converted), e.g. ``webp:method=6``, ``avif:speed=4``, ``jxl:effort=7``,
    ``jpeg:subsampling=0``. JPEG defaults to ``optimize=True`` (optimised Huffman tables).

:meth:`Codec.unavailable` says why a codec cannot run here (None when it can); the harness skips
such codecs with that message.
"""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from vaerans_ecs.core.arena import Arena
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import VaeransError

__all__ = [
    "DEFAULT_GRIDS",
    "AvifCodec",
    "Codec",
    "JpegCodec",
    "JxlCodec",
    "PillowCodec",
    "VaeransCodec",
    "WebpCodec",
    "parse_codec",
    "stage_seconds",
]

U8Image = npt.NDArray[np.uint8]

#: Default quality grids: 8-9 points each, spanning about 0.02-1.2 bpp on Kodak (dense enough for BD-rate).
DEFAULT_GRIDS: dict[str, tuple[float, ...]] = {
    # quality walks the built-in models' rate range log-linearly: denser where the baselines are
    "vaerans": (1, 20, 40, 50, 60, 70, 80, 90, 100),
    "jpeg": (3, 5, 8, 12, 20, 30, 45, 65),
    "webp": (0, 5, 15, 30, 45, 60, 72, 80),
    "avif": (5, 15, 25, 35, 45, 55, 65, 72),
    "jxl": (5, 15, 30, 45, 58, 68, 76, 84),
}


class Codec(ABC):
    """One codec configuration; ``label`` names it in results (the spec string)."""

    family: ClassVar[str]

    def __init__(self, label: str) -> None:
        self.label = label

    def default_settings(self) -> tuple[float, ...]:
        """Quality values tried when the user gives none."""
        return DEFAULT_GRIDS[self.family]

    def unavailable(self) -> str | None:
        """Why this codec cannot run here, or None."""
        return None

    def describe(self) -> str:
        """One line on what runs (library, options)."""
        return self.label

    @abstractmethod
    def encode(self, img: U8Image, quality: float) -> tuple[bytes, dict[str, float]]:
        """Compress; returns the bytes and per-stage seconds (may be empty)."""

    @abstractmethod
    def decode(self, data: bytes) -> tuple[U8Image, dict[str, float]]:
        """Decompress to HxWx3 uint8; returns the image and per-stage seconds (may be empty)."""

    def models(self) -> list[Any]:
        """ModelSpecs this codec runs (for the MACs table)."""
        return []


# ----------------------------------------------------------------------------------------------
# vaerans
# ----------------------------------------------------------------------------------------------
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
    """Our pipeline; options ``model``, ``wavelet``, ``levels``, ``coder`` (see the module doc)."""

    family: ClassVar[str] = "vaerans"
    OPTIONS: ClassVar[tuple[str, ...]] = ("model", "wavelet", "levels", "coder", "stages")

    def __init__(self, label: str, **options: str) -> None:
        super().__init__(label)
        unknown = set(options) - set(self.OPTIONS)
        if unknown:
            raise VaeransError(f"codec {label!r}: unknown option(s) {sorted(unknown)}; known: {list(self.OPTIONS)}")
        self.model = options.get("model", "default")
        self.wavelet = options.get("wavelet")
        self.coder = options.get("coder")
        #: registered stage names added to the pipeline (``stages=A+B``)
        self.stages = [n for n in options.get("stages", "").split("+") if n]
        levels = options.get("levels")
        try:
            self.levels = None if levels is None else int(levels)
        except ValueError:
            raise VaeransError(f"codec {label!r}: levels must be an integer, got {levels!r}") from None

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
        s = self._settings()
        specs = self.models()
        models = ", ".join(f"{spec.name} (stride {spec.stride}, fingerprint {spec.fingerprint})" for spec in specs)
        chosen = " chosen per quality by their rate curves" if len(specs) > 1 else ""
        return f"vaerans_ecs, model {models}{chosen}, wavelet {s['wavelet']} x{s['levels']}, coder {s['coder']}"

    def models(self) -> list[Any]:
        from vaerans_ecs.models import default_models, get_model

        return default_models() if self.model == "default" else [get_model(self.model)]

    def encode(self, img: U8Image, quality: float) -> tuple[bytes, dict[str, float]]:
        from vaerans_ecs.api import encode_entities

        s = self._settings()
        world = _new_world()
        t0 = time.perf_counter()
        eid = world.spawn_image(img)
        t1 = time.perf_counter()
        data = encode_entities(
            world, [eid], quality=quality, model=s["model"], wavelet=s["wavelet"], levels=s["levels"], coder=s["coder"],
            stages=self._stages(),
        )[0]
        stages = stage_seconds(world, time.perf_counter() - t0, {"spawn": t1 - t0})
        world.clear()
        return data, stages

    def decode(self, data: bytes) -> tuple[U8Image, dict[str, float]]:
        from vaerans_ecs.api import decode_streams
        from vaerans_ecs.components import ReconRGB

        world = _new_world()
        t0 = time.perf_counter()
        (eid,) = decode_streams(world, [data])
        recon = np.array(world.view(world.get_component(eid, ReconRGB).ref), dtype=np.uint8, copy=True)
        stages = stage_seconds(world, time.perf_counter() - t0)
        world.clear()
        return recon, stages


# ----------------------------------------------------------------------------------------------
# Pillow baselines
# ----------------------------------------------------------------------------------------------
def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


class PillowCodec(Codec):
    """A Pillow encoder: ``Image.save(format=FORMAT, quality=q, **defaults, **options)``."""

    format: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, label: str, **options: str) -> None:
        super().__init__(label)
        if "quality" in options:
            raise VaeransError(f"codec {label!r}: quality is the setting; give it with --qualities")
        self.options: dict[str, Any] = {**self.defaults, **{k: _number(v) for k, v in options.items()}}

    def unavailable(self) -> str | None:
        from PIL import Image

        Image.init()
        if self.format not in Image.SAVE:
            return f"Pillow {_pillow_version()} has no {self.format} encoder"
        return None

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"Pillow {_pillow_version()} {self.format}" + (f" ({opts})" if opts else "")

    def encode(self, img: U8Image, quality: float) -> tuple[bytes, dict[str, float]]:
        from PIL import Image

        q = int(quality) if float(quality).is_integer() else quality
        buf = io.BytesIO()
        Image.fromarray(img, "RGB").save(buf, format=self.format, quality=q, **self.options)
        return buf.getvalue(), {}

    def decode(self, data: bytes) -> tuple[U8Image, dict[str, float]]:
        from PIL import Image

        with Image.open(io.BytesIO(data), formats=[self.format]) as im:
            im.load()
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy(), {}


def _pillow_version() -> str:
    import PIL

    return str(PIL.__version__)


class JpegCodec(PillowCodec):
    """libjpeg(-turbo) through Pillow, 4:2:0, optimised Huffman tables."""

    family: ClassVar[str] = "jpeg"
    format: ClassVar[str] = "JPEG"
    defaults: ClassVar[dict[str, Any]] = {"optimize": True}


class WebpCodec(PillowCodec):
    """libwebp (lossy) through Pillow, default method 4."""

    family: ClassVar[str] = "webp"
    format: ClassVar[str] = "WEBP"

    def unavailable(self) -> str | None:
        from PIL import features

        return None if features.check("webp") else "Pillow was built without WebP support"


class AvifCodec(PillowCodec):
    """libavif through Pillow's built-in AVIF plugin (default speed)."""

    family: ClassVar[str] = "avif"
    format: ClassVar[str] = "AVIF"

    def unavailable(self) -> str | None:
        from PIL import features

        try:
            ok = bool(features.check("avif"))
        except ValueError:  # Pillow older than 11.2 does not know the feature
            ok = False
        return None if ok else f"Pillow {_pillow_version()} has no built-in AVIF support (needs Pillow >= 11.2)"


class JxlCodec(PillowCodec):
    """libjxl through the ``pillow-jxl-plugin`` package (default effort)."""

    family: ClassVar[str] = "jxl"
    format: ClassVar[str] = "JXL"

    def unavailable(self) -> str | None:
        try:
            import pillow_jxl  # noqa: F401  (registers the JXL plugin)
        except ImportError:
            return "JPEG XL needs the pillow-jxl-plugin package (pip install pillow-jxl-plugin)"
        return super().unavailable()

    def encode(self, img: U8Image, quality: float) -> tuple[bytes, dict[str, float]]:
        import pillow_jxl  # noqa: F401

        return super().encode(img, quality)

    def decode(self, data: bytes) -> tuple[U8Image, dict[str, float]]:
        import pillow_jxl  # noqa: F401

        return super().decode(data)


FAMILIES: dict[str, type[Codec]] = {
    "vaerans": VaeransCodec,
    "jpeg": JpegCodec,
    "webp": WebpCodec,
    "avif": AvifCodec,
    "jxl": JxlCodec,
}


def parse_codec(spec: str) -> Codec:
    """Build a codec from ``family[:key=value...]`` (see the module doc)."""
    text = spec.strip()
    family, *parts = text.split(":")
    family = family.strip().lower()
    cls = FAMILIES.get(family)
    if cls is None:
        raise VaeransError(f"unknown codec {family!r} in {spec!r}; known: {', '.join(FAMILIES)}")
    options: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise VaeransError(f"codec {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = value.strip()
    label = family + "".join(f":{k}={v}" for k, v in options.items())
    return cls(label, **options)
