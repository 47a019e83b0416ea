"""Quantizer and entropy-coder components."""

from __future__ import annotations

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.components.wavelet import Band, check_layout
from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.errors import ComponentError

__all__ = ["ANSBitstream", "LayerBits", "QuantParams", "SymbolsU8"]


class QuantParams(Component):
    """Per-band quantizer parameters, channel-major (index = channel * n_bands + band).

    ``steps`` are the step sizes actually used (after any widening), ``zeros`` the uint8 zero
    points, ``dpcm`` marks bands coded as DPCM residuals, ``recon`` the reconstruction offset
    toward zero as a fraction of a step, ``anchors`` integers added back after decoding (the
    DPCM start value; empty means all zero). ``source`` names the component the symbols came from
    (``WaveletPyr``, ``YUVW4`` or ``Latent4``) so that dequantization rebuilds the same kind;
    ``wavelet``/``levels`` describe the transform when the source is a ``WaveletPyr``.
    """

    steps: tuple[float, ...]
    zeros: tuple[int, ...]
    dpcm: tuple[bool, ...]
    recon: tuple[float, ...]
    source: str
    wavelet: str = "none"
    levels: int = 0
    anchors: tuple[int, ...] = ()

    def _validate(self) -> None:
        n = len(self.steps)
        if not (len(self.zeros) == len(self.dpcm) == len(self.recon) == n):
            raise ComponentError("QuantParams: steps, zeros, dpcm and recon must have one entry per band")
        if self.anchors and len(self.anchors) != n:
            raise ComponentError("QuantParams: anchors must be empty or have one entry per band")
        if any(not (s > 0.0) for s in self.steps):
            raise ComponentError("QuantParams: every step must be positive and finite")
        if any(not 0 <= z <= 255 for z in self.zeros):
            raise ComponentError("QuantParams: zero points must lie in [0, 255]")
        if self.source not in ("WaveletPyr", "YUVW4", "Latent4"):
            raise ComponentError(f"QuantParams: unknown source component {self.source!r}")


class SymbolsU8(Component):
    """Quantized symbols (C, h*w) uint8 packed band after band, with the band layout."""

    ref: TensorRef
    height: int
    width: int
    bands: tuple[Band, ...]

    def _validate(self) -> None:
        check_ref(self.ref, what="SymbolsU8", ndim=2, dtypes=("uint8",))
        if self.ref.shape[1] != self.height * self.width:
            raise ComponentError(
                f"SymbolsU8: {self.ref.shape[1]} symbols per channel for a {self.height}x{self.width} plane"
            )
        check_layout(self.bands, self.ref.shape[1], "SymbolsU8")


class ANSBitstream(Component):
    """Entropy-coded payload of all bands (tables included), the coder used, and the symbol layout.

    ``channels``/``height``/``width``/``bands`` describe the SymbolsU8 it decodes to, so an
    entropy decoder needs nothing else (they come from the stream header when decoding).
    """

    data: bytes
    #: Name of the registered entropy coder that made ``data`` (required: its default lives with
    #: the coders, :data:`vaerans_ecs.systems.entropy.DEFAULT_CODER`).
    coder: str
    channels: int
    height: int
    width: int
    bands: tuple[Band, ...]

    def _validate(self) -> None:
        if self.channels <= 0:
            raise ComponentError(f"ANSBitstream: channels must be positive, got {self.channels}")
        check_layout(self.bands, self.height * self.width, "ANSBitstream")


class LayerBits(Component):
    """The bytes of a pixel or transform coder (its own format, with its own checks)."""

    data: bytes
