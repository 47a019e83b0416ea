"""Encoder-side decisions across frames: scene cuts and rate / quality control.

These stages never appear in a stream (the decoder needs none of their choices beyond what the
coded frames record). :class:`SceneCut` compares how well the reference predicts a frame (the
best SAD of a small full search on a 1/4-scale luma) with how well the frame predicts itself
(SAD from its block means): a ratio near 1 means the reference is no help, so the frame should
be a keyframe. The rate controllers give each inter frame a :class:`CodingParams` step and the
keyframes an image quality, and learn from every coded frame (:meth:`RateControl.update`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB
from vaerans_ecs.core.system import System, register_system
from vaerans_ecs.errors import ConfigError
from vaerans_ecs.systems.motion.components import CodingParams, CutScore, Reference
from vaerans_ecs.systems.motion.search import block_sums, luma
from vaerans_ecs.systems.residual.transform import MAX_STEP, MIN_STEP

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = [
    "ConstantQuality",
    "FixedStep",
    "FrameStats",
    "RateControl",
    "SceneCut",
    "TargetRate",
    "cut_score",
    "quality_step",
]

I32 = NDArray[np.int32]
#: Largest step the controllers give inter frames: residuals lie within +-255, a coarser step codes nothing.
MAX_INTER_STEP = 256.0


def _quarter(plane: I32) -> I32:
    """The 4x4 block means, rounded down (the plane is >= 0)."""
    h, w = plane.shape[0] // 4 * 4, plane.shape[1] // 4 * 4
    out: I32 = block_sums(plane[:h, :w, None].transpose(0, 2, 1).astype(np.int16), 4)[:, 0, :] >> 4
    return out


def cut_score(cur: NDArray[np.uint8], ref: NDArray[np.uint8], *, block: int = 4, radius: int = 4) -> float:
    """Inter cost over intra cost (summed over blocks of the 1/4-scale luma), in [0, ~1.5]."""
    c, r = _quarter(luma(cur)), _quarter(luma(ref))
    h, w = c.shape[0] // block * block, c.shape[1] // block * block
    if h == 0 or w == 0:
        return 0.0
    c = c[:h, :w]
    blocks = c.reshape(h // block, block, w // block, block)
    intra = np.abs(blocks - blocks.mean(axis=(1, 3), keepdims=True)).sum(axis=(1, 3))
    rp = np.pad(r.astype(np.int16), radius, mode="edge")
    c16 = c.astype(np.int16)
    n = 2 * radius + 1
    best = np.full(intra.shape, np.inf)
    diff = np.empty((h, n, w), dtype=np.int16)
    for dy in range(-radius, radius + 1):  # every column offset at once (a sliding window)
        rows = rp[radius + dy: radius + dy + h, : w + 2 * radius]
        windows = np.lib.stride_tricks.sliding_window_view(rows, w, axis=1)
        np.subtract(c16[:, None, :], windows, out=diff)
        np.abs(diff, out=diff)
        best = np.minimum(best, block_sums(diff, block).min(axis=1))
    return float(best.sum() / max(float(intra.sum()), 1.0 * intra.size))


@register_system
class SceneCut(System):
    """RGB + Reference -> CutScore: the frame is a cut when the score exceeds ``threshold``."""

    name: ClassVar[str] = "SceneCut"
    config_fields: ClassVar[tuple[str, ...]] = ("threshold",)

    def __init__(self, threshold: float = 0.75) -> None:
        if not isinstance(threshold, int | float) or not threshold > 0:
            raise ConfigError(f"threshold must be a positive number, got {threshold!r}")
        self.threshold = float(threshold)

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB, Reference)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (CutScore,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            cur = world.view(world.get_component(eid, RGB).ref)
            ref = world.view(world.get_component(eid, Reference).ref)
            score = cut_score(cur, ref)
            world.add_component(eid, CutScore(score=score, cut=score > self.threshold))


@dataclass(frozen=True)
class FrameStats:
    """What coding one frame cost and gave: ``bits`` and the ``mse`` of its reconstruction."""

    key: bool
    bits: int
    mse: float
    pixels: int
    step: float | None = None
    bi: bool = False  # a B-frame (referenced by none: rate control does not learn the error model from it)


def quality_step(quality: float) -> float:
    """The transform coder's step for an image ``quality`` (1..100): 2 at 100, doubling every 12.5."""
    return float(np.clip(2.0 * 2.0 ** ((100.0 - quality) / 12.5), MIN_STEP, MAX_INTER_STEP))


#: Inter-frame error model: mse ~ k * step ** EXPONENT (k ~ 0.13 on foreman's first frames; learned).
EXPONENT = 1.36


def _mse_step(mse: float, k: float = 0.13) -> float:
    """The transform coder's step that gives about ``mse`` on a motion-compensated residual."""
    return float(np.clip((max(mse, 1e-3) / k) ** (1 / EXPONENT), MIN_STEP, MAX_INTER_STEP))


