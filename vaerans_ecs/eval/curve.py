"""Measure a model's rate curve (``rd.json``) with the project's own compress/decompress.

``python models/train.py curve --model models/vae-f8c4`` runs :func:`measure_curve` on the photos
the trainer held out (the last ``--holdout`` of the training folder, never Kodak) and writes the
curve that :func:`vaerans_ecs.models.choose_model` uses to pick between built-in models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vaerans_ecs.ratecurve import RatePoint

__all__ = ["CURVE_QUALITIES", "measure_curve"]

#: Quality grid of a curve: dense enough for the log-linear interpolation between points.
CURVE_QUALITIES: tuple[float, ...] = (1, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 100)


def measure_curve(
    model: str, images: Sequence[npt.NDArray[np.uint8]], qualities: Sequence[float] = CURVE_QUALITIES
) -> list[RatePoint]:
    """Mean bpp and mean RGB PSNR over ``images`` at each quality's step of ``model`` (a name, not "default")."""
    from vaerans_ecs.api import compress, decompress
    from vaerans_ecs.models import get_model
    from vaerans_ecs.systems.metrics import psnr
    from vaerans_ecs.systems.quantize import step_for_quality

    spec = get_model(model)
    points = []
    for q in qualities:
        bpps, psnrs = [], []
        for img in images:
            data = compress(img, q, spec.name)
            bpps.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
            psnrs.append(min(psnr(img, decompress(data)), 100.0))
        step = step_for_quality(q, spec.step_min, spec.step_max)
        points.append(RatePoint(step=step, bpp=float(np.mean(bpps)), psnr=float(np.mean(psnrs))))
    # keep the curve strictly monotone (a step that saves no rate is useless to interpolate)
    kept: list[RatePoint] = []
    for p in sorted(points, key=lambda p: -p.step):
        if not kept or p.bpp > kept[-1].bpp:
            kept.append(p)
    return kept
