"""Pipeline stages, one module per family; importing this package registers them all."""

from vaerans_ecs.systems.entropy import ANSDecode, ANSEncode
from vaerans_ecs.systems.hadamard import Hadamard4
from vaerans_ecs.systems.metrics import GaussianBlur, Metrics
from vaerans_ecs.systems.quantize import Dequantize, QuantizeU8
from vaerans_ecs.systems.residual.stages import ComputeResidual, PixelCode, TransformCode
from vaerans_ecs.systems.vae import OnnxVAEDecode, OnnxVAEEncode
from vaerans_ecs.systems.wavelet import WaveletCDF53, WaveletHaar

__all__ = [
    "ANSDecode",
    "ANSEncode",
    "ComputeResidual",
    "GaussianBlur",
    "Metrics",
    "Dequantize",
    "Hadamard4",
    "OnnxVAEDecode",
    "OnnxVAEEncode",
    "PixelCode",
    "QuantizeU8",
    "TransformCode",
    "WaveletCDF53",
    "WaveletHaar",
]
