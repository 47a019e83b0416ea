"""Image input and output: what a caller passes becomes a :class:`SourceImage`; decoded pixels go back to images.

Input (:func:`load_source`; ``compress``, the CLI, batch jobs and the Pillow plugin follow the same
rules). A source has pixels (H, W, C) uint8 or uint16, a mode from :data:`MODES`, an ICC profile and
an EXIF block:

================================================  ===========================  =====================================
input                                             stored (mode, pixels)        restored by :func:`restore_image`
================================================  ===========================  =====================================
PIL "1", bool HxW                                 "1", 0/255 uint8 x1          "1" if every value is 0/255, else "L"
PIL "L", uint8 HxW / HxWx1                        "L", x1                      "L"
PIL "LA", "La", uint8 HxWx2; "L" + transparency   "LA", x2                     "LA" (no alpha decoded: "L")
PIL "P"; "P" + transparency, "PA"                 "P", RGB x3; RGBA x4         "P" of the colours present when at
                                                                               most 256 (palette sorted by value),
                                                                               else "RGB"/"RGBA"
PIL "RGB", "RGBX", "YCbCr", uint8 HxWx3           "RGB", x3                    "RGB"
PIL "RGBA", "RGBa", uint8 HxWx4; "RGB" + trns     "RGBA", x4                   "RGBA" (no alpha decoded: "RGB")
PIL "CMYK"                                        "RGB" (through its ICC to    "RGB" (CMYK is not restored)
                                                  sRGB, tagged sRGB; else
                                                  Pillow's formula, no ICC)
PIL "I;16*", "I" in 0..65535, uint16 HxW(x1),     "I;16", uint16 x1            "I;16"
16-bit gray PNG
uint16 HxWx2, 16-bit gray+alpha PNG               "LA;16", uint16 x2           16-bit PNG only (no Pillow mode)
uint16 HxWx3 / x4 (any byte order), 16-bit        "RGB;16" / "RGBA;16"         16-bit PNG only (no Pillow mode)
RGB/RGBA PNG (all 16 bits, read by Pillow)
PIL "F", float arrays (finite, in [0, 1])         8-bit mode by channels,      as stored
                                                  round(v * 255)
other PIL modes (HSV, LAB, ...), other dtypes     refused: ImageInputError
================================================  ===========================  =====================================

Exact round trips (a lossless decode written by :func:`encode_image` as PNG and read back): every
stored mode, pixel for pixel; "P" keeps its colours (not its palette order or unused entries).
A 16-bit colour PNG is read at full depth only from a file, bytes, or a PIL image not yet loaded
(Pillow keeps ``v >> 8`` once it has loaded one). ``np.matrix`` is a 2-D array; big-endian arrays
are accepted; masked arrays with masked pixels are refused. Files: first frame only; Pillow's
formats except EPS (it runs Ghostscript) and ``.vae`` streams; truncated or corrupt files raise
:class:`~vaerans_ecs.errors.ImageInputError`. The size is checked against ``[runtime] max_pixels``
before any pixel is decoded. ICC profiles and EXIF blocks are kept as bytes (XMP is not).

**EXIF orientation, one rule everywhere:** pixels are coded as stored, never rotated; the EXIF block,
orientation included, travels with the stream and is written back to output formats that hold EXIF
(:data:`EXIF_FORMATS`), so viewers rotate as they did for the source. Output formats without EXIF
get the orientation applied to their pixels instead, so they display the same.

The lossy path takes :func:`to_rgb_uint8`: alpha dropped (as Pillow's ``convert("RGB")``), gray
replicated, 16-bit ``round(v / 257)``.

Output: :func:`restore_image` (PIL image of the source's mode), :func:`encode_image` (file bytes,
format by name or extension; a lossy format needs an explicit ``quality``), :func:`save_image`.
"""

from __future__ import annotations

from vaerans_ecs.imaging.reading import is_pil_image, load_source, open_formats, to_rgb_uint8
from vaerans_ecs.imaging.source import (
    MAX_METADATA_BYTES,
    MODES,
    ImageMeta,
    SourceImage,
    check_pixel_count,
    normalise_exif,
    rgb_uint8,
)
from vaerans_ecs.imaging.writing import (
    EXIF_FORMATS,
    ICC_FORMATS,
    LOSSY_FORMATS,
    encode_image,
    image_format,
    is_lossy_format,
    restore_image,
    save_image,
)

__all__ = [
    "EXIF_FORMATS",
    "ICC_FORMATS",
    "LOSSY_FORMATS",
    "MAX_METADATA_BYTES",
    "MODES",
    "ImageMeta",
    "SourceImage",
    "check_pixel_count",
    "encode_image",
    "image_format",
    "is_lossy_format",
    "is_pil_image",
    "load_source",
    "normalise_exif",
    "open_formats",
    "restore_image",
    "rgb_uint8",
    "save_image",
    "to_rgb_uint8",
]
