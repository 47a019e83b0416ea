"""Anchor codecs of the evaluation harness: Pillow's lossy encoders and lossless / near-lossless ones.

Lossy (setting: the encoder's ``quality``; other options passed to ``Image.save``, numbers
converted, e.g. ``webp:method=6``, ``avif:speed=4``, ``jxl:effort=7``, ``jpeg:subsampling=0``):

``jpeg``
    libjpeg(-turbo) through Pillow, 4:2:0, ``optimize=True`` (optimised Huffman tables).
``webp``
    libwebp through Pillow, default method 4.
``avif``
    libavif through Pillow's built-in plugin (Pillow >= 11.2), default speed.
``jxl``
    libjxl through the ``pillow-jxl-plugin`` package, default effort.

Exact (one point each; the harness checks the decoded image against the source on every image):

``png``
    Pillow PNG, ``optimize=True``, written in the source's own mode (a palette image as "P",
    1-bit as "1"), as a user saving the image would.
``webp-ll``
    WebP lossless through Pillow, ``method=6`` (Pillow's default ``quality=80`` effort).
``jxl-ll``
    JPEG XL lossless through ``pillow-jxl-plugin`` (effort 7, the library default).
``j2k-ll``
    JPEG 2000 reversible (5/3 wavelet, RCT on colour) through imagecodecs (OpenJPEG), raw J2K codestream.
``jpegls`` / ``jpegls:near=K``
    JPEG-LS through imagecodecs (CharLS), lossless or with the NEAR bound K (no colour transform).

Lossy anchors code palette sources as RGB; every codec decodes back to the source's layout.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval.base import Codec, Pixels, array_to_layout, as_source, layout_image, pil_to_layout, source_image

__all__ = [
    "ANCHOR_FAMILIES",
    "AvifCodec",
    "J2kLosslessCodec",
    "JpegCodec",
    "JpegLsCodec",
    "JxlCodec",
    "JxlLosslessCodec",
    "PillowCodec",
    "PngCodec",
    "WebpCodec",
    "WebpLosslessCodec",
]


def number(text: str) -> Any:
    """An option value as int, float or bool where it reads as one."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _pillow_version() -> str:
    import PIL

    return str(PIL.__version__)


def _has_feature(name: str) -> bool:
    from PIL import features

    try:
        return bool(features.check(name))
    except ValueError:  # a Pillow that does not know the feature
        return False


class PillowCodec(Codec):
    """A Pillow encoder: ``Image.save(format=FORMAT, quality=q, **defaults, **options)``."""

    format: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    #: plugin module to import before saving or opening (registers the format)
    plugin: ClassVar[str | None] = None

    def __init__(self, label: str, **options: str) -> None:
        super().__init__(label)
        if "quality" in options and self.bound is None:
            raise VaeransError(f"codec {label!r}: quality is the setting; give it with --qualities")
        self.options: dict[str, Any] = {**self.defaults, **{k: number(v) for k, v in options.items()}}

    def _plugin(self) -> None:
        if self.plugin is not None:
            __import__(self.plugin)

    def unavailable(self) -> str | None:
        from PIL import Image

        try:
            self._plugin()
        except ImportError:
            return f"{self.format} needs the {self.plugin} module (pip install pillow-jxl-plugin)"
        Image.init()
        if self.format not in Image.SAVE:
            return f"Pillow {_pillow_version()} has no {self.format} encoder"
        return None

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"Pillow {_pillow_version()} {self.format}" + (f" ({opts})" if opts else "")

    def _image(self, img: Any) -> Any:
        return layout_image(as_source(img))

    def _save_kwargs(self, quality: float) -> dict[str, Any]:
        q = int(quality) if float(quality).is_integer() else quality
        return {"quality": q, **self.options}

    def encode(self, img: Any, quality: float) -> tuple[bytes, dict[str, float]]:
        self._plugin()
        buf = io.BytesIO()
        self._image(img).save(buf, format=self.format, **self._save_kwargs(quality))
        return buf.getvalue(), {}

    def decode(self, data: bytes, channels: int = 3) -> tuple[Pixels, dict[str, float]]:
        from PIL import Image

        self._plugin()
        with Image.open(io.BytesIO(data), formats=[self.format]) as im:
            im.load()
            return pil_to_layout(im, channels), {}


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
        return None if _has_feature("webp") else "Pillow was built without WebP support"


class AvifCodec(PillowCodec):
    """libavif through Pillow's built-in AVIF plugin (default speed)."""

    family: ClassVar[str] = "avif"
    format: ClassVar[str] = "AVIF"

    def unavailable(self) -> str | None:
        ok = _has_feature("avif")
        return None if ok else f"Pillow {_pillow_version()} has no built-in AVIF support (needs Pillow >= 11.2)"


class JxlCodec(PillowCodec):
    """libjxl through the ``pillow-jxl-plugin`` package (default effort)."""

    family: ClassVar[str] = "jxl"
    format: ClassVar[str] = "JXL"
    plugin: ClassVar[str | None] = "pillow_jxl"


