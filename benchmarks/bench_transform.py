"""Benchmark the transform coder (vaerans_ecs.systems.residual.transform) against WebP.

    python benchmarks/bench_transform.py [--sections kodak top hard residual] [--limit N]
        [--steps 56 40 28 20 14 10 7] [--base-qualities 40 70 100] [--residual-limit N]
        [--json benchmarks/results/bench_transform.json]

Sections (each prints a table; all go to one JSON file):

``kodak``
    Direct coding of the Kodak images (mean of per-image RGB PSNR, bpp = payload bits / pixels)
    against WebP (Pillow, method 4, qualities 50..100) measured in the same run; BD-rate
    (``vaerans_ecs.eval.bdrate.bd_rate``) over the PSNR range both curves cover within [32, 40] dB
    (each curve is cut at 32 and 40 dB by its own PCHIP interpolant before the call) and over the
    whole overlap; median encode / decode CPU seconds per image at step 14 (numpy may use more
    than one thread; the machine is shared, so wall time is noisier).
``top``
    Kodak PSNR at fine steps: the top of the quality range (40 dB and above).
``hard``
    ``../shared/data/hard``: for each image, WebP q90's bpp and PSNR, and ours at the largest rate
    not above WebP's (step found by bisection); passes when ours >= WebP's - 1 dB. Grey images are
    coded as one channel, palette images as RGB.
``residual``
    Kodak (first ``--residual-limit`` images) base + residual: base =
    ``vaerans_ecs.decompress(vaerans_ecs.compress(img, quality=q, model=M))`` (a named VAE is used
    alone; ``--base-model``), the residual ``img - base`` coded with the same steps; total rate =
    base bytes + payload. Each base quality's curve is
    compared with direct coding (BD-rate over their overlap within [30, 40] dB; negative = base +
    residual is cheaper), and the VAEs alone (vae-f8c4 and vae-f4c4-xe at qualities 10..100, the
    better one at each rate) with direct coding at low rates (BD-rate over their overlap).
"""

from __future__ import annotations

import argparse
import io
import math
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _util import KODAK, REPO, write_json
from PIL import Image
from scipy.interpolate import PchipInterpolator

from vaerans_ecs.eval.bdrate import bd_rate, clean_curve
from vaerans_ecs.systems.residual.transform import decode_transform, encode_transform

HARD = REPO.parent / "shared" / "data" / "hard"
WEBP_QUALITIES = (50, 60, 70, 75, 80, 85, 90, 95, 100)
DEFAULT_STEPS = (56.0, 40.0, 28.0, 20.0, 14.0, 10.0, 7.0)
TOP_STEPS = (5.0, 3.0, 2.0, 1.0)
SPEED_STEP = 14.0
LOW_STEPS = (300.0, 200.0, 140.0, 100.0, 80.0)
BASE_ONLY_QUALITIES = (10.0, 25.0, 40.0, 55.0, 70.0, 85.0, 100.0)
BASE_ONLY_MODELS = ("vae-f8c4", "vae-f4c4-xe")
Curve = list[tuple[float, float]]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def load(folder: Path, limit: int | None = None, keep_grey: bool = False) -> list[tuple[str, np.ndarray]]:
    """``(name, HxWxC uint8)`` per PNG; grey stays one channel with ``keep_grey``, the rest is RGB."""
    out = []
    for f in sorted(folder.glob("*.png"))[: limit or None]:
        im = Image.open(f)
        grey = keep_grey and im.mode in ("L", "1")
        arr = np.asarray(im.convert("L"))[:, :, None] if grey else np.asarray(im.convert("RGB"))
        out.append((f.stem, np.ascontiguousarray(arr)))
    return out


def webp(img: np.ndarray, quality: int) -> tuple[float, float]:
    """(bpp, PSNR) of WebP method 4 (grey images compared on their one channel)."""
    grey = img.shape[2] == 1
    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if grey else img).save(buf, "WEBP", quality=quality, method=4)
    rec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L" if grey else "RGB"))
    return len(buf.getvalue()) * 8 / (img.shape[0] * img.shape[1]), psnr(img.reshape(rec.shape), rec)


