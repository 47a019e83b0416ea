"""Measured rate-distortion curves of models, and the choice of model and step they drive.

A built-in model may ship ``rd.json`` beside its ONNX files: mean bits per pixel and PSNR of the
project's own compress/decompress at a grid of quantizer steps, measured on photos the model was
not trained on (``python -m vaerans_ecs.training curve``). With several such models, ``model="default"``
picks per request (see :func:`choose`):

* ``target_bpp``: the model whose curve has the highest PSNR at that rate (rate control then
  searches that model's step);
* ``quality`` 1..100: a rate level, log-linear from the lowest to the highest rate any curve
  reaches, then the best model at that rate and the step its curve predicts for it.

So a stride-8 model can serve the low rates and a stride-4 model the high ones, and the quality
knob sweeps their upper envelope. A model that the others beat at every point of its curve
(:func:`useful`) takes no part: it ships only so that streams made with it still decode.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaerans_ecs.errors import ModelError

__all__ = [
    "CURVE_FILE", "RatePoint", "choose", "load_curve", "psnr_at", "rate_level", "save_curve", "step_at", "useful",
]

#: File name of a model's curve, beside ``encoder.onnx`` / ``decoder.onnx``.
CURVE_FILE = "rd.json"


@dataclass(frozen=True)
class RatePoint:
    """One operating point: quantizer ``step`` -> mean ``bpp`` and mean ``psnr`` (dB)."""

    step: float
    bpp: float
    psnr: float


def _checked(points: Sequence[RatePoint], where: str) -> tuple[RatePoint, ...]:
    """Sort by rate and check that it is a usable curve (finite, rate falls as the step grows)."""
    pts = tuple(sorted(points, key=lambda p: p.bpp))
    if len(pts) < 2:
        raise ModelError(f"{where}: a rate curve needs at least 2 points, got {len(pts)}")
    for p in pts:
        if not all(math.isfinite(v) for v in (p.step, p.bpp, p.psnr)) or p.step <= 0 or p.bpp <= 0:
            raise ModelError(f"{where}: invalid curve point {p}")
    for a, b in itertools.pairwise(pts):
        if not (a.bpp < b.bpp and a.step > b.step):
            raise ModelError(f"{where}: the rate must fall strictly as the step grows ({a} vs {b})")
    return pts


def load_curve(path: str | Path, fingerprint: str | None = None) -> tuple[RatePoint, ...]:
    """Read ``rd.json``; with ``fingerprint``, refuse a curve measured with another decoder."""
    file = Path(path)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        points = [RatePoint(float(p["step"]), float(p["bpp"]), float(p["psnr"])) for p in doc["points"]]
    except OSError as exc:
        raise ModelError(f"cannot read {file}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ModelError(f"{file}: not a rate curve ({type(exc).__name__})") from None
    found = doc.get("fingerprint")
    if fingerprint is not None and found != fingerprint:
        raise ModelError(f"{file} was measured with decoder {found}, not {fingerprint}: re-measure it")
    return _checked(points, str(file))


def save_curve(path: str | Path, points: Sequence[RatePoint], **provenance: Any) -> None:
    """Write ``rd.json`` (points sorted by rate) with provenance fields (model, fingerprint, data...)."""
    pts = _checked(points, str(path))
    doc = {**provenance, "points": [{"step": p.step, "bpp": p.bpp, "psnr": p.psnr} for p in pts]}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation in increasing ``xs``, clamped at both ends."""
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + t * (ys[i] - ys[i - 1])
    return ys[-1]


def psnr_at(curve: Sequence[RatePoint], bpp: float) -> float:
    """PSNR the curve predicts at ``bpp`` (linear in log-rate; -inf outside the measured range)."""
    if not curve[0].bpp <= bpp <= curve[-1].bpp:
        return -math.inf
    return _interp(math.log(bpp), [math.log(p.bpp) for p in curve], [p.psnr for p in curve])


def step_at(curve: Sequence[RatePoint], bpp: float) -> float:
    """Step the curve predicts for ``bpp`` (log-step linear in log-rate, clamped to the curve)."""
    log_step = _interp(math.log(bpp), [math.log(p.bpp) for p in curve], [math.log(p.step) for p in curve])
    return math.exp(log_step)