class RateControl(System):
    """Base of the rate controllers: RGB -> CodingParams for inter frames, a quality for keyframes."""

    config_fields: ClassVar[tuple[str, ...]] = ()

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (CodingParams,)

    def keyframe(self) -> dict[str, float]:
        """The image pipeline's rate setting for the next keyframe (``quality`` or ``target_bpp``)."""
        raise NotImplementedError

    def key_step(self) -> float:
        """The quantiser step of the next keyframe when keyframes are transform-coded."""
        return quality_step(self.keyframe().get("quality", 75.0))

    def step(self) -> float:
        """The quantiser step of the next inter frame."""
        raise NotImplementedError

    def update(self, stats: FrameStats) -> None:
        """Learn from a coded frame."""
        raise NotImplementedError

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            world.add_component(eid, CodingParams(step=self.step()))


@register_system
class ConstantQuality(RateControl):
    """Keyframes at image ``quality``; inter frames at the step that keeps their error at the keyframe's.

    ``ratio`` scales the target error of inter frames relative to their keyframe's MSE. The step
    comes from the model ``mse = k * step ** 1.36`` whose ``k`` is learned from every inter frame
    (a geometric running mean with weight ``gain`` for the newest), so the quality holds across
    the GOP whatever the content does, and the next GOP starts from what this one learned.
    """

    name: ClassVar[str] = "ConstantQuality"
    config_fields: ClassVar[tuple[str, ...]] = ("quality", "ratio", "gain")

    def __init__(self, quality: float = 75.0, ratio: float = 1.0, gain: float = 0.8) -> None:
        if not isinstance(quality, int | float) or not 1 <= quality <= 100:
            raise ConfigError(f"quality must be in [1, 100], got {quality!r}")
        self.quality, self.ratio, self.gain = float(quality), float(ratio), float(gain)
        self.target: float | None = None
        self.log_k = math.log(0.13)
        self.log_step = math.log(_mse_step(20.0))

    def keyframe(self) -> dict[str, float]:
        return {"quality": self.quality}

    def step(self) -> float:
        return float(np.clip(math.exp(self.log_step), MIN_STEP, MAX_INTER_STEP))

    def update(self, stats: FrameStats) -> None:
        if stats.key:
            self.target = max(stats.mse, 1e-3) * self.ratio
        elif stats.step is not None and not stats.bi:
            observed = math.log(max(stats.mse, 1e-3)) - EXPONENT * math.log(stats.step)
            self.log_k += self.gain * (observed - self.log_k)
        if self.target is not None:
            self.log_step = math.log(_mse_step(self.target, math.exp(self.log_k)))


@register_system
class TargetRate(ConstantQuality):
    """Aim at ``bpp`` bits per pixel on average, at an even quality across frames.

    Keyframes ask the image codec for ``key_factor`` times the average rate. Inter frames work as
    in :class:`ConstantQuality` (the step that gives a target error, from the learned error
    model), but the target error itself follows the budget: after every P-frame it is scaled by
    the ratio of the bits spent to the bits allowed over the last ``window`` frames (a leaky
    bucket; at most a factor 2 a frame), so the quality moves smoothly instead of the step jumping.
    """

    name: ClassVar[str] = "TargetRate"
    config_fields: ClassVar[tuple[str, ...]] = ("bpp", "key_factor", "window")

    def __init__(self, bpp: float = 0.1, key_factor: float = 4.0, window: int = 8) -> None:
        if not isinstance(bpp, int | float) or not 0 < bpp <= 64:
            raise ConfigError(f"bpp must be in (0, 64], got {bpp!r}")
        super().__init__()
        self.bpp, self.key_factor, self.window = float(bpp), float(key_factor), int(window)
        self.spent = 0.0
        self.allowed = 0.0

    def keyframe(self) -> dict[str, float]:
        return {"target_bpp": self.bpp * self.key_factor}

    def key_step(self) -> float:
        return self.step() / 1.5

    def update(self, stats: FrameStats) -> None:
        bpp = stats.bits / stats.pixels
        decay = 1.0 - 1.0 / self.window
        planned = self.bpp * (self.key_factor if stats.key else 1.0)  # a keyframe's cost is planned
        self.spent = self.spent * decay + bpp - planned + self.bpp
        self.allowed = self.allowed * decay + self.bpp
        super().update(stats)
        if not stats.key and not stats.bi and self.target is not None:
            err = math.log(max(self.spent, 1e-6) / max(self.allowed, 1e-6))
            self.target *= math.exp(float(np.clip(1.5 * err, -0.7, 0.7)))
            self.log_step = math.log(_mse_step(self.target, math.exp(self.log_k)))


@register_system
class FixedStep(RateControl):
    """Every inter frame at quantiser step ``fixed``, keyframes at image ``quality`` (no adaptation)."""

    name: ClassVar[str] = "FixedStep"
    config_fields: ClassVar[tuple[str, ...]] = ("fixed", "quality")

    def __init__(self, fixed: float = 32.0, quality: float = 75.0) -> None:
        if not isinstance(fixed, int | float) or not MIN_STEP <= fixed <= MAX_STEP:
            raise ConfigError(f"fixed must be a step in [{MIN_STEP:g}, {MAX_STEP:g}], got {fixed!r}")
        if not isinstance(quality, int | float) or not 1 <= quality <= 100:
            raise ConfigError(f"quality must be in [1, 100], got {quality!r}")
        self.fixed, self.quality = float(fixed), float(quality)

    def keyframe(self) -> dict[str, float]:
        return {"quality": self.quality}

    def key_step(self) -> float:
        return self.fixed

    def step(self) -> float:
        return self.fixed

    def update(self, stats: FrameStats) -> None:
        return None
