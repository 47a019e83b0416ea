"""Latent-space components: the VAE latent and its Hadamard rotation."""

from __future__ import annotations

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.core.arena import TensorRef

__all__ = ["Latent4", "YUVW4"]


class Latent4(Component):
    """4-channel VAE latent (4, h, w) float32, already normalised by the model's scale/shift."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="Latent4", ndim=3, dtypes=("float32",), dims={0: 4})


class YUVW4(Component):
    """Latent after the orthonormal Hadamard4 across channels (4, h, w) float32."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="YUVW4", ndim=3, dtypes=("float32",), dims={0: 4})
