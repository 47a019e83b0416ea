"""Zarr v3 serializer ``"vaerans"``: each chunk of an image array is a vaerans stream (needs ``zarr``).

Wraps :class:`vaerans_ecs.numcodecs.Vaerans`; registered with zarr on import and through the
``zarr.codecs`` entry point, so arrays written with it open in any process that has the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from vaerans_ecs.numcodecs import Vaerans

__all__ = ["VaeransZarr"]


@dataclass(frozen=True)
class VaeransZarr(ArrayBytesCodec):
    """Array-to-bytes codec: a chunk (one image, leading axes of length 1 allowed) <-> a stream."""

    is_fixed_size = False
    quality: float | None = None
    lossless: bool = False
    max_error: int | None = None
    model: str = "default"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VaeransZarr:
        """Rebuild from array metadata (``{"name": "vaerans", "configuration": {...}}``)."""
        _, config = parse_named_configuration(data, "vaerans", require_configuration=False)
        options: dict[str, Any] = dict(config or {})
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """Array metadata of this codec."""
        config = {"quality": self.quality, "lossless": self.lossless, "max_error": self.max_error, "model": self.model}
        return {"name": "vaerans", "configuration": config}

    def _codec(self) -> Vaerans:
        return Vaerans(self.quality, self.lossless, self.max_error, self.model)

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        image = self._codec().decode(chunk_bytes.to_bytes())
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(image.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: Any, chunk_spec: Any) -> Any:
        data = self._codec().encode(chunk_array.as_ndarray_like())
        return chunk_spec.prototype.buffer.from_bytes(data)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        """Unknown in advance: the size depends on the image."""
        raise NotImplementedError


register_codec("vaerans", VaeransZarr)
