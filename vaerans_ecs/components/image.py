"""Pixel-space components: source image, reconstruction, blurred copy, residual."""

from __future__ import annotations

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.errors import ComponentError

__all__ = ["RGB", "BlurRGB", "ImageInfo", "ReconRGB", "Residual"]


def _check_pixels(ref: TensorRef, what: str, dtypes: tuple[str, ...]) -> None:
    check_ref(ref, what=what, ndim=3, dtypes=dtypes)
    if not 1 <= ref.shape[2] <= 4:
        raise ComponentError(f"{what}: expected 1 to 4 channels (HxWxC), got shape {ref.shape}")


class RGB(Component):
    """Source pixels: HxWxC (C = 1..4: gray, gray+alpha, RGB, RGBA) uint8 or uint16 in the arena.

    The VAE stages code HxWx3 uint8 only; the pixel and transform coders code every layout.
    """

    ref: TensorRef

    def _validate(self) -> None:
        _check_pixels(self.ref, "RGB", ("uint8", "uint16"))


class ReconRGB(Component):
    """Decoded pixels: the source's size, channels and depth (HxWxC uint8 or uint16)."""

    ref: TensorRef

    def _validate(self) -> None:
        _check_pixels(self.ref, "ReconRGB", ("uint8", "uint16"))


class BlurRGB(Component):
    """Gaussian-blurred copy of an image (float32 HxWx3), with the sigma that made it."""

    ref: TensorRef
    sigma: float

    def _validate(self) -> None:
        check_ref(self.ref, what="BlurRGB", ndim=3, dtypes=("float32",), dims={2: 3})


class Residual(Component):
    """Source minus the layers below (HxWxC): int16/int32 when exact, float32 when lossy."""

    ref: TensorRef

    def _validate(self) -> None:
        _check_pixels(self.ref, "Residual", ("int16", "int32", "float32"))


class ImageInfo(Component):
    """What decode needs to rebuild the image: source size and layout, and the model of the latent."""

    height: int
    width: int
    model: str = ""
    fingerprint: str = ""
    channels: int = 3
    bit_depth: int = 8

    def _validate(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ComponentError(f"ImageInfo: image size must be positive, got {self.height}x{self.width}")
        if not 1 <= self.channels <= 4 or self.bit_depth not in (8, 16):
            raise ComponentError(f"ImageInfo: {self.channels} channels of {self.bit_depth} bits (1..4, 8 or 16)")
