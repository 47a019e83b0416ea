"""Band layout shared by the wavelet, quantizer and entropy stages, and the packed pyramid."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.errors import ComponentError

__all__ = ["Band", "WaveletPyr", "check_layout"]


class Band(BaseModel):
    """One band of a channel's packed coefficients: name ("LL3", "HL1", ...), level, size, offset."""

    model_config = ConfigDict(frozen=True)

    name: str
    level: int
    h: int
    w: int
    offset: int

    @property
    def size(self) -> int:
        """Number of coefficients in the band."""
        return self.h * self.w


def check_layout(bands: tuple[Band, ...], n: int, what: str) -> None:
    """Raise unless ``bands`` tile ``[0, n)`` contiguously in order."""
    pos = 0
    for band in bands:
        if band.offset != pos or band.h < 0 or band.w < 0:
            raise ComponentError(f"{what}: band {band.name} at offset {band.offset}, expected {pos}")
        pos += band.size
    if pos != n:
        raise ComponentError(f"{what}: bands cover {pos} coefficients, the tensor has {n} per channel")


class WaveletPyr(Component):
    """Packed wavelet coefficients (C, h*w) plus the index table of bands (same for every channel)."""

    ref: TensorRef
    height: int
    width: int
    wavelet: str
    levels: int
    bands: tuple[Band, ...]

    def _validate(self) -> None:
        check_ref(self.ref, what="WaveletPyr", ndim=2, dtypes=("float32", "int32"))
        if self.ref.shape[1] != self.height * self.width:
            raise ComponentError(
                f"WaveletPyr: {self.ref.shape[1]} coefficients per channel for a {self.height}x{self.width} plane"
            )
        check_layout(self.bands, self.ref.shape[1], "WaveletPyr")