def ours(img: np.ndarray, step: float, base: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """(bpp of the payload, PSNR, encode s, decode s) of the transform coder (of img - base when given).

    Times are CPU seconds of this process (the machine is shared, wall time is noisy).
    """
    planes = img.transpose(2, 0, 1).astype(np.float32)
    if base is not None:
        planes = planes - base.transpose(2, 0, 1).astype(np.float32)
    t0 = time.process_time()
    data = encode_transform(planes, step)
    t1 = time.process_time()
    rec = decode_transform(data, *planes.shape)
    t2 = time.process_time()
    if base is not None:
        rec = rec + base.transpose(2, 0, 1).astype(np.float32)
    out = np.clip(np.rint(rec), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return len(data) * 8 / (img.shape[0] * img.shape[1]), psnr(img, out), t1 - t0, t2 - t1


def mean_curve(points: Sequence[Sequence[tuple[float, float]]]) -> Curve:
    """Per setting, the mean bpp and mean PSNR over images (``points[setting][image]``)."""
    return [(float(np.mean([p[0] for p in row])), float(np.mean([p[1] for p in row]))) for row in points]


def cut(curve: Curve, lo: float, hi: float) -> Curve:
    """The curve restricted to PSNR in [lo, hi], with end points interpolated (PCHIP of log rate)."""
    r, q = clean_curve([p[0] for p in curve], [p[1] for p in curve])
    if r.size < 2:
        return []
    f = PchipInterpolator(q, np.log(r), extrapolate=False)
    a, b = max(lo, float(q[0])), min(hi, float(q[-1]))
    if not b > a:
        return []
    inner = [(float(ri), float(qi)) for ri, qi in zip(r, q, strict=True) if a < qi < b]
    return [(float(np.exp(f(a))), a), *inner, (float(np.exp(f(b))), b)]


def bd(ref: Curve, test: Curve, lo: float | None = None, hi: float | None = None) -> float:
    """BD-rate (%) of test against ref, over [lo, hi] when given (else the whole overlap)."""
    if lo is not None and hi is not None:
        ref, test = cut(ref, lo, hi), cut(test, lo, hi)
    if len(ref) < 2 or len(test) < 2:
        return math.nan
    return bd_rate([p[0] for p in ref], [p[1] for p in ref], [p[0] for p in test], [p[1] for p in test])


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


def section_kodak(images: list[tuple[str, np.ndarray]], steps: Sequence[float]) -> dict[str, Any]:
    ref = mean_curve([[webp(img, q) for _, img in images] for q in WEBP_QUALITIES])
    runs = [[ours(img, s) for _, img in images] for s in steps]
    test = mean_curve([[r[:2] for r in row] for row in runs])
    rows = [[f"WebP q{q}", *p] for q, p in zip(WEBP_QUALITIES, ref, strict=True)]
    rows += [[f"ours step {s:g}", *p] for s, p in zip(steps, test, strict=True)]
    table("Kodak: mean bpp and RGB PSNR", ["codec", "bpp", "PSNR dB"], rows)
    speed = [ours(img, SPEED_STEP) for _, img in images]
    result = {
        "webp": ref,
        "ours": test,
        "steps": list(steps),
        "bd_rate_32_40": bd(ref, test, 32.0, 40.0),
        "bd_rate_overlap": bd(ref, test),
        "encode_s_median": statistics.median(r[2] for r in speed),
        "decode_s_median": statistics.median(r[3] for r in speed),
    }
    print(
        f"\nBD-rate vs WebP over [32, 40] dB: {result['bd_rate_32_40']:+.2f} %"
        f"  (whole overlap {result['bd_rate_overlap']:+.2f} %)"
    )
    print(
        f"speed at step {SPEED_STEP:g}: encode {result['encode_s_median']:.3f} s, decode "
        f"{result['decode_s_median']:.3f} s CPU per image (median; {1 / result['encode_s_median']:.2f} / "
        f"{1 / result['decode_s_median']:.2f} images/s)"
    )
    return result


def section_top(images: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    test = mean_curve([[ours(img, s)[:2] for _, img in images] for s in TOP_STEPS])
    rows = [[s, *p] for s, p in zip(TOP_STEPS, test, strict=True)]
    table("Kodak: the top of the range", ["step", "bpp", "PSNR dB"], rows)
    return {"steps": list(TOP_STEPS), "ours": test}


def at_rate(img: np.ndarray, bpp: float) -> tuple[float, float, float]:
    """(step, bpp, PSNR) of ours at the largest rate not above ``bpp`` (bisection on log step)."""
    lo, hi = math.log(0.05), math.log(400.0)
    best: tuple[float, float, float] | None = None
    for _ in range(14):
        mid = (lo + hi) / 2
        r, p, _, _ = ours(img, math.exp(mid))
        if r <= bpp:
            best, hi = (math.exp(mid), r, p), mid
        else:
            lo = mid
    if best is None:
        r, p, _, _ = ours(img, 400.0)
        best = (400.0, r, p)
    return best


def section_hard(folder: Path) -> dict[str, Any]:
    rows, out = [], []
    for name, img in load(folder, keep_grey=True):
        wb, wp = webp(img, 90)
        step, ob, op = at_rate(img, wb)
        ok = op >= wp - 1.0
        rows.append([name, img.shape[2], wb, wp, step, ob, op, "yes" if ok else "NO"])
        out.append(
            {"image": name, "channels": img.shape[2], "webp_bpp": wb, "webp_psnr": wp}
            | {"step": step, "bpp": ob, "psnr": op, "pass": ok}
        )
    header = ["image", "C", "WebP bpp", "WebP dB", "step", "bpp", "dB", ">= WebP-1"]
    table("hard: ours at WebP q90's rate", header, rows)
    return {"images": out}


def vae_base(img: np.ndarray, quality: float, model: str) -> tuple[float, np.ndarray]:
    """(bpp, decoded) of the VAE alone (a named model is used alone, never the transform coder)."""
    import vaerans_ecs

    data = vaerans_ecs.compress(img, quality=quality, model=model)
    return len(data) * 8 / (img.shape[0] * img.shape[1]), vaerans_ecs.decompress(data)


def section_residual(
    images: list[tuple[str, np.ndarray]], steps: Sequence[float], qualities: Sequence[float], model: str
) -> dict[str, Any]:
    all_steps = sorted({*LOW_STEPS, *steps}, reverse=True)
    direct = mean_curve([[ours(img, s)[:2] for _, img in images] for s in all_steps])
    result: dict[str, Any] = {"direct": direct, "steps": list(all_steps), "base_only": [], "bases": []}
    rows = [[f"direct step {s:g}", *p] for s, p in zip(all_steps, direct, strict=True)]
    bases: dict[tuple[str, float], list[tuple[float, np.ndarray]]] = {}
    wanted = [(m, q) for m in BASE_ONLY_MODELS for q in BASE_ONLY_QUALITIES] + [(model, q) for q in qualities]
    for m, q in dict.fromkeys(wanted):
        bases[(m, q)] = [vae_base(img, q, m) for _, img in images]
        base_psnr = [psnr(img, b[1]) for (_, img), b in zip(images, bases[(m, q)], strict=True)]
        point = (float(np.mean([b[0] for b in bases[(m, q)]])), float(np.mean(base_psnr)))
        result["base_only"].append({"model": m, "quality": q, "point": point})
        rows.append([f"{m} q{q:g} alone", *point])
    base_curve = [e["point"] for e in result["base_only"]]  # the better model at each rate survives
    result["bd_rate_base_only_vs_direct"] = bd(direct, base_curve)
    print(f"VAE alone vs direct, BD-rate over their overlap: {result['bd_rate_base_only_vs_direct']:+.2f} %")
    for q in qualities:
        pts = []
        for s in steps:
            row = [ours(img, s, base=b[1]) for (_, img), b in zip(images, bases[(model, q)], strict=True)]
            pts.append([(b[0] + r[0], r[1]) for b, r in zip(bases[(model, q)], row, strict=True)])
        curve = mean_curve(pts)
        rows += [[f"{model} q{q:g} + residual step {s:g}", *p] for s, p in zip(steps, curve, strict=True)]
        bdr = bd(direct, curve, 30.0, 40.0)
        result["bases"].append({"model": model, "quality": q, "curve": curve, "bd_rate_vs_direct_30_40": bdr})
        print(f"{model} q{q:g} + residual vs direct, BD-rate over [30, 40] dB: {bdr:+.2f} %")
    table("Kodak: VAE base + residual vs direct", ["codec", "bpp", "PSNR dB"], rows)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=["kodak", "top", "hard", "residual"])
    parser.add_argument("--limit", type=int, default=0, help="first N Kodak images (0: all)")
    parser.add_argument("--residual-limit", type=int, default=8, help="Kodak images for the residual section")
    parser.add_argument("--steps", type=float, nargs="+", default=list(DEFAULT_STEPS))
    parser.add_argument("--base-qualities", type=float, nargs="+", default=[40.0, 70.0, 100.0])
    parser.add_argument("--base-model", default="vae-f4c4-xe", help="VAE of the base + residual curves")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_transform.json"))
    args = parser.parse_args()
    images = load(KODAK, args.limit)
    if not images:
        print(f"skipped: no PNG images in {KODAK}")
        return 0
    payload: dict[str, Any] = {"machine": platform.platform(), "kodak_images": len(images)}
    t0 = time.perf_counter()
    if "kodak" in args.sections:
        payload["kodak"] = section_kodak(images, args.steps)
    if "top" in args.sections:
        payload["top"] = section_top(images)
    if "hard" in args.sections:
        payload["hard"] = section_hard(HARD) if HARD.is_dir() else {"skipped": f"{HARD} missing"}
    if "residual" in args.sections:
        subset = images[: args.residual_limit]
        payload["residual"] = section_residual(subset, args.steps, args.base_qualities, args.base_model)
    payload["seconds"] = time.perf_counter() - t0
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
