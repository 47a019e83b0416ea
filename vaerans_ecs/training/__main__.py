"""CLI for training and exporting the codec's VAE (``pip install ".[train]"``; it was models/train.py).

    python -m vaerans_ecs.training train --data ../shared/data/train --stride 4 --out runs/vae-f4c4 --steps N --seed 0
    python -m vaerans_ecs.training train --out runs/vae-f4c4 --resume [--steps N]
    python -m vaerans_ecs.training train --out runs/big --init-from runs/vae-f4c4/last.pt \\
        --enc-blocks 2 --dec-blocks 2 --tail-blocks 1
        # a fresh run from another checkpoint, grown by residual blocks that start as the identity
    python -m vaerans_ecs.training export --ckpt runs/vae-f4c4/last.pt --out models/vae-f4c4/
    python -m vaerans_ecs.training curve --model models/vae-f4c4   # rd.json on the held-out photos
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from vaerans_ecs.training.export import export_checkpoint
from vaerans_ecs.training.train import TrainConfig, load_checkpoint, train


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _write_curve(folder: Path, data: Path, holdout: int, argv: list[str] | None) -> None:
    from vaerans_ecs.config import get_config
    from vaerans_ecs.eval.curve import measure_curve
    from vaerans_ecs.eval.harness import load_images
    from vaerans_ecs.models import get_model
    from vaerans_ecs.ratecurve import CURVE_FILE, save_curve

    if data.resolve().name == "kodak" or holdout < 1:
        raise SystemExit("the curve is measured on held-out training photos (--holdout >= 1), never on Kodak")
    images = load_images(data)[-holdout:]
    spec = get_model(str(folder.resolve()))
    points = measure_curve(spec.name, [img for _, img in images])
    command = "python -m vaerans_ecs.training " + " ".join(sys.argv[1:] if argv is None else argv)
    save_curve(
        folder / CURVE_FILE, points, model=folder.name, fingerprint=spec.fingerprint, command=command,
        coder=get_config().codec.coder, images=[name for name, _ in images],
    )
    for p in points:
        print(f"step {p.step:7.3f}: {p.bpp:.4f} bpp {p.psnr:.2f} dB")
    print(f"wrote {folder / CURVE_FILE}")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the requested sub-command."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train or resume")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        val = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(val, list):
            tr.add_argument(flag, type=_int_list, default=None, help="comma-separated ints")
        elif isinstance(val, tuple):
            tr.add_argument(flag, type=lambda t: tuple(float(v) for v in t.split(",")), default=None)
        else:
            tr.add_argument(flag, type=type(val), default=None, help=f"default {val}")
    tr.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ex = sub.add_parser("export", help="export a checkpoint to encoder.onnx/decoder.onnx")
    ex.add_argument("--ckpt", required=True)
    ex.add_argument("--out", required=True)
    ex.add_argument("--raw", action="store_true", help="export raw weights instead of the EMA")
    ex.add_argument("--step-min", type=float, default=None)
    ex.add_argument("--step-max", type=float, default=None)
    cu = sub.add_parser("curve", help="measure a model folder's rate curve (rd.json) on held-out photos")
    cu.add_argument("--model", required=True, help="model folder (encoder.onnx, decoder.onnx)")
    cu.add_argument("--data", default=TrainConfig.data, help="the training folder (relative to the working directory)")
    cu.add_argument("--holdout", type=int, default=TrainConfig.holdout, help="its last N photos are used")
    args = parser.parse_args(argv)

    if args.cmd == "train":
        given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
        out = Path(given.get("out", TrainConfig.out))
        if args.resume and (out / "last.pt").exists():
            # Options not given again on the command line come from the checkpoint.
            saved: dict[str, Any] = dict(load_checkpoint(out / "last.pt")["train_config"])  # type: ignore[call-overload]
            saved["lr_drops"] = tuple(saved["lr_drops"])
            given = {**saved, **given}
        cfg = TrainConfig(**given)  # paths relative to the working directory: run from the repository root
        if Path(cfg.data).resolve().name == "kodak":
            parser.error("refusing to train on the Kodak evaluation set")
        train(cfg, resume=args.resume)
    elif args.cmd == "curve":
        _write_curve(Path(args.model), Path(args.data), args.holdout, argv)
    else:
        meta = export_checkpoint(
            args.ckpt, args.out, use_ema=not args.raw, step_min=args.step_min, step_max=args.step_max
        )
        for k, v in meta.items():
            print(f"{k} = {v}")
        print(f"wrote {args.out}/encoder.onnx and decoder.onnx (ONNX == torch checked)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
