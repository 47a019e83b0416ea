"""Training stand-ins for the codec's latent transform: Hadamard4 + orthonormal Haar.

Both are orthonormal, so one quantiser step in this domain gives the same error
energy per step in every band, like the codec's gain-normalised CDF 5/3.
"""

from __future__ import annotations

import torch

_H4 = (
    torch.tensor(
        [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
    )
    / 2.0
)


def hadamard4(z: torch.Tensor) -> torch.Tensor:
    """Orthonormal Hadamard across the 4 channels (self-inverse)."""
    return torch.einsum("ok,bkhw->bohw", _H4.to(z), z)


def haar_forward(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Orthonormal 2-D Haar; returns [HL1, LH1, HH1, ..., HLn, LHn, HHn, LLn]."""
    bands: list[torch.Tensor] = []
    ll = x
    for _ in range(levels):
        b, c, h, w = ll.shape
        v = ll.reshape(b, c, h // 2, 2, w // 2, 2)
        a, bb, cc, d = v[:, :, :, 0, :, 0], v[:, :, :, 0, :, 1], v[:, :, :, 1, :, 0], v[:, :, :, 1, :, 1]
        bands += [(a - bb + cc - d) / 2, (a + bb - cc - d) / 2, (a - bb - cc + d) / 2]
        ll = (a + bb + cc + d) / 2
    bands.append(ll)
    return bands


def haar_inverse(bands: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`haar_forward`."""
    levels = (len(bands) - 1) // 3
    ll = bands[-1]
    for lev in reversed(range(levels)):
        hl, lh, hh = bands[3 * lev : 3 * lev + 3]
        a = (ll + hl + lh + hh) / 2
        b = (ll - hl + lh - hh) / 2
        c = (ll + hl - lh - hh) / 2
        d = (ll - hl - lh + hh) / 2
        top = torch.stack([a, b], dim=-1)
        bot = torch.stack([c, d], dim=-1)
        n, ch, h, w = ll.shape
        ll = torch.stack([top, bot], dim=3).reshape(n, ch, 2 * h, 2 * w)
    return ll


def dpcm(x: torch.Tensor) -> torch.Tensor:
    """Residual of a left-neighbour predictor (first column: above neighbour).

    Mirrors the codec's DPCM on the low-pass band so its rate is not overstated.
    """
    out = x.clone()
    out[..., :, 1:] = x[..., :, 1:] - x[..., :, :-1]
    out[..., 1:, 0] = x[..., 1:, 0] - x[..., :-1, 0]
    return out
