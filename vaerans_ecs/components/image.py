"""Pixel-space components: source image, reconstruction, blurred copy, residual."""

from __future__ import annotations

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.core.arena import TensorRef

__all__ = ["RGB", "BlurRGB", "ImageInfo", "ReconRGB", "Residual"]


class RGB(Component):
    """Source image: HxWx3 uint8 in the arena."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="RGB", ndim=3, dtypes=("uint8",), dims={2: 3})


class ReconRGB(Component):
    """Decoded image: HxWx3 uint8, same size as the source."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="ReconRGB", ndim=3, dtypes=("uint8",), dims={2: 3})


class BlurRGB(Component):
    """Gaussian-blurred copy of an image (float32 HxWx3), with the sigma that made it."""

    ref: TensorRef
    sigma: float

    def _validate(self) -> None:
        check_ref(self.ref, what="BlurRGB", ndim=3, dtypes=("float32",), dims={2: 3})


class Residual(Component):
    """Source minus reconstruction, HxWx3 int16 (exact) or float32."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="Residual", ndim=3, dtypes=("int16", "float32"), dims={2: 3})


class ImageInfo(Component):
    """What decode needs to rebuild the image: source size and the model that made the latent."""

    height: int
    width: int
    model: str = ""
    fingerprint: str = ""

    def _validate(self) -> None:
        from vaerans_ecs.errors import ComponentError

        if self.height <= 0 or self.width <= 0:
            raise ComponentError(f"ImageInfo: image size must be positive, got {self.height}x{self.width}")
