"""The source description: :class:`SourceImage` (pixels + mode + ICC + EXIF) and :class:`ImageMeta`.

Also the array rules (what a numpy array means as an image) and the lossy path's view of a
source, :func:`rgb_uint8`. Reading PIL images and files lives in :mod:`.reading`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ImageInputError

__all__ = [
    "ALPHA_MODES",
    "GRAY_MODES",
    "MAX_METADATA_BYTES",
    "MODES",
    "ImageMeta",
    "SourceImage",
    "check_pixel_count",
    "mode_for",
    "normalise_exif",
    "rgb_uint8",
    "source_from_array",
]

log = logging.getLogger(__name__)

#: The closed set of source modes, in a fixed order (append only: a stream may store the index).
#: ``"1"`` is bilevel (one channel, 0 or 255); ``"P"`` is a palette image kept expanded to RGB
#: (3 channels) or RGBA (4, when the palette has transparency); ``";16"`` modes hold uint16.
MODES: Final[tuple[str, ...]] = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "LA;16", "RGB;16", "RGBA;16")
#: Modes with one gray channel (plus alpha for LA).
GRAY_MODES: Final[frozenset[str]] = frozenset({"1", "L", "LA", "I;16", "LA;16"})
#: Modes whose last channel is alpha (a "P" source has alpha when it has 4 channels).
ALPHA_MODES: Final[frozenset[str]] = frozenset({"LA", "RGBA", "LA;16", "RGBA;16"})
#: Largest ICC profile or EXIF block a source may carry (larger ones are refused, not truncated).
MAX_METADATA_BYTES: Final[int] = 1 << 24

_CHANNELS: Final[dict[str, tuple[int, ...]]] = {
    "1": (1,), "L": (1,), "LA": (2,), "P": (3, 4), "RGB": (3,), "RGBA": (4,),
    "I;16": (1,), "LA;16": (2,), "RGB;16": (3,), "RGBA;16": (4,),
}
_BY_CHANNELS: Final[dict[int, dict[int, str]]] = {
    8: {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"},
    16: {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"},
}
_TIFF_HEADERS: Final[tuple[bytes, bytes]] = (b"II*\x00", b"MM\x00*")


def mode_for(channels: int, bit_depth: int) -> str:
    """The plain mode of ``channels`` (1..4) at ``bit_depth`` (8 or 16): "L", "LA", "RGB;16", ..."""
    try:
        return _BY_CHANNELS[bit_depth][channels]
    except KeyError:
        raise ImageInputError(f"no mode has {channels} channels at {bit_depth} bits") from None


def _check_blob(name: str, blob: object) -> None:
    if blob is None:
        return
    if not isinstance(blob, bytes):
        raise ImageInputError(f"{name} must be bytes or None, got {type(blob).__name__}")
    if not blob:
        raise ImageInputError(f"{name} must be None when absent, not empty bytes")
    if len(blob) > MAX_METADATA_BYTES:
        raise ImageInputError(f"{name} of {len(blob)} bytes exceeds the {MAX_METADATA_BYTES}-byte limit")


@dataclass(frozen=True)
class ImageMeta:
    """What a stream keeps of its source besides pixels: the mode, the ICC profile, the EXIF block.

    ``exif`` is the TIFF-structured EXIF block (starting ``II*\\0`` or ``MM\\0*``), without the
    ``Exif\\0\\0`` prefix JPEG puts in front of it; :func:`normalise_exif` makes that form.
    """

    mode: str = "RGB"
    icc: bytes | None = None
    exif: bytes | None = None

    def __post_init__(self) -> None:
        if self.mode not in _CHANNELS:
            raise ImageInputError(f"unknown source mode {self.mode!r}; modes are {', '.join(MODES)}")
        _check_blob("icc", self.icc)
        _check_blob("exif", self.exif)
        if self.exif is not None and self.exif[:4] not in _TIFF_HEADERS:
            raise ImageInputError("exif must start with a TIFF header (II*\\0 or MM\\0*)")

    @property
    def bit_depth(self) -> int:
        """8, or 16 for the ``;16`` modes."""
        return 16 if self.mode.endswith(";16") else 8

    @property
    def channels(self) -> tuple[int, ...]:
        """Channel counts a source of this mode may have (two for "P": without or with alpha)."""
        return _CHANNELS[self.mode]


def normalise_exif(raw: object) -> bytes | None:
    """The TIFF-structured form of an EXIF block (``Exif\\0\\0`` prefix removed), None if unusable."""
    if not isinstance(raw, (bytes, bytearray)) or not raw:
        return None
    data = bytes(raw)
    if data.startswith(b"Exif\x00\x00"):
        data = data[6:]
    if data[:4] not in _TIFF_HEADERS or len(data) > MAX_METADATA_BYTES:
        log.warning("ignoring a malformed EXIF block (%d bytes)", len(data))
        return None
    return data


@dataclass(frozen=True, eq=False)
class SourceImage:
    """An image as the codec sees it: (H, W, C) pixels, a mode from :data:`MODES`, ICC and EXIF.

    ``pixels`` is C-contiguous and read-only, uint8 (``bit_depth`` 8) or native uint16
    (``bit_depth`` 16), with C allowed by ``mode``; it may share memory with the caller's array.
    Pixels are as stored in the source: never rotated by the EXIF orientation.
    """

    pixels: npt.NDArray[Any]
    mode: str
    icc: bytes | None = None
    exif: bytes | None = None
    bit_depth: int = 8

    def __post_init__(self) -> None:
        meta = ImageMeta(self.mode, self.icc, self.exif)  # validates mode and metadata
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.ndim != 3:
            raise ImageInputError("SourceImage.pixels must be an (H, W, C) numpy array")
        if p.shape[0] < 1 or p.shape[1] < 1:
            raise ImageInputError(f"empty image of shape {p.shape}")
        if p.shape[2] not in meta.channels:
            raise ImageInputError(f"mode {self.mode!r} has {meta.channels} channels, pixels have {p.shape[2]}")
        if self.bit_depth != meta.bit_depth:
            raise ImageInputError(f"mode {self.mode!r} is {meta.bit_depth}-bit, not {self.bit_depth}")
        want = np.dtype(np.uint16 if self.bit_depth == 16 else np.uint8)
        if p.dtype != want or not p.dtype.isnative or not p.flags.c_contiguous:
            raise ImageInputError(f"mode {self.mode!r} needs C-contiguous {want} pixels, got {p.dtype}")
        if self.mode == "1" and not bool(np.all((p == 0) | (p == 255))):
            raise ImageInputError('mode "1" pixels must be 0 or 255')
        if p.flags.writeable:
            view = p.view()
            view.flags.writeable = False
            object.__setattr__(self, "pixels", view)

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns."""
        return int(self.pixels.shape[1])

    @property
    def meta(self) -> ImageMeta:
        """Mode, ICC and EXIF: what a stream stores to restore the source's kind on output."""
        return ImageMeta(self.mode, self.icc, self.exif)


