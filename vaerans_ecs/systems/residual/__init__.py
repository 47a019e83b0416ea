"""Residual and enhancement-layer coders: lossy transform coding and lossless/near-lossless pixel coding."""

from vaerans_ecs.systems.residual.pixel import decode_pixels, encode_pixels

__all__ = ["decode_pixels", "encode_pixels"]
