"""Image quality metrics (PSNR, luma PSNR, SSIM, MS-SSIM) and the systems built on them.

Plain functions (numpy + scipy only) take two images of the same shape, ``HxWx3`` or ``HxW``,
uint8 or float, with ``data_range`` the peak value (255 for uint8):

``psnr(a, b)``
    ``10 log10(peak^2 / MSE)`` with the MSE over every pixel and channel; ``inf`` when equal.
``psnr_y(a, b)``
    PSNR of the BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (full range, as in JPEG/JFIF; the
    luma is kept in floating point, not rounded).
``ssim(a, b)``
    SSIM of Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5, normalised), ``K1 = 0.01``,
    ``K2 = 0.03``, population (biased) variances, and the mean of the SSIM map over the *valid*
    region (windows entirely inside the image, i.e. 5 pixels cropped at each border). Colour
    images: ``channels="rgb"`` (default) computes SSIM per channel and averages the three values,
    exactly like scikit-image's ``structural_similarity(..., channel_axis=2, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)`` and ``pytorch_msssim.ssim``; ``channels="y"``
    computes it once on the luma above.
``ms_ssim(a, b)``
    Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) with the standard 5 scales and weights
    ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``: the contrast-structure term at scales 1-4 and the
    full SSIM at scale 5, each clipped at 0, combined as a weighted geometric product; between
    scales the image is downsampled by 2x2 averaging (an odd trailing row/column is dropped).
    Colour images: per channel then averaged (``channels="rgb"``, as ``pytorch_msssim.ms_ssim``)
    or on luma (``channels="y"``). Images too small for 5 scales (smaller side below 176 pixels)
    use the largest number of scales whose smallest image still holds the 11x11 window, with the
    first weights renormalised to sum to 1; below 11 pixels the window shrinks to the image.
``ms_ssim_db(value)``
    ``-10 log10(1 - value)``, the usual logarithmic scale for rate-distortion plots.

Systems (registered; they are analysis stages, not part of any bitstream, so run them after a
stream is serialized):

:class:`GaussianBlur` (``sigma``)
    RGB or ReconRGB (``input_choices``; pick with ``Pipe.use``) -> :class:`BlurRGB` float32.
:class:`Metrics` (``ms_ssim``)
    RGB vs ReconRGB -> :class:`QualityMetrics` (MSE, PSNR, luma PSNR, MS-SSIM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB, BlurRGB, ReconRGB
from vaerans_ecs.core.system import System, register_system
from vaerans_ecs.errors import ComponentError, ConfigError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = [
    "LUMA_BT601",
    "MS_SSIM_WEIGHTS",
    "GaussianBlur",
    "Metrics",
    "QualityMetrics",
    "gaussian_window",
    "luma",
    "ms_ssim",
    "ms_ssim_db",
    "mse",
    "psnr",
    "psnr_y",
    "ssim",
]

#: BT.601 luma weights (R, G, B), full range.
LUMA_BT601: Final[tuple[float, float, float]] = (0.299, 0.587, 0.114)
#: Standard MS-SSIM scale weights, finest scale first.
MS_SSIM_WEIGHTS: Final[tuple[float, ...]] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE: Final = 11
WIN_SIGMA: Final = 1.5
K1: Final = 0.01
K2: Final = 0.03

Channels = Literal["rgb", "y"]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _pair(a: npt.ArrayLike, b: npt.ArrayLike, what: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    x = np.asarray(a)
    y = np.asarray(b)
    if x.shape != y.shape:
        raise VaeransError(f"{what}: images differ in shape, {x.shape} vs {y.shape}")
    if x.ndim not in (2, 3) or x.size == 0:
        raise VaeransError(f"{what}: expected HxW or HxWxC images, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise VaeransError(f"{what}: expected numeric images, got {x.dtype} and {y.dtype}")
    return x, y


def luma(img: npt.ArrayLike) -> F64:
    """BT.601 full-range luma ``0.299 R + 0.587 G + 0.114 B`` of an HxWx3 image, as float64 HxW."""
    x = np.asarray(img)
    if x.ndim != 3 or x.shape[2] != 3:
        raise VaeransError(f"luma: expected an HxWx3 image, got shape {x.shape}")
    r, g, b = LUMA_BT601
    xf = x.astype(np.float64, copy=False)
    out: F64 = r * xf[..., 0] + g * xf[..., 1] + b * xf[..., 2]
    return out


def _channels(
    x: npt.NDArray[Any], y: npt.NDArray[Any], channels: Channels, what: str
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Both images as (H, W, C) arrays for the chosen channel mode (luma is float64)."""
    if channels == "y":
        if x.ndim == 3:
            return luma(x)[..., None], luma(y)[..., None]
        return x[..., None], y[..., None]
    if channels != "rgb":
        raise VaeransError(f"{what}: channels must be 'rgb' or 'y', got {channels!r}")
    return (x, y) if x.ndim == 3 else (x[..., None], y[..., None])


