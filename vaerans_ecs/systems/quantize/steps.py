"""Step sizes of the quantizer: quality <-> base step, per-band gains and weights, format constants.

A band's step is ``float32(base) * weight / gain * factor`` computed in float64 by one function,
:func:`compose_steps`, which the encoder and the side-information decoder both call, so they agree
bit for bit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.errors import ConfigError, VaeransError

__all__ = [
    "CANONICAL_ZERO",
    "MAX_FACTOR",
    "RECON_GRID",
    "RECON_MAX_CODE",
    "SOURCES",
    "band_gains",
    "band_unit_steps",
    "check_band_weights",
    "check_range",
    "compose_steps",
    "quality_for_step",
    "step_for_quality",
    "weight_vector",
]

#: Component kinds the quantizer reads (and the dequantizer rebuilds), in order of preference.
SOURCES: Final[tuple[str, ...]] = ("WaveletPyr", "YUVW4", "Latent4")
#: Zero point used whenever the band's values lie in [-128, 127] (one bit of side information).
CANONICAL_ZERO: Final = 128
#: Reconstruction offsets are multiples of 1 / RECON_GRID in [0, RECON_MAX_CODE / RECON_GRID].
RECON_GRID: Final = 32
RECON_MAX_CODE: Final = 15
#: Largest widening factor (keeps steps and the exp-Golomb codes sane).
MAX_FACTOR: Final = 1 << 48
_BAND_NAME = re.compile(r"^(LL|HL|LH|HH)\d+$")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


# ----------------------------------------------------------------------------------------------
# Quality <-> step
# ----------------------------------------------------------------------------------------------
def check_range(step_min: float, step_max: float) -> None:
    """Raise :class:`ConfigError` unless ``0 < step_min <= step_max`` and both are finite."""
    if not (math.isfinite(step_min) and math.isfinite(step_max) and 0.0 < step_min <= step_max):
        raise ConfigError(f"need 0 < step_min <= step_max (finite), got step_min={step_min}, step_max={step_max}")


def step_for_quality(quality: float, step_min: float = 0.05, step_max: float = 4.0) -> float:
    """Base step for ``quality`` in [1, 100]: 100 -> ``step_min``, 1 -> ``step_max``, log-linear."""
    check_range(step_min, step_max)
    if not (isinstance(quality, (int, float)) and 1.0 <= quality <= 100.0):
        raise ConfigError(f"quality must be a number in [1, 100], got {quality!r}")
    t = (float(quality) - 1.0) / 99.0
    return float(math.exp(math.log(step_max) + t * (math.log(step_min) - math.log(step_max))))


def quality_for_step(step: float, step_min: float = 0.05, step_max: float = 4.0) -> float:
    """Inverse of :func:`step_for_quality` (not clamped: steps outside the range give q outside [1, 100])."""
    check_range(step_min, step_max)
    if not (math.isfinite(step) and step > 0.0):
        raise ConfigError(f"step must be positive and finite, got {step!r}")
    if step_min == step_max:
        return 100.0
    return 1.0 + 99.0 * (math.log(step) - math.log(step_max)) / (math.log(step_min) - math.log(step_max))


# ----------------------------------------------------------------------------------------------
# Band steps: base * weight / gain * factor, computed identically by encoder and side-info decoder
# ----------------------------------------------------------------------------------------------
def _plane_shape(bands: tuple[Band, ...]) -> tuple[int, int]:
    """Plane size of a ``band_layout`` table: level-1 HL has ceil(h/2) rows, LH floor(h/2)."""
    total = sum(b.size for b in bands)
    by_name = {b.name: b for b in bands}
    hl, lh = by_name.get("HL1"), by_name.get("LH1")
    if hl is not None:
        h = hl.h + (lh.h if lh is not None else 0)
        return h, total // max(h, 1)
    if lh is not None:
        return total // max(lh.w, 1), lh.w
    return bands[0].h, bands[0].w


@lru_cache(maxsize=64)
def _gains(bands: tuple[Band, ...], wavelet: str, levels: int, height: int, width: int) -> tuple[float, ...]:
    from vaerans_ecs.systems.wavelet import band_layout, synthesis_gains

    if band_layout(height, width, levels) != bands:
        raise VaeransError(f"band table does not match a {height}x{width} plane with {levels} {wavelet} levels")
    return tuple(float(g) for g in synthesis_gains(height, width, wavelet, levels))


def band_gains(
    bands: tuple[Band, ...], source: str, wavelet: str, levels: int, height: int | None, width: int | None
) -> F64:
    """Synthesis gain of every band (all 1 for a latent source); the plane size defaults to the layout's."""
    if source != "WaveletPyr":
        if len(bands) != 1:
            raise VaeransError(f"a {source} source has a single band, got {len(bands)}")
        return np.ones(1, dtype=np.float64)
    if height is None or width is None:
        height, width = _plane_shape(bands)
    return np.array(_gains(bands, wavelet, int(levels), int(height), int(width)), dtype=np.float64)


def weight_vector(bands: tuple[Band, ...], band_weights: Mapping[str, float] | None) -> F64:
    """Per-band weights rounded to float32 (the precision the side information stores)."""
    w = [float((band_weights or {}).get(b.name, 1.0)) for b in bands]
    return np.array(w, dtype=np.float32).astype(np.float64)


def compose_steps(base: float, weights: F64, gains: F64, factors: npt.ArrayLike) -> F64:
    """``float32(base) * weight / gain * factor`` in float64, elementwise (the one formula used)."""
    base64 = np.float64(np.float32(base))
    return np.asarray(base64 * weights / gains * np.asarray(factors, dtype=np.float64), dtype=np.float64)


def band_unit_steps(
    bands: tuple[Band, ...],
    base_step: float,
    *,
    source: str = "WaveletPyr",
    wavelet: str = "none",
    levels: int = 0,
    band_weights: Mapping[str, float] | None = None,
    height: int | None = None,
    width: int | None = None,
) -> F64:
    """Per-band steps before widening: ``float32(base_step) * weight_b / gain_b``."""
    gains = band_gains(bands, source, wavelet, levels, height, width)
    return compose_steps(base_step, weight_vector(bands, band_weights), gains, 1)


def check_band_weights(band_weights: Any) -> dict[str, float] | None:
    """Validated copy of a band name -> weight mapping (positive, finite in float32), or None."""
    if band_weights is None:
        return None
    if not isinstance(band_weights, Mapping):
        raise ConfigError(f"band_weights must be a mapping band name -> weight, got {type(band_weights).__name__}")
    out: dict[str, float] = {}
    for name, weight in band_weights.items():
        if not isinstance(name, str) or not _BAND_NAME.match(name):
            raise ConfigError(f"band_weights: {name!r} is not a band name like 'LL3', 'HL1', 'LH2', 'HH1'")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"band_weights[{name!r}] must be a number, got {weight!r}")
        w32 = float(np.float32(weight))
        if not (math.isfinite(w32) and w32 > 0.0):
            raise ConfigError(f"band_weights[{name!r}] must be positive and finite, got {weight!r}")
        out[name] = float(weight)
    return out