class _PillowLossless(PillowCodec):
    """A Pillow encoder in its lossless mode: one point, the bound is 0."""

    bound: int | None = 0

    def _save_kwargs(self, quality: float) -> dict[str, Any]:
        return dict(self.options)


class PngCodec(_PillowLossless):
    """PNG, ``optimize=True``, in the source's own mode."""

    family: ClassVar[str] = "png"
    format: ClassVar[str] = "PNG"
    defaults: ClassVar[dict[str, Any]] = {"optimize": True}

    def _image(self, img: Any) -> Any:
        return source_image(as_source(img))


class WebpLosslessCodec(_PillowLossless):
    """WebP lossless, method 6."""

    family: ClassVar[str] = "webp-ll"
    format: ClassVar[str] = "WEBP"
    defaults: ClassVar[dict[str, Any]] = {"lossless": True, "method": 6}

    def unavailable(self) -> str | None:
        return None if _has_feature("webp") else "Pillow was built without WebP support"


class JxlLosslessCodec(_PillowLossless):
    """JPEG XL lossless (pillow-jxl-plugin, default effort 7)."""

    family: ClassVar[str] = "jxl-ll"
    format: ClassVar[str] = "JXL"
    defaults: ClassVar[dict[str, Any]] = {"lossless": True}
    plugin: ClassVar[str | None] = "pillow_jxl"


class _ImagecodecsCodec(Codec):
    """An imagecodecs encoder on the layout's array (HxW for gray)."""

    name: ClassVar[str]

    def unavailable(self) -> str | None:
        try:
            import imagecodecs
        except ImportError:
            return "needs the imagecodecs package (pip install imagecodecs)"
        if not getattr(imagecodecs, self.name.upper()).available:
            return f"imagecodecs {imagecodecs.__version__} was built without {self.name}"
        return None

    def describe(self) -> str:
        import imagecodecs

        version = getattr(imagecodecs, f"{self.name}_version")()
        return f"imagecodecs {imagecodecs.__version__} {version}"

    @staticmethod
    def _array(img: Any) -> Pixels:
        px = as_source(img).pixels
        return np.ascontiguousarray(px[:, :, 0] if px.shape[2] == 1 else px)


class J2kLosslessCodec(_ImagecodecsCodec):
    """JPEG 2000 reversible (OpenJPEG), RCT on colour, J2K codestream."""

    family: ClassVar[str] = "j2k-ll"
    name: ClassVar[str] = "jpeg2k"
    bound: int | None = 0

    def __init__(self, label: str, **options: str) -> None:
        super().__init__(label)
        if options:
            raise VaeransError(f"codec {label!r} takes no options")

    def describe(self) -> str:
        return super().describe() + ", reversible 5/3, RCT, J2K codestream"

    def encode(self, img: Any, quality: float) -> tuple[bytes, dict[str, float]]:
        import imagecodecs

        return bytes(imagecodecs.jpeg2k_encode(self._array(img), reversible=True, codecformat="J2K")), {}

    def decode(self, data: bytes, channels: int = 3) -> tuple[Pixels, dict[str, float]]:
        import imagecodecs

        return array_to_layout(imagecodecs.jpeg2k_decode(data), channels), {}


class JpegLsCodec(_ImagecodecsCodec):
    """JPEG-LS (CharLS): lossless, or ``near=K`` (every sample within K)."""

    family: ClassVar[str] = "jpegls"
    name: ClassVar[str] = "jpegls"

    def __init__(self, label: str, **options: str) -> None:
        super().__init__(label)
        unknown = set(options) - {"near"}
        if unknown:
            raise VaeransError(f"codec {label!r}: unknown option(s) {sorted(unknown)}; known: ['near']")
        try:
            near = int(options.get("near", "0"))
        except ValueError:
            raise VaeransError(f"codec {label!r}: near must be an integer") from None
        if not 0 <= near <= 255:
            raise VaeransError(f"codec {label!r}: near must be in 0..255, got {near}")
        self.bound = near

    def describe(self) -> str:
        return super().describe() + (f", NEAR={self.bound}" if self.bound else ", lossless")

    def encode(self, img: Any, quality: float) -> tuple[bytes, dict[str, float]]:
        import imagecodecs

        level = self.bound if self.bound else None
        return bytes(imagecodecs.jpegls_encode(self._array(img), level=level)), {}

    def decode(self, data: bytes, channels: int = 3) -> tuple[Pixels, dict[str, float]]:
        import imagecodecs

        return array_to_layout(imagecodecs.jpegls_decode(data), channels), {}


#: Anchor codec families by spec name.
ANCHOR_FAMILIES: dict[str, type[Codec]] = {
    "jpeg": JpegCodec,
    "webp": WebpCodec,
    "avif": AvifCodec,
    "jxl": JxlCodec,
    "png": PngCodec,
    "webp-ll": WebpLosslessCodec,
    "jxl-ll": JxlLosslessCodec,
    "j2k-ll": J2kLosslessCodec,
    "jpegls": JpegLsCodec,
}
