"""Typed, validated components; each wraps TensorRefs plus the metadata its systems need."""

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.components.image import RGB, BlurRGB, ImageInfo, ReconRGB, Residual
from vaerans_ecs.components.latent import YUVW4, Latent4
from vaerans_ecs.components.quant import ANSBitstream, LayerBits, QuantParams, SymbolsU8
from vaerans_ecs.components.wavelet import Band, WaveletPyr

__all__ = [
    "ANSBitstream",
    "RGB",
    "Band",
    "BlurRGB",
    "Component",
    "ImageInfo",
    "LayerBits",
    "Latent4",
    "QuantParams",
    "ReconRGB",
    "Residual",
    "SymbolsU8",
    "WaveletPyr",
    "YUVW4",
    "check_ref",
]
