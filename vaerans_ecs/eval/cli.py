"""``vaerans eval`` / ``python -m vaerans_ecs.eval``: command-line front end of the harness."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from vaerans_ecs.errors import VaeransError

__all__ = ["DEFAULT_CODECS", "build_parser", "main", "parse_qualities", "parse_range"]

DEFAULT_CODECS = "vaerans,jpeg,webp,avif,jxl"


def parse_qualities(items: list[str] | None) -> dict[str, list[float]]:
    """``["10,20"]`` -> ``{"": [10, 20]}``; ``["jpeg=5,10", "vaerans:coder=range=20,50"]`` per codec.

    The codec key is everything before the last ``=`` (so labels with options work).
    """
    out: dict[str, list[float]] = {}
    for item in items or []:
        key, sep, values = item.rpartition("=")
        if not sep:
            key, values = "", item
        try:
            grid = [float(v) for v in values.replace(" ", ",").split(",") if v]
        except ValueError:
            raise VaeransError(f"--qualities {item!r}: expected numbers like 10,20,30 or CODEC=10,20") from None
        if not grid:
            raise VaeransError(f"--qualities {item!r}: no values")
        out[key.strip().lower() if key and ":" not in key else key.strip()] = grid
    return out


def parse_range(text: str) -> tuple[float, float] | None:
    """``"32,40"`` -> ``(32.0, 40.0)``; ``"none"`` -> None; anything else raises VaeransError."""
    if text.strip().lower() in ("none", ""):
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise VaeransError(f"--bd-range {text!r}: expected LO,HI with LO < HI (dB), or none")
    return (lo, hi)


def build_parser(prog: str = "vaerans eval") -> argparse.ArgumentParser:
    """The argument parser (shared with the ``vaerans`` CLI)."""
    from vaerans_ecs.systems.entropy import coder_names
    from vaerans_ecs.systems.wavelet import wavelet_names

    p = argparse.ArgumentParser(
        prog=prog,
        description="Rate-distortion and speed evaluation of vaerans pipelines against Pillow codecs.",
        epilog=(
            f"Codecs: vaerans[:model=M][:wavelet={'|'.join(wavelet_names())}][:levels=N]"
            f"[:coder={'|'.join(coder_names())}][:stages=S1+S2], vaerans:lossless, vaerans:max_error=K; "
            "lossy anchors jpeg, webp, avif, jxl (extra Pillow save options as :key=value); exact anchors png, "
            "webp-ll, jxl-ll, j2k-ll, jpegls[:near=K]. Exact codecs are checked on every image; a bound not held "
            "is a failure (exit status 1). Outputs in --out: results.json, results.csv, rd_psnr.png, rd_msssim.png, "
            "summary.md; the tables are printed too."
        ),
    )
    p.add_argument("--data", type=Path, help="folder of images (png, ppm, jpg, ...)")
    p.add_argument("--codecs", default=DEFAULT_CODECS, help=f"comma-separated codec specs (default {DEFAULT_CODECS})")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (by name)")
    p.add_argument(
        "--qualities",
        action="append",
        default=None,
        metavar="[CODEC=]Q1,Q2,...",
        help="quality grid for every codec, or for one codec label/family (repeatable)",
    )
    p.add_argument("--repeats", type=int, default=1, help="timed runs per point; medians are reported (default 1)")
    p.add_argument(
        "--bd-range",
        default="32,40",
        metavar="LO,HI|none",
        help="PSNR range (dB) of the extra BD-rate column: the overlap within it (default 32,40)",
    )
    p.add_argument("--macs-size", type=int, default=512, help="image side for counting model MACs (default 512)")
    p.add_argument("--no-warmup", action="store_true", help="do not run each codec once untimed first")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="code nothing: read --out/results.json and write the report again (e.g. with another --bd-range)",
    )
    from vaerans_ecs.eval.video import add_arguments

    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the process exit status (0 ok, 2 usage or data error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from vaerans_ecs.eval.harness import EvalConfig, run_eval
    from vaerans_ecs.eval.report import read_payload, write_report

    if args.video is not None:
        from vaerans_ecs.eval import video

        return video.main(args)
    if args.data is None and not args.report_only:
        parser.error("give --data (images) or --video (clips)")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    try:
        bd_range = parse_range(args.bd_range)
    except VaeransError as exc:
        parser.error(str(exc))
    t0 = time.perf_counter()
    if args.report_only:
        source = args.out / "results.json"
        if not source.is_file():
            print(f"error: --report-only needs {source} from an earlier run", file=sys.stderr)
            return 2
        payload = read_payload(source)
        payload["meta"]["bd_range"] = list(bd_range) if bd_range is not None else None
        return _finish(payload, write_report(payload, args.out, plots=not args.no_plots), t0, "reported")
    try:
        cfg = EvalConfig(
            data=Path(args.data),
            codecs=[c for c in args.codecs.split(",") if c.strip()],
            out=args.out,
            limit=args.limit,
            qualities=parse_qualities(args.qualities),
            repeats=args.repeats,
            macs_size=args.macs_size,
            progress=not args.quiet,
            warmup=not args.no_warmup,
            bd_range=bd_range,
        )
        payload = run_eval(cfg)
        if not payload["results"]:
            print("error: no codec could run (see the messages above)", file=sys.stderr)
            return 2
        files = write_report(payload, args.out, plots=not args.no_plots)
    except VaeransError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _finish(payload, files, t0, "evaluated")


def _finish(payload: dict[str, Any], files: dict[str, Path], t0: float, done: str) -> int:
    """Print the tables and the files written; 1 when anything failed, else 0."""
    from vaerans_ecs.eval.report import tables_markdown

    print(tables_markdown(payload))
    for path in files.values():
        print(f"wrote {path}")
    print(f"{done} {len(payload['meta']['images'])} images in {time.perf_counter() - t0:.1f} s")
    failures = payload["failures"]
    if failures:
        print(f"error: {len(failures)} failure(s): see FAILURES in {files['summary']}", file=sys.stderr)
        return 1
    return 0
