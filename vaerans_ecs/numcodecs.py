"""numcodecs codec ``"vaerans"``: array chunks of images compressed by :func:`vaerans_ecs.compress`.

A chunk is an image: HxW (gray), HxWx2, HxWx3 or HxWx4 uint8 (16-bit chunks with ``lossless``
are refused, as by ``compress``). Options: ``quality`` (1..100), ``lossless``, ``max_error``
(1..16) and ``model``; ``get_config`` / ``from_config`` round-trip them. The codec is registered
through numcodecs' entry point (``numcodecs.codecs``), so ``numcodecs.get_codec({"id": "vaerans"})``
finds it once the package is installed.

Zarr v3 (``pip install ".[zarr]"``) uses array-to-bytes codecs of its own API:
:func:`zarr_codec` gives one wrapping this codec (:class:`vaerans_ecs.zarr_codec.VaeransZarr`,
registered with zarr as ``"vaerans"`` through its ``zarr.codecs`` entry point)::

    import zarr
    from vaerans_ecs.numcodecs import zarr_codec

    z = zarr.create_array(store, shape=(4, 512, 768, 3), chunks=(1, 512, 768, 3), dtype="uint8",
                          serializer=zarr_codec(lossless=True))
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from vaerans_ecs.errors import VaeransError

__all__ = ["Vaerans", "zarr_codec"]


class Vaerans(Codec):  # type: ignore[misc]  # numcodecs has no type information
    """Lossy (``quality``), lossless or ``max_error``-bounded image coding of array chunks."""

    codec_id = "vaerans"

    def __init__(
        self, quality: float | None = None, lossless: bool = False, max_error: int | None = None, model: str = "default"
    ) -> None:
        from vaerans_ecs.encoder import Request

        Request(quality=quality, lossless=lossless, max_error=max_error, model=model).check()
        self.quality = quality
        self.lossless = lossless
        self.max_error = max_error
        self.model = model

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Vaerans:
        """Rebuild from :meth:`get_config` output."""
        options = {k: v for k, v in config.items() if k != "id"}
        return cls(**options)

    def get_config(self) -> dict[str, Any]:
        """``{"id": "vaerans", ...options}`` (JSON-friendly)."""
        return {
            "id": self.codec_id, "quality": self.quality, "lossless": self.lossless, "max_error": self.max_error,
            "model": self.model,
        }

    def encode(self, buf: Any) -> bytes:
        """One chunk (an image) to a vaerans stream."""
        from vaerans_ecs import api

        arr = np.asarray(buf)
        while arr.ndim > 2 and arr.shape[0] == 1 and (arr.ndim > 3 or arr.shape[2] > 4):
            arr = arr[0]  # leading chunk axes of length 1 (a zarr chunk of one image)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or arr.dtype not in (np.uint8, np.uint16):
            raise VaeransError(f"vaerans codec: chunks must be HxW or HxWxC uint8/uint16 images, got {arr.dtype} "
                               f"{arr.shape}")
        return api.compress(
            np.ascontiguousarray(arr), self.quality, self.model, lossless=self.lossless, max_error=self.max_error
        )

    def decode(self, buf: Any, out: Any = None) -> Any:
        """A vaerans stream back to the chunk's pixels (into ``out`` when given)."""
        from vaerans_ecs import api

        data = bytes(ensure_contiguous_ndarray(buf))
        image = api.decompress(data)
        return image if out is None else ndarray_copy(image, out)


def zarr_codec(
    quality: float | None = None, lossless: bool = False, max_error: int | None = None, model: str = "default"
) -> Any:
    """A zarr v3 array-to-bytes codec coding each chunk with :class:`Vaerans` (needs ``zarr``)."""
    try:
        from vaerans_ecs.zarr_codec import VaeransZarr
    except ImportError:
        raise VaeransError('zarr is not installed: pip install "vaerans_ecs[zarr]"') from None
    return VaeransZarr(quality=quality, lossless=lossless, max_error=max_error, model=model)