def rate_level(curves: Sequence[Sequence[RatePoint]], quality: float) -> float:
    """Rate (bpp) that ``quality`` in [1, 100] stands for: log-linear over the curves' whole range."""
    lo = min(c[0].bpp for c in curves)
    hi = max(c[-1].bpp for c in curves)
    t = (quality - 1.0) / 99.0
    return math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))


#: Rate difference within a curve's measurement noise (three photos): a curve that starts at most
#: this fraction above a point's rate still counts as reaching that rate in :func:`useful`.
RATE_TOLERANCE = 0.02


def _beats(b: Sequence[RatePoint], p: RatePoint, tie: bool) -> bool:
    """Whether curve ``b`` reaches more than ``p``'s PSNR (or as much, with ``tie``) at no more than
    its rate (up to :data:`RATE_TOLERANCE` more where ``b`` starts just above it)."""
    if b[0].bpp > p.bpp * (1.0 + RATE_TOLERANCE):
        return False
    psnr = psnr_at(b, min(max(p.bpp, b[0].bpp), b[-1].bpp))
    return psnr > p.psnr or (tie and psnr == p.psnr)


def useful(curves: Sequence[Sequence[RatePoint]]) -> list[int]:
    """Indices of the curves with a point that no other curve beats (of identical curves, the first)."""
    return [
        i for i, a in enumerate(curves)
        if not all(any(_beats(b, p, j < i) for j, b in enumerate(curves) if j != i) for p in a)
    ]


def choose(
    curves: Sequence[Sequence[RatePoint]], *, quality: float | None = None, target_bpp: float | None = None
) -> tuple[int, float]:
    """``(index of the best curve, predicted step)`` for a quality or a target rate.

    Only :func:`useful` curves take part. The best has the highest PSNR at the rate; when none
    reaches the rate (a target outside every measured range), the one whose range ends nearest
    to it (in log-rate).
    """
    if not curves:
        raise ModelError("no rate curves to choose from")
    keep = useful(curves)
    index, step = _choose([curves[i] for i in keep], quality=quality, target_bpp=target_bpp)
    return keep[index], step


def _choose(
    curves: Sequence[Sequence[RatePoint]], *, quality: float | None = None, target_bpp: float | None = None
) -> tuple[int, float]:
    if (quality is None) == (target_bpp is None):
        raise ModelError("choose() needs exactly one of quality and target_bpp")
    if quality is not None:
        if not 1.0 <= quality <= 100.0:
            raise ModelError(f"quality must be in [1, 100], got {quality}")
        bpp = rate_level(curves, quality)
    else:
        assert target_bpp is not None
        if not (math.isfinite(target_bpp) and target_bpp > 0):
            raise ModelError(f"target_bpp must be a positive number, got {target_bpp}")
        bpp = target_bpp

    def distance(c: Sequence[RatePoint]) -> float:
        return max(math.log(c[0].bpp) - math.log(bpp), math.log(bpp) - math.log(c[-1].bpp), 0.0)

    best = max(range(len(curves)), key=lambda i: (psnr_at(curves[i], bpp), -distance(curves[i])))
    return best, step_at(curves[best], bpp)


#: How close to ``target_bpp`` rate control must come (a fraction of the target).
RATE_SLACK = 0.05


def bisect_rate(
    trial: Callable[[float], float], lo: float, hi: float, target_bpp: float, guess: float | None = None,
    *, rounds: int = 24,
) -> tuple[float, float]:
    """``(log step, bpp)`` nearest ``target_bpp`` by bisection on the log step in ``[lo, hi]``.

    ``trial(log_step)`` codes at that step and returns the rate (it falls as the step grows).
    ``guess`` (a curve's predicted log step) is tried first. Stops within :data:`RATE_SLACK`; when
    the target cannot be reached, returns the nearest rate tried (the caller recodes at it).
    """
    probe = guess if guess is not None and lo < guess < hi else 0.5 * (lo + hi)
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        bpp = trial(probe)
        if best is None or abs(bpp - target_bpp) < abs(best[1] - target_bpp):
            best = (probe, bpp)
        if abs(bpp - target_bpp) <= RATE_SLACK * target_bpp:
            return probe, bpp
        lo, hi = (probe, hi) if bpp > target_bpp else (lo, probe)
        probe = 0.5 * (lo + hi)
    assert best is not None
    return best