def check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image larger than ``max_pixels`` (call it before decoding or copying pixels)."""
    if width * height > max_pixels:
        raise ImageInputError(
            f"image of {width}x{height} = {width * height} pixels exceeds [runtime] max_pixels = {max_pixels}"
        )


def _readonly(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = arr.view()
    view.flags.writeable = False
    return view


def source_from_array(
    obj: npt.NDArray[Any], max_pixels: int, *, icc: bytes | None = None, exif: bytes | None = None
) -> SourceImage:
    """Describe a numpy array by the array rules (see the package docstring); no copy when none is needed."""
    if isinstance(obj, np.ma.MaskedArray) and np.ma.getmask(obj) is not np.ma.nomask and obj.mask.any():
        raise ImageInputError("masked array with masked pixels: fill it first (np.ma.filled)")
    arr = np.asarray(obj)  # drops subclasses: np.matrix is a 2-D array like any other
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageInputError(f"expected an HxW, HxWx1, HxWx2, HxWx3 or HxWx4 image, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageInputError(f"empty image of shape {arr.shape}")
    check_pixel_count(arr.shape[1], arr.shape[0], max_pixels)
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    channels = arr.shape[2]
    if kind == "b":
        pixels = np.ascontiguousarray(arr, dtype=np.uint8) * np.uint8(255)
        mode = "1" if channels == 1 else mode_for(channels, 8)
        return SourceImage(pixels, mode, icc, exif, 8)
    if kind == "u" and size == 1:
        return SourceImage(_readonly(np.ascontiguousarray(arr)), mode_for(channels, 8), icc, exif, 8)
    if kind == "u" and size == 2:  # any byte order
        pixels = np.ascontiguousarray(arr.astype(np.uint16, copy=False))
        return SourceImage(_readonly(pixels), mode_for(channels, 16), icc, exif, 16)
    if kind == "f":
        return SourceImage(_float_to_uint8(arr), mode_for(channels, 8), icc, exif, 8)
    raise ImageInputError(f"unsupported dtype {arr.dtype}: use uint8, uint16, bool or float in [0, 1]")


def _float_to_uint8(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """``round(v * 255)`` for finite floats in [0, 1]; anything else is refused."""
    if not np.isfinite(arr).all():
        raise ImageInputError("float image contains NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ImageInputError(f"float images must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return np.ascontiguousarray(np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8))


def rgb_uint8(src: SourceImage) -> npt.NDArray[np.uint8]:
    """The lossy path's view of a source: HxWx3 uint8 (alpha dropped, gray replicated, 16-bit to 8).

    16-bit samples become ``round(v / 257)`` (integer: ``(v + 128) // 257``). Returns the source's
    own buffer when it already is RGB 8-bit (read-only), a new array otherwise.
    """
    p = src.pixels
    channels = p.shape[2]
    colour = p[:, :, :3] if channels >= 3 else p[:, :, :1]
    if src.bit_depth == 16:
        colour = ((colour.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return np.ascontiguousarray(colour, dtype=np.uint8)
