"""Lightweight convolutional autoencoder used as the codec's default VAE.

The design keeps full-resolution work almost nil: the encoder starts with a
stride-2 convolution and the decoder ends with a convolution at 1/2 resolution
followed by PixelShuffle (DepthToSpace), so most compute sits at 1/stride.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise

import torch
from torch import nn

LATENT_CHANNELS = 4


@dataclass
class ModelConfig:
    """Architecture hyper-parameters (stored in checkpoints to rebuild the net)."""

    stride: int = 4
    enc_widths: list[int] = field(default_factory=list)
    dec_widths: list[int] = field(default_factory=list)
    latent_channels: int = LATENT_CHANNELS
    enc_blocks: int = 1  # residual blocks in the encoder trunk (1/stride resolution)
    dec_blocks: int = 1  # residual blocks in the decoder trunk (1/stride resolution)
    tail_blocks: int = 0  # residual blocks at 1/2 resolution, before the last convolutions
    tail_hidden: int = 64  # hidden width of the tail blocks

    def __post_init__(self) -> None:
        levels = _levels(self.stride)
        if not self.enc_widths:
            self.enc_widths = list(DEFAULT_WIDTHS[self.stride][0])
        if not self.dec_widths:
            self.dec_widths = list(DEFAULT_WIDTHS[self.stride][1])
        if len(self.enc_widths) != levels or len(self.dec_widths) != levels:
            raise ValueError(f"stride {self.stride} needs {levels} widths per side")

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form for checkpoints."""
        return asdict(self)


# (encoder widths from high to low resolution, decoder widths from low to high)
DEFAULT_WIDTHS: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    2: ((64,), (32,)),
    4: ((48, 96), (96, 24)),
    8: ((32, 64, 128), (128, 48, 24)),
    16: ((24, 48, 96, 160), (160, 96, 48, 24)),
}


def _levels(stride: int) -> int:
    """Number of stride-2 stages for a power-of-two stride."""
    levels = stride.bit_length() - 1
    if stride < 2 or (1 << levels) != stride:
        raise ValueError(f"stride must be a power of two >= 2, got {stride}")
    return levels


class SimpleGDN(nn.Module):
    """Simplified (L1) GDN, y = x / (beta + gamma @ |x|), or its inverse.

    Divisive normalisation captures local contrast cheaply (one 1x1 conv) and
    is markedly better than ReLU for small compression networks.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.ones(channels))
        self.gamma_raw = nn.Parameter(torch.eye(channels) * 0.1**0.5 + 0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply (inverse) normalisation."""
        c = x.shape[1]
        beta = self.beta_raw**2 + 1e-6
        gamma = (self.gamma_raw**2).view(c, c, 1, 1)
        norm = nn.functional.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm


class ResBlock(nn.Module):
    """Residual block: 3x3 conv, LeakyReLU, 1x1 conv, skip (cheap receptive field).

    ``hidden`` widens the inner layer (an inverted bottleneck) for thin stages.
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        inner = hidden or channels
        self.conv1 = nn.Conv2d(channels, inner, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        self.conv2 = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update."""
        return x + self.conv2(self.act(self.conv1(x)))


class Encoder(nn.Module):
    """Image in [0,1] (N,3,H,W) -> latent (N,4,H/s,W/s)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for width in cfg.enc_widths:
            layers += [nn.Conv2d(c_in, width, 5, stride=2, padding=2), SimpleGDN(width)]
            c_in = width
        layers += [ResBlock(c_in) for _ in range(cfg.enc_blocks)]
        layers += [nn.Conv2d(c_in, cfg.latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Encode; input centring is baked in so the codec can feed raw [0,1]."""
        return self.net(image - 0.5)


class Decoder(nn.Module):
    """Latent (N,4,h,w) -> image (N,3,s*h,s*w), approximately in [0,1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.dec_widths
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.latent_channels, w[0], 3, padding=1),
            SimpleGDN(w[0], inverse=True),
            *(ResBlock(w[0]) for _ in range(cfg.dec_blocks)),
        ]
        for prev, width in pairwise(w):
            layers += [
                nn.Conv2d(prev, 4 * width, 3, padding=1),
                nn.PixelShuffle(2),
                SimpleGDN(width, inverse=True),
            ]
        last = w[-1]
        layers += [ResBlock(last, cfg.tail_hidden) for _ in range(cfg.tail_blocks)]
        layers += [
            nn.Conv2d(last, last, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(last, 12, 3, padding=1),
            nn.PixelShuffle(2),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Decode (unclipped; the export wrapper adds the clip to [0,1])."""
        return self.net(latent) + 0.5


class AutoEncoder(nn.Module):
    """Encoder + decoder pair sharing one config."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)


def grow(old: AutoEncoder, new: AutoEncoder) -> int:
    """Copy ``old``'s weights into ``new``, a copy with extra residual blocks; return blocks added.

    Layers are matched in order, encoder and decoder alike; a residual block ``new`` has and
    ``old`` lacks gets a zero last convolution, so the grown network computes exactly what
    ``old`` did and training continues from there (function-preserving growth).
    """
    return _grow(old.encoder.net, new.encoder.net) + _grow(old.decoder.net, new.decoder.net)


def _grow(old: nn.Sequential, new: nn.Sequential) -> int:
    """:func:`grow` for one side: the number of residual blocks added to ``new``."""
    old_layers = list(old)
    added = 0
    i = 0
    for layer in new:
        src = old_layers[i] if i < len(old_layers) else None
        if isinstance(layer, ResBlock) and not (
            isinstance(src, ResBlock) and src.conv1.weight.shape == layer.conv1.weight.shape
        ):
            with torch.no_grad():
                for param in layer.conv2.parameters():
                    param.zero_()
            added += 1
            continue
        if src is None or type(src) is not type(layer):
            raise ValueError(f"cannot grow: layer {type(layer).__name__} has no counterpart")
        layer.load_state_dict(src.state_dict())
        i += 1
    if i != len(old_layers):
        raise ValueError("cannot grow: the new network drops layers of the old one")
    return added


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters())


def macs_per_pixel(module: nn.Module, in_shape: tuple[int, int, int, int], out_pixels: int) -> float:
    """Multiply-accumulates of all convolutions per image pixel (measured with hooks).

    ``out_pixels`` is the number of image pixels the pass corresponds to.
    """
    total = 0

    def hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(hook))
    # GDN's functional 1x1 conv is not a module: count it separately.
    gdn_macs = 0

    def gdn_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal gdn_macs
        gdn_macs += out.numel() * out.shape[1]

    for m in module.modules():
        if isinstance(m, SimpleGDN):
            handles.append(m.register_forward_hook(gdn_hook))
    with torch.no_grad():
        module(torch.zeros(in_shape))
    for h in handles:
        h.remove()
    return (total + gdn_macs) / (in_shape[0] * out_pixels)
