"""Residual and enhancement-layer coders: lossy transform coding and lossless/near-lossless pixel coding."""
