"""The codec interface of the evaluation harness and the image conversions codecs share.

A codec codes a :class:`~vaerans_ecs.imaging.SourceImage` in its own layout (HxWxC, C = 1 gray,
2 gray + alpha, 3 RGB or palette, 4 RGBA) and decodes back to that layout, so that distortion is
measured over the channels actually coded. Exact codecs (lossless, or near-lossless with an
l-infinity bound) say so with :attr:`Codec.bound`; the harness checks the bound on every image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.imaging import ImageMeta, SourceImage, load_source

__all__ = ["Codec", "Pixels", "as_source", "layout_image", "pil_to_layout", "source_image", "version_of"]

Pixels = npt.NDArray[np.uint8]

#: PIL mode of each coded layout (channels -> mode).
_LAYOUT_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def as_source(img: Any) -> SourceImage:
    """``img`` (a SourceImage, an array or a PIL image) as an 8-bit SourceImage."""
    src = img if isinstance(img, SourceImage) else load_source(img)
    if src.bit_depth != 8:
        raise VaeransError(f"the evaluation harness measures 8-bit images; this one is {src.bit_depth}-bit")
    return src


def layout_image(src: SourceImage) -> Any:
    """A PIL image of the coded layout (palette sources as RGB): what lossy anchors are given."""
    from PIL import Image

    px = src.pixels
    mode = _LAYOUT_MODES[px.shape[2]]
    return Image.fromarray(np.ascontiguousarray(px[:, :, 0] if px.shape[2] == 1 else px), mode)


def source_image(src: SourceImage) -> Any:
    """A PIL image in the source's own mode ("P" keeps a palette, "1" is 1-bit): what PNG is given."""
    from vaerans_ecs.imaging import restore_image

    return restore_image(src.pixels, ImageMeta(mode=src.mode))


def pil_to_layout(im: Any, channels: int) -> Pixels:
    """Decoded PIL image -> HxWx``channels`` uint8; a gray source decoded as RGB keeps R when R = G = B, else luma."""
    if channels == 1 and im.mode not in ("L", "1"):
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]):
            return np.ascontiguousarray(rgb[:, :, :1])
    mode = _LAYOUT_MODES[channels]
    arr = np.asarray(im if im.mode == mode else im.convert(mode), dtype=np.uint8)
    return np.ascontiguousarray(arr.reshape(arr.shape[0], arr.shape[1], channels))


def array_to_layout(arr: npt.NDArray[Any], channels: int) -> Pixels:
    """A decoded array (HxW or HxWxC uint8) -> HxWx``channels``; wrong layouts raise VaeransError."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise VaeransError(f"decoded dtype {a.dtype}, expected uint8")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] != channels:
        raise VaeransError(f"decoded shape {a.shape}, expected {channels} channel(s)")
    return np.ascontiguousarray(a)


def version_of(module: str) -> str:
    """The installed version of a distribution or module, or '?'."""
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "?"


class Codec(ABC):
    """One codec configuration; ``label`` names it in results (the spec string).

    ``bound`` is None for a lossy codec, else the largest absolute error it promises on every
    pixel and channel (0: lossless). Exact codecs have one fixed setting (``fixed``), which is
    the bound itself; quality grids do not apply to them.
    """

    family: ClassVar[str]
    bound: int | None = None

    def __init__(self, label: str) -> None:
        self.label = label

    @property
    def fixed(self) -> bool:
        """Whether the codec has a single setting (exact codecs)."""
        return self.bound is not None

    def default_settings(self) -> tuple[float, ...]:
        """Settings tried when the user gives none (quality grid, or the bound of an exact codec)."""
        from vaerans_ecs.eval.codecs import DEFAULT_GRIDS

        if self.bound is not None:
            return (float(self.bound),)
        return DEFAULT_GRIDS[self.family]

    def unavailable(self) -> str | None:
        """Why this codec cannot run here, or None."""
        return None

    def describe(self) -> str:
        """One line on what runs (library, options)."""
        return self.label

    @abstractmethod
    def encode(self, img: Any, quality: float) -> tuple[bytes, dict[str, float]]:
        """Compress ``img`` (a SourceImage, or an array / PIL image read by ``load_source``).

        Returns the bytes and per-stage seconds (may be empty).
        """

    @abstractmethod
    def decode(self, data: bytes, channels: int = 3) -> tuple[Pixels, dict[str, float]]:
        """Decompress to HxWx``channels`` uint8 (the source's coded layout) and per-stage seconds."""

    def models(self) -> list[Any]:
        """ModelSpecs this codec runs (for the MACs table)."""
        return []
