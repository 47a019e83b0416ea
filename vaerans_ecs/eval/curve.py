"""Measure rate curves (``rd.json``) with the project's own coders, on held-out training photos.

``python -m vaerans_ecs.training curve --model models/vae-f8c4`` runs :func:`measure_curve` on the photos
the trainer held out (the last ``--holdout`` of the training folder, never Kodak) and writes the
curve that :func:`vaerans_ecs.models.choose_model` uses to pick between built-in models.
``python -m vaerans_ecs.eval.curve transform`` measures the transform coder's curve on the same
photos (:func:`measure_transform_curve`), which the quality scale of ``compress`` spans too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vaerans_ecs.ratecurve import RatePoint

__all__ = ["CURVE_QUALITIES", "TRANSFORM_STEPS", "main", "measure_curve", "measure_transform_curve"]

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


#: Quantiser steps of the transform coder's curve: from the lowest rates the VAE also reaches to
#: near-lossless quality.
TRANSFORM_STEPS: tuple[float, ...] = tuple(float(round(96.0 * 0.78**k, 3)) for k in range(13))


def measure_transform_curve(
    images: Sequence[npt.NDArray[np.uint8]], steps: Sequence[float] = TRANSFORM_STEPS
) -> list[RatePoint]:
    """Mean bpp and mean RGB PSNR over ``images`` of the transform coder coding them directly."""
    from vaerans_ecs.systems.metrics import psnr
    from vaerans_ecs.systems.residual.transform import decode_transform, encode_transform

    points = []
    for step in steps:
        bpps, psnrs = [], []
        for img in images:
            planes = np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32)
            data = encode_transform(planes, step)
            out = np.clip(np.rint(decode_transform(data, *planes.shape)), 0, 255).astype(np.uint8)
            bpps.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
            psnrs.append(min(psnr(img, np.moveaxis(out, 0, -1)), 100.0))
        points.append(RatePoint(step=step, bpp=float(np.mean(bpps)), psnr=float(np.mean(psnrs))))
    return sorted(points, key=lambda p: p.bpp)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vaerans_ecs.eval.curve transform``: write the transform coder's rate curve."""
    import argparse
    import sys
    from pathlib import Path

    from vaerans_ecs.eval.harness import load_images
    from vaerans_ecs.ratecurve import save_curve
    from vaerans_ecs.systems.residual.stages import TRANSFORM_CURVE as CURVE_PATH

    p = argparse.ArgumentParser(prog="python -m vaerans_ecs.eval.curve", description=main.__doc__)
    p.add_argument("what", choices=["transform"])
    p.add_argument("--data", type=Path, default=Path("../shared/data/train"), help="training photos folder")
    p.add_argument("--holdout", type=int, default=3, help="use the last N photos (the models' held-out ones)")
    p.add_argument("--out", type=Path, default=CURVE_PATH)
    args = p.parse_args(argv)
    if args.data.resolve().name == "kodak" or args.holdout < 1:
        raise SystemExit("curves are measured on held-out training photos (--holdout >= 1), never on Kodak")
    images = load_images(args.data)[-args.holdout :]
    points = measure_transform_curve([img for _, img in images])
    command = "python -m vaerans_ecs.eval.curve " + " ".join(sys.argv[1:] if argv is None else argv)
    save_curve(args.out, points, model="transform", command=command, images=[n for n, _ in images])
    for pt in points:
        print(f"step {pt.step:8.3f}: {pt.bpp:.4f} bpp {pt.psnr:.2f} dB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
