"""The wavelet family: the transforms (:mod:`.transform`) and their stages (:mod:`.stages`)."""

from vaerans_ecs.systems.wavelet.stages import WaveletCDF53, WaveletHaar, wavelet_names, wavelet_stage
from vaerans_ecs.systems.wavelet.transform import (
    MAX_LEVELS,
    WAVELETS,
    band_layout,
    synthesis_gains,
    wavelet_forward,
    wavelet_inverse,
)

__all__ = [
    "MAX_LEVELS",
    "WAVELETS",
    "WaveletCDF53",
    "WaveletHaar",
    "band_layout",
    "synthesis_gains",
    "wavelet_forward",
    "wavelet_inverse",
    "wavelet_names",
    "wavelet_stage",
]
