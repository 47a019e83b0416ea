"""Input image conversion to HxWx3 uint8 RGB, by documented rules.

Rules (applied the same way by ``compress``, the CLI, batch jobs and the Pillow plugin):

* uint8 HxWx3: used as is. HxW or HxWx1 (grayscale): replicated to 3 channels.
* HxWx2 (gray + alpha) and HxWx4 (RGBA): alpha is dropped, as Pillow's ``convert("RGB")`` does
  (the codec stores colour only; composite onto a background first if you need that).
* bool (1-bit): False -> 0, True -> 255.
* uint16: scaled to 8 bits with ``round(v / 257)``.
* float16/32/64: must be finite and within [0, 1]; scaled with ``round(v * 255)``.
* PIL images: modes 1, L, LA, P, PA, RGB, RGBA, RGBX, CMYK, YCbCr, I;16*, I and F are
  converted through Pillow (palette images are expanded; I/I;16 are treated as 16-bit, F as
  float in [0, 1]); anything else is rejected.
* Anything else (other dtypes or ranks, empty images) raises :class:`ImageInputError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ImageInputError

__all__ = ["is_pil_image", "to_rgb_uint8"]


def is_pil_image(obj: Any) -> bool:
    """True for a PIL.Image.Image, without importing Pillow when it is not loaded."""
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def _from_pil(img: Any) -> npt.NDArray[Any]:
    mode = img.mode
    if mode in ("1", "L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "P", "PA"):
        if mode in ("RGBX", "CMYK", "YCbCr", "P", "PA"):
            img = img.convert("RGB")  # alpha, if any, is dropped by the rules anyway
        return np.asarray(img)
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.int64)
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise ImageInputError(f"PIL mode {mode} values outside 0..65535 are not supported")
        return arr.astype(np.uint16)
    if mode == "F":
        return np.asarray(img).astype(np.float32)
    raise ImageInputError(f"unsupported PIL image mode {mode!r}")


def to_rgb_uint8(img: Any) -> npt.NDArray[np.uint8]:
    """Convert an array or PIL image to a C-contiguous HxWx3 uint8 array (see module rules)."""
    arr = _from_pil(img) if is_pil_image(img) else img
    if not isinstance(arr, np.ndarray):
        raise ImageInputError(
            f"expected a numpy array or a PIL image, got {type(img).__name__}; pass np.asarray(img) "
            "for array-likes"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageInputError(f"expected an HxW, HxWx1, HxWx2, HxWx3 or HxWx4 image, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageInputError(f"empty image of shape {arr.shape}")
    if arr.shape[2] in (2, 4):
        arr = arr[:, :, :-1]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageInputError("float image contains NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageInputError(f"float images must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
        arr = np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageInputError(
            f"unsupported dtype {arr.dtype}: use uint8, uint16, bool or float in [0, 1]"
        )
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr, dtype=np.uint8)
