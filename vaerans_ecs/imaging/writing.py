"""Output: decoded pixels + :class:`ImageMeta` back to a PIL image of the source's mode, and to files.

:func:`restore_image` rebuilds the source's kind from what was decoded; :func:`encode_image`
writes it in a file format (chosen by name or extension, with ICC and EXIF where the format
holds them, and an explicit quality for lossy formats); :func:`save_image` writes it to a path.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ImageInputError, VaeransError
from vaerans_ecs.imaging.png import encode_png16
from vaerans_ecs.imaging.source import ALPHA_MODES, GRAY_MODES, ImageMeta

__all__ = [
    "EXIF_FORMATS",
    "ICC_FORMATS",
    "LOSSY_FORMATS",
    "encode_image",
    "image_format",
    "is_lossy_format",
    "restore_image",
    "save_image",
]

log = logging.getLogger(__name__)

#: Formats whose Pillow writer loses information whatever the image: they need a quality.
LOSSY_FORMATS: Final[frozenset[str]] = frozenset({"JPEG", "MPO", "WEBP", "AVIF", "JXL", "HEIF"})
#: Formats that carry an EXIF block (checked by writing and reading back with Pillow 13).
EXIF_FORMATS: Final[frozenset[str]] = frozenset({"PNG", "JPEG", "MPO", "WEBP", "AVIF", "JXL", "HEIF"})
#: Formats that carry an ICC profile.
ICC_FORMATS: Final[frozenset[str]] = frozenset({"PNG", "JPEG", "MPO", "WEBP", "TIFF", "AVIF", "HEIF"})
#: Formats holding at most 256 colours: anything else would be quantised on the way.
_PALETTE_FORMATS: Final[frozenset[str]] = frozenset({"GIF"})
#: Pillow formats never written here (a decoded image is not re-encoded as a .vae stream).
_NOT_WRITTEN: Final[frozenset[str]] = frozenset({"VAERANS"})
_ORIENTATION: Final[int] = 0x0112
_ICC_SPACE: Final[dict[bool, bytes]] = {True: b"GRAY", False: b"RGB "}


def image_format(name: str | os.PathLike[str]) -> str:
    """The Pillow format to write for a format name (``"webp"``), an extension (``".jpg"``) or a path.

    Raises :class:`VaeransError` naming the writable extensions when Pillow cannot write it.
    """
    from PIL import Image

    Image.init()
    text = os.fspath(name).strip()
    writable = {f for f in Image.SAVE if f not in _NOT_WRITTEN}
    fmt = text.upper() if text.upper() in writable else None
    if fmt is None:
        ext = text.lower() if text.startswith(".") else os.path.splitext(text)[1].lower() or "." + text.lower()
        fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in writable:
        exts = " ".join(sorted(e for e, f in Image.registered_extensions().items() if f in writable))
        raise VaeransError(f"cannot write {text!r}: not a format Pillow writes; writable extensions: {exts}")
    return fmt


def is_lossy_format(name: str | os.PathLike[str]) -> bool:
    """True when writing ``name`` (format, extension or path) loses information and so needs a quality."""
    return image_format(name) in LOSSY_FORMATS


def _planes(pixels: npt.NDArray[Any], meta: ImageMeta) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
    """(colour or gray plane(s) in the source's family, alpha or None) from decoded pixels."""
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.dtype not in (np.uint8, np.uint16):
        raise ImageInputError(f"decoded pixels must be (H, W[, 1..4]) uint8 or uint16, got {arr.dtype} {arr.shape}")
    channels = arr.shape[2]
    colour = arr[:, :, :3] if channels >= 3 else arr[:, :, :1]
    alpha = arr[:, :, channels - 1] if channels in (2, 4) else None
    if meta.mode not in ALPHA_MODES and meta.mode != "P":
        alpha = None
    gray = meta.mode in GRAY_MODES
    if gray and colour.shape[2] == 3:  # decoded as RGB (the lossy path): the rounded mean is the gray
        total = colour.astype(np.uint32).sum(axis=2, keepdims=True)
        colour = ((total + 1) // 3).astype(arr.dtype)
    elif not gray and colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return colour, alpha


def _palettised(colour: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8] | None) -> Any:
    """A "P" image of exactly these colours when there are at most 256, else None."""
    from PIL import Image

    h, w = colour.shape[:2]
    keys = (colour[:, :, 0].astype(np.uint32) << 16) | (colour[:, :, 1].astype(np.uint32) << 8) | colour[:, :, 2]
    if alpha is not None:
        keys = (keys << 8) | alpha
    flat = keys.reshape(-1)
    if np.unique(flat[:: max(1, flat.size // 65536)]).size > 256:  # cheap early refusal
        return None
    values, index = np.unique(flat, return_inverse=True)
    if values.size > 256:
        return None
    nbytes = 3 if alpha is None else 4
    shifts = np.arange(nbytes - 1, -1, -1, dtype=np.uint32) * 8
    palette = ((values[:, None] >> shifts) & 0xFF).astype(np.uint8)
    img = Image.frombytes("P", (w, h), index.astype(np.uint8).tobytes())
    img.putpalette(palette.tobytes(), rawmode="RGB" if alpha is None else "RGBA")
    return img


def _attach(img: Any, meta: ImageMeta, gray: bool) -> Any:
    if meta.icc is not None:
        if meta.icc[16:20] == _ICC_SPACE[gray]:
            img.info["icc_profile"] = meta.icc
        else:
            log.info("ICC profile for colour space %r dropped from a %s image", meta.icc[16:20], img.mode)
    if meta.exif is not None:
        img.info["exif"] = b"Exif\x00\x00" + meta.exif
    return img


def restore_image(pixels: npt.NDArray[Any], meta: ImageMeta) -> Any:
    """A PIL image of the decoded ``pixels`` in the source's mode, with ICC and EXIF in ``info``.

    Gray sources come back gray (the rounded mean when decoded as RGB), "1" when every value is
    0 or 255, "P" when at most 256 colours remain; alpha only where it was decoded; bit depth
    follows the decoded dtype. 16-bit pixels other than plain gray have no Pillow mode: write
    them with :func:`encode_image` (16-bit PNG).
    """
    from PIL import Image

    colour, alpha = _planes(pixels, meta)
    gray = colour.shape[2] == 1
    if colour.dtype == np.uint16:
        if not gray or alpha is not None:
            raise VaeransError("Pillow has no mode for 16-bit colour or alpha; write it with encode_image(..., 'png')")
        return _attach(Image.fromarray(np.ascontiguousarray(colour[:, :, 0])), meta, gray)
    if gray:
        plane = np.ascontiguousarray(colour[:, :, 0])
        if alpha is not None:
            img = Image.fromarray(np.ascontiguousarray(np.stack([plane, alpha], axis=2)))
        elif meta.mode == "1" and bool(np.all((plane == 0) | (plane == 255))):
            img = Image.fromarray(plane == 255)
        else:
            img = Image.fromarray(plane)
        return _attach(img, meta, gray)
    if meta.mode == "P":
        pal = _palettised(colour, alpha)
        if pal is not None:
            return _attach(pal, meta, gray)
    full = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    return _attach(Image.fromarray(np.ascontiguousarray(full)), meta, gray)


def _orientation(exif: bytes | None) -> int:
    if exif is None:
        return 1
    from PIL import Image

    block = Image.Exif()
    try:
        block.load(exif)
        value = block.get(_ORIENTATION, 1)
    except Exception:  # an unreadable EXIF block simply has no orientation
        return 1
    return int(value) if value in range(1, 9) else 1


def _save_kwargs(fmt: str, img: Any, quality: float | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if fmt in ICC_FORMATS and "icc_profile" in img.info:
        kwargs["icc_profile"] = img.info["icc_profile"]
    if fmt in EXIF_FORMATS and "exif" in img.info:
        kwargs["exif"] = img.info["exif"]
    if quality is not None:
        kwargs["quality"] = round(quality)
    return kwargs


def _check_quality(fmt: str, quality: float | None) -> None:
    if fmt in LOSSY_FORMATS:
        if quality is None:
            raise VaeransError(f"{fmt} is a lossy format: give its quality (1..100) explicitly")
        if not 1 <= quality <= 100:
            raise VaeransError(f"output quality must be in 1..100, got {quality}")
    elif quality is not None:
        raise VaeransError(f"{fmt} is lossless here: a quality applies only to {', '.join(sorted(LOSSY_FORMATS))}")


def encode_image(
    pixels: npt.NDArray[Any], meta: ImageMeta, fmt: str | os.PathLike[str], *, quality: float | None = None
) -> bytes:
    """The bytes of a ``fmt`` file (name, extension or path) holding the decoded ``pixels``.

    The image is :func:`restore_image`'s. ICC and EXIF are written where the format holds them;
    where it holds no EXIF, the EXIF orientation is applied to the pixels instead, so the file
    displays as the source did. A lossy format (:data:`LOSSY_FORMATS`) needs ``quality`` in
    1..100 and any other format refuses one. 16-bit colour is written as 16-bit PNG only.
    """
    from PIL import ImageOps

    pil_format = image_format(fmt)
    _check_quality(pil_format, quality)
    if np.asarray(pixels).dtype == np.uint16 and not (meta.mode == "I;16" and pil_format != "PNG"):
        if pil_format != "PNG":
            raise VaeransError(f"16-bit {meta.mode} pixels can be written as PNG only, not {pil_format}")
        colour, alpha = _planes(pixels, meta)
        full = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
        icc = meta.icc if meta.icc is not None and meta.icc[16:20] == _ICC_SPACE[full.shape[2] < 3] else None
        return encode_png16(full, icc=icc, exif=meta.exif)
    img = restore_image(pixels, meta)
    if img.mode == "P" and img.palette.mode == "RGBA" and pil_format != "PNG":
        img = img.convert("RGBA")  # only PNG keeps a palette's alpha (tRNS); expanding is exact
    if pil_format not in EXIF_FORMATS and _orientation(meta.exif) != 1:
        img = ImageOps.exif_transpose(img)
    if pil_format in _PALETTE_FORMATS and img.mode not in ("P", "L", "1"):
        raise VaeransError(
            f"{pil_format} holds at most 256 colours without partial alpha, and this {img.mode} image does not "
            "fit: write PNG or WebP"
        )
    try:
        return _pillow_bytes(img, pil_format, quality)
    except VaeransError:
        if img.mode not in ("P", "1"):
            raise
    # the format has no palette or 1-bit mode: expanding loses nothing
    expanded = "L" if img.mode == "1" else "RGB"
    return _pillow_bytes(img.convert(expanded), pil_format, quality)


def _pillow_bytes(img: Any, pil_format: str, quality: float | None) -> bytes:
    buf = io.BytesIO()
    try:
        img.save(buf, format=pil_format, **_save_kwargs(pil_format, img, quality))
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise VaeransError(f"cannot write a {img.mode} image as {pil_format}: {exc}") from None
    return buf.getvalue()


def save_image(
    path: str | os.PathLike[str],
    pixels: npt.NDArray[Any],
    meta: ImageMeta,
    *,
    quality: float | None = None,
    fmt: str | None = None,
    overwrite: bool = False,
) -> None:
    """Write :func:`encode_image`'s bytes to ``path`` (format from ``fmt`` or the extension).

    The file appears whole or not at all (a temporary file in the same folder, then renamed).
    An existing ``path`` raises ``FileExistsError`` unless ``overwrite``; the folder must exist.
    """
    from vaerans_ecs.fileio import publish, write_temp

    target = Path(path)
    data = encode_image(pixels, meta, fmt if fmt is not None else target, quality=quality)
    publish(write_temp(target, data), target, replace=overwrite)
