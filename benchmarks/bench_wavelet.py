"""Benchmark the numpy lifting wavelets against PyWavelets.

Times (median over ``--repeat`` runs, after a warm-up) the forward and inverse of our float
CDF 5/3, integer (reversible) 5/3 and Haar on ``(C, h, w)`` blocks, and PyWavelets' ``wavedec2`` /
``waverec2`` with ``bior2.2`` (the 5/3 pair) and ``haar`` over the same block (``axes=(-2, -1)``,
PyWavelets' default, expansive ``symmetric`` mode). Prints a table and writes JSON::

    python benchmarks/bench_wavelet.py [--levels 3] [--repeat 31] [--json PATH] [--shapes 4x192x128 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pywt

from vaerans_ecs.systems.wavelet import wavelet_forward, wavelet_inverse

DEFAULT_SHAPES = ("4x64x64", "4x192x128", "4x512x512", "16x96x96")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bench_wavelet.json"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn()`` in milliseconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench_shape(shape: tuple[int, int, int], levels: int, repeat: int) -> dict[str, Any]:
    """All timings for one ``(C, h, w)`` shape."""
    _, h, w = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    xi = rng.integers(-512, 512, shape).astype(np.int32)
    res: dict[str, Any] = {"shape": list(shape), "levels": levels}

    for key, wavelet, integer, data in (
        ("cdf53", "cdf53", False, x),
        ("cdf53_int", "cdf53", True, xi),
        ("haar", "haar", False, x),
    ):
        packed = wavelet_forward(data, wavelet, levels, integer=integer)
        fwd = partial(wavelet_forward, data, wavelet, levels, np.empty_like(packed), integer=integer)
        inv = partial(wavelet_inverse, packed, h, w, wavelet, levels, np.empty_like(data))
        res[f"ours_{key}_fwd_ms"] = median_ms(fwd, repeat)
        res[f"ours_{key}_inv_ms"] = median_ms(inv, repeat)

    pywt_levels = min(levels, pywt.dwtn_max_level((h, w), "haar"))
    for key, name in (("bior22", "bior2.2"), ("haar", "haar")):
        coeffs = pywt.wavedec2(x, name, level=pywt_levels, axes=(-2, -1))
        res[f"pywt_{key}_fwd_ms"] = median_ms(partial(pywt.wavedec2, x, name, level=pywt_levels, axes=(-2, -1)), repeat)
        res[f"pywt_{key}_inv_ms"] = median_ms(partial(pywt.waverec2, coeffs, name, axes=(-2, -1)), repeat)
    res["ratio_fwd_cdf53"] = res["pywt_bior22_fwd_ms"] / res["ours_cdf53_fwd_ms"]
    res["ratio_inv_cdf53"] = res["pywt_bior22_inv_ms"] / res["ours_cdf53_inv_ms"]
    res["ratio_fwd_haar"] = res["pywt_haar_fwd_ms"] / res["ours_haar_fwd_ms"]
    res["ratio_inv_haar"] = res["pywt_haar_inv_ms"] / res["ours_haar_inv_ms"]
    return res


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"4x192x128"`` -> ``(4, 192, 128)``."""
    parts = tuple(int(p) for p in text.lower().split("x"))
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"shape must look like 4x192x128, got {text!r}")
    return parts[0], parts[1], parts[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=31)
    ap.add_argument("--shapes", type=parse_shape, nargs="+", default=[parse_shape(s) for s in DEFAULT_SHAPES])
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)

    with warnings.catch_warnings():  # pywt warns when the level is high for a small plane
        warnings.simplefilter("ignore", UserWarning)
        rows = [bench_shape(shape, args.levels, args.repeat) for shape in args.shapes]
    header = (
        f"{'shape':>12} | {'5/3 fwd':>8} {'5/3 inv':>8} {'int fwd':>8} {'int inv':>8} | "
        f"{'b2.2 fwd':>8} {'b2.2 inv':>8} {'x fwd':>5} {'x inv':>5} | "
        f"{'haar fwd':>8} {'haar inv':>8} {'pw fwd':>8} {'pw inv':>8} {'x fwd':>5} {'x inv':>5}"
    )
    print(f"median ms over {args.repeat} runs, levels={args.levels}; x = pywt time / ours")
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        print(
            f"{shape:>12} | {r['ours_cdf53_fwd_ms']:8.3f} {r['ours_cdf53_inv_ms']:8.3f} "
            f"{r['ours_cdf53_int_fwd_ms']:8.3f} {r['ours_cdf53_int_inv_ms']:8.3f} | "
            f"{r['pywt_bior22_fwd_ms']:8.3f} {r['pywt_bior22_inv_ms']:8.3f} "
            f"{r['ratio_fwd_cdf53']:5.2f} {r['ratio_inv_cdf53']:5.2f} | "
            f"{r['ours_haar_fwd_ms']:8.3f} {r['ours_haar_inv_ms']:8.3f} "
            f"{r['pywt_haar_fwd_ms']:8.3f} {r['pywt_haar_inv_ms']:8.3f} "
            f"{r['ratio_fwd_haar']:5.2f} {r['ratio_inv_haar']:5.2f}"
        )
    meta = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pywt": pywt.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "levels": args.levels,
        "repeat": args.repeat,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