def mse(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Mean squared error over every pixel and channel."""
    x, y = _pair(a, b, "mse")
    d: F64 = np.subtract(x, y, dtype=np.float64).ravel()
    return float(d @ d) / d.size


def _psnr_from_mse(err: float, data_range: float) -> float:
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / err)


def psnr(a: npt.ArrayLike, b: npt.ArrayLike, data_range: float = 255.0) -> float:
    """PSNR in dB over all pixels and channels (``inf`` for identical images)."""
    return _psnr_from_mse(mse(a, b), data_range)


def psnr_y(a: npt.ArrayLike, b: npt.ArrayLike, data_range: float = 255.0) -> float:
    """PSNR in dB of the BT.601 luma (see :func:`luma`)."""
    x, y = _pair(a, b, "psnr_y")
    d = (luma(x) - luma(y)).ravel()
    return _psnr_from_mse(float(d @ d) / d.size, data_range)


@lru_cache(maxsize=16)
def gaussian_window(size: int = WIN_SIZE, sigma: float = WIN_SIGMA) -> F64:
    """Normalised 1-D Gaussian window of ``size`` taps (the 2-D window is its outer product)."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    out: F64 = g / g.sum()
    out.setflags(write=False)
    return out


def _ssim_cs(x: F32, y: F32, data_range: float) -> tuple[F64, F64]:
    """Per-channel mean SSIM and mean contrast-structure term of (C, H, W) images.

    The images arrive centred (``data_range / 2`` subtracted): variances and covariances do not
    change, and float32 moments of centred data keep the SSIM within ~1e-7 of a float64 reference.
    """
    c, h, w = x.shape
    size = min(WIN_SIZE, h, w)
    if size % 2 == 0:
        size -= 1
    win = gaussian_window(size, WIN_SIGMA).astype(np.float32)
    r = size // 2
    stats = np.empty((5 * c, h, w), dtype=np.float32)
    stats[:c] = x
    stats[c : 2 * c] = y
    np.multiply(x, x, out=stats[2 * c : 3 * c])
    np.multiply(y, y, out=stats[3 * c : 4 * c])
    np.multiply(x, y, out=stats[4 * c :])
    from scipy import ndimage  # here, not at import: the codec path never needs scipy

    tmp = ndimage.correlate1d(stats, win, axis=1, mode="constant")[:, r : h - r]
    out = ndimage.correlate1d(tmp, win, axis=2, mode="constant")[:, :, r : w - r]
    mu1, mu2, exx, eyy, exy = (out[i * c : (i + 1) * c] for i in range(5))
    c1 = np.float32((K1 * data_range) ** 2)
    c2 = np.float32((K2 * data_range) ** 2)
    cs_map = (2.0 * (exy - mu1 * mu2) + c2) / ((exx - mu1 * mu1) + (eyy - mu2 * mu2) + c2)
    half = np.float32(data_range / 2.0)
    m1, m2 = mu1 + half, mu2 + half
    ssim_map = (2.0 * m1 * m2 + c1) / (m1 * m1 + m2 * m2 + c1) * cs_map
    return ssim_map.mean(axis=(1, 2), dtype=np.float64), cs_map.mean(axis=(1, 2), dtype=np.float64)


def _planes(
    x: npt.NDArray[Any], y: npt.NDArray[Any], channels: Channels, data_range: float, what: str
) -> tuple[F32, F32]:
    """Both images as centred (C, H, W) float32 planes for the chosen channel mode."""
    xc, yc = _channels(x, y, channels, what)
    half = data_range / 2.0
    xp = np.moveaxis(xc, 2, 0).astype(np.float32)
    yp = np.moveaxis(yc, 2, 0).astype(np.float32)
    xp -= np.float32(half)
    yp -= np.float32(half)
    return xp, yp


def ssim(a: npt.ArrayLike, b: npt.ArrayLike, data_range: float = 255.0, channels: Channels = "rgb") -> float:
    """SSIM (11x11 Gaussian window, sigma 1.5); colour: mean over channels or on luma (module doc)."""
    x, y = _pair(a, b, "ssim")
    xp, yp = _planes(x, y, channels, data_range, "ssim")
    s, _ = _ssim_cs(xp, yp, data_range)
    return float(s.mean())


def _downsample2(x: F32) -> F32:
    h, w = (x.shape[1] // 2) * 2, (x.shape[2] // 2) * 2
    v = x[:, :h, :w]
    out: F32 = np.float32(0.25) * (v[:, 0::2, 0::2] + v[:, 1::2, 0::2] + v[:, 0::2, 1::2] + v[:, 1::2, 1::2])
    return out


def _scales(h: int, w: int, max_scales: int) -> int:
    n = 1
    while n < max_scales and min(h >> n, w >> n) >= WIN_SIZE:
        n += 1
    return n


def ms_ssim(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    data_range: float = 255.0,
    channels: Channels = "rgb",
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> float:
    """MS-SSIM (5 scales, standard weights, 2x2 average downsampling); see the module doc."""
    x, y = _pair(a, b, "ms_ssim")
    xc, yc = _planes(x, y, channels, data_range, "ms_ssim")
    n = _scales(xc.shape[1], xc.shape[2], len(weights))
    wts = np.asarray(weights[:n], dtype=np.float64)
    wts = wts / wts.sum() if n < len(weights) else wts
    value = np.ones(xc.shape[0], dtype=np.float64)
    for level in range(n):
        s, cs = _ssim_cs(xc, yc, data_range)
        if level == n - 1:
            value *= np.maximum(s, 0.0) ** wts[level]
        else:
            value *= np.maximum(cs, 0.0) ** wts[level]
            xc, yc = _downsample2(xc), _downsample2(yc)
    return float(np.mean(value))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - value)`` (``inf`` for 1)."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


# ----------------------------------------------------------------------------------------------
# Component and systems
# ----------------------------------------------------------------------------------------------
class QualityMetrics(Component):
    """Distortion of ReconRGB against RGB: MSE, PSNR and luma PSNR in dB, MS-SSIM (NaN if skipped)."""

    mse: float
    psnr: float
    psnr_y: float
    ms_ssim: float = math.nan

    def _validate(self) -> None:
        if not self.mse >= 0.0:
            raise ComponentError(f"QualityMetrics: mse must be >= 0, got {self.mse}")


def _image_source(system: System, world: World, eid: int) -> type[RGB] | type[ReconRGB]:
    if system.source is RGB or system.source is ReconRGB:
        return system.source
    for choice in (RGB, ReconRGB):
        if world.has_component(eid, choice):
            return choice
    raise VaeransError(f"{system!r}: entity {eid} has neither RGB nor ReconRGB")


@register_system
class GaussianBlur(System):
    """RGB or ReconRGB -> BlurRGB: Gaussian blur of each channel (float32, reflected borders)."""

    name: ClassVar[str] = "GaussianBlur"
    config_fields: ClassVar[tuple[str, ...]] = ("sigma",)

    def __init__(self, sigma: float = 1.0) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
            raise ConfigError(f"GaussianBlur: sigma must be a finite number >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def input_choices(self) -> tuple[type[Component], ...]:
        return (RGB, ReconRGB)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (BlurRGB,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            src = world.get_component(eid, _image_source(self, world, eid))
            img = world.view(src.ref)
            ref = world.alloc(img.shape, np.float32)
            out = world.view(ref)
            out[...] = img
            if self.sigma > 0:
                from scipy import ndimage

                ndimage.gaussian_filter(out, sigma=(self.sigma, self.sigma, 0.0), mode="reflect", output=out)
            world.add_component(eid, BlurRGB(ref=ref, sigma=self.sigma))


def _pair_views(world: World, eid: int, what: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    src = world.view(world.get_component(eid, RGB).ref)
    rec = world.view(world.get_component(eid, ReconRGB).ref)
    if src.shape != rec.shape:
        raise VaeransError(f"{what}: entity {eid} has RGB {src.shape} but ReconRGB {rec.shape}")
    return src, rec


@register_system
class Metrics(System):
    """RGB vs ReconRGB -> QualityMetrics (PSNR, luma PSNR, and MS-SSIM unless ``ms_ssim=False``)."""

    name: ClassVar[str] = "Metrics"
    config_fields: ClassVar[tuple[str, ...]] = ("ms_ssim",)

    def __init__(self, ms_ssim: bool = True) -> None:
        self.ms_ssim = bool(ms_ssim)

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB, ReconRGB)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (QualityMetrics,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            src, rec = _pair_views(world, eid, "Metrics")
            err = mse(src, rec)
            world.add_component(
                eid,
                QualityMetrics(
                    mse=err,
                    psnr=_psnr_from_mse(err, 255.0),
                    psnr_y=psnr_y(src, rec),
                    ms_ssim=ms_ssim(src, rec) if self.ms_ssim else math.nan,
                ),
            )
