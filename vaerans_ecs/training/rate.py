"""Rate proxy (differentiable) and real rate (empirical entropy) for training.

The codec codes each band with an adaptive per-image histogram, so its rate is
close to the per-band empirical entropy.  In training we model each
(image, channel, band) with a zero-mean Laplacian whose scale is the per-image
ML estimate (mean |c|), and charge -log2 of the probability of the quantiser
bin around the noisy coefficient.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .transform import dpcm, haar_forward, haar_inverse, hadamard4

WAVELET_LEVELS = 3


def laplace_bin_bits(y: torch.Tensor, scale: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Bits of the width-``step`` bin centred on ``y`` under Laplace(0, scale).

    Uses the symmetric tail form so far-tail bins keep useful gradients.
    """
    a = y.abs()
    lo = a - step / 2
    hi = a + step / 2
    # Tail bin (lo >= 0): p = 0.5 exp(-lo/b) (1 - exp(-step/b)).
    lo_pos = lo.clamp(min=0.0)
    log_tail = math.log(0.5) - lo_pos / scale + torch.log1p(-torch.exp(-step / scale).clamp(max=1 - 1e-7))
    # Central bin (lo < 0 < hi): p = 1 - 0.5 exp(-hi/b) - 0.5 exp(lo/b).
    lo_neg = lo.clamp(max=0.0)
    p_mid = (1.0 - 0.5 * torch.exp(-hi / scale) - 0.5 * torch.exp(lo_neg / scale)).clamp(min=1e-9)
    logp = torch.where(lo >= 0, log_tail, torch.log(p_mid))
    return -logp / math.log(2.0)


def to_bands(latent: torch.Tensor) -> list[torch.Tensor]:
    """Latent -> Hadamard4 across channels -> orthonormal Haar bands (last is LL)."""
    return haar_forward(hadamard4(latent), WAVELET_LEVELS)


def from_bands(bands: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`to_bands`."""
    return hadamard4(haar_inverse(bands))


def quantise_and_rate(
    latent: torch.Tensor, step: torch.Tensor, ste: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate the codec's quantiser; return (latent seen by the decoder, bits per image).

    ``step`` has shape (N,).  The rate always uses additive uniform noise; the
    decoder input uses the same noise, or straight-through rounding if ``ste``.
    """
    st = step.view(-1, 1, 1, 1)
    bands = to_bands(latent)
    bits = latent.new_zeros(latent.shape[0])
    dec_bands: list[torch.Tensor] = []
    for i, band in enumerate(bands):
        noisy = band + (torch.rand_like(band) - 0.5) * st
        coded = dpcm(noisy) if i == len(bands) - 1 else noisy
        clean = dpcm(band) if i == len(bands) - 1 else band
        # ML Laplace scale; at the optimum d(bits)/d(scale) ~ 0, so detaching is harmless.
        scale = clean.detach().abs().mean(dim=(2, 3), keepdim=True).clamp(min=1e-4)
        bits = bits + laplace_bin_bits(coded, scale, st).sum(dim=(1, 2, 3))
        if ste:
            rounded = torch.round(band / st) * st
            dec_bands.append(band + (rounded - band).detach())
        else:
            dec_bands.append(noisy)
    return from_bands(dec_bands), bits


def empirical_bits(latent: np.ndarray, step: float) -> tuple[np.ndarray, float]:
    """Real rounding + per-(channel, band) empirical entropy for one latent (4,h,w).

    Returns the dequantised latent and the total bits (histogram side info ignored).
    """
    with torch.no_grad():
        bands = to_bands(torch.from_numpy(latent)[None].float())
        total = 0.0
        deq: list[torch.Tensor] = []
        for i, band in enumerate(bands):
            q = torch.round(band / step)
            deq.append(q * step)
            sym = dpcm(q) if i == len(bands) - 1 else q
            for c in range(sym.shape[1]):
                _, counts = np.unique(sym[0, c].numpy().astype(np.int64), return_counts=True)
                p = counts / counts.sum()
                total += float(-(counts * np.log2(p)).sum())
        return from_bands(deq)[0].numpy(), total
