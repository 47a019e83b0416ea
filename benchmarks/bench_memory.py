"""Peak memory of compressing (and decompressing) one large image generated in-process.

A deterministic ``--size`` x ``--size`` RGB image (default 4096, smooth colour fields plus
texture) is compressed with ``vaerans_ecs.compress`` and the stream decoded with ``decompress``.
For each phase it reports the peak of Python/numpy allocations (``tracemalloc``) and the peak
resident set size (Linux: ``VmHWM`` of ``/proc/self/status``, reset before each phase through
``/proc/self/clear_refs``; elsewhere ``resource.getrusage`` ``ru_maxrss``, a lifetime peak),
both above the process's memory before the phase, and compares them with a budget of
3 x the raw RGB size + the model's memory. The model's memory is the RSS growth when its ONNX
sessions are created (a warm-up on a small image, before the measurement) plus the working set of
one inference at the size the codec runs it (one tiled window, ``tile_size + 2 * tile_overlap``
pixels a side, or the whole image when it is not tiled): the peak RSS growth of one encoder and
one decoder run, the larger of the two, released afterwards so the phases pay it again. Both
ratios are printed (with and without that working set). The ONNX runtime's own allocations are
native, so they show in RSS only::

    python benchmarks/bench_memory.py [--size 4096] [--model default] [--no-decode] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _util import write_json

from vaerans_ecs import api
from vaerans_ecs.config import get_config
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.models import ModelSpec, get_model
from vaerans_ecs.runtime import get_session, run_session

MIB = 1 << 20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident set size (0 when unknown)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else 0


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False when not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """Peak RSS since the last reset (VmHWM), or the lifetime peak from getrusage."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def make_image(size: int, seed: int = 0) -> np.ndarray:
    """Deterministic test image: smooth colour fields plus a texture, built in row blocks."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), dtype=np.uint8)
    xs = np.arange(size, dtype=np.float32)
    for y0 in range(0, size, 512):
        yy = np.arange(y0, min(y0 + 512, size), dtype=np.float32)[:, None]
        r = 128 + 80 * np.sin(xs[None, :] / 97 + yy / 131)
        g = 128 + 70 * np.cos(yy / 61) * np.sin(xs[None, :] / 203)
        b = 128 + 60 * np.sin((xs[None, :] + yy) / 157)
        noise = rng.normal(0, 12, (yy.shape[0], size, 3)).astype(np.float32)
        block = np.stack([r, g, b], axis=-1) + noise
        img[y0 : y0 + yy.shape[0]] = np.clip(block, 0, 255).astype(np.uint8)
    return img


def measure(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``fn`` once; peak tracemalloc and RSS above the starting point, and seconds."""
    gc.collect()
    exact = reset_peak()
    rss0 = rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = peak_rss_bytes()
    return out, {
        "seconds": seconds,
        "tracemalloc_peak_mib": traced_peak / MIB,
        "rss_before_mib": rss0 / MIB,
        "rss_peak_mib": peak / MIB,
        "rss_peak_above_start_mib": (peak - rss0) / MIB,
        "rss_peak_is_phase_peak": exact,
    }


def inference_working_set(spec: ModelSpec, size: int) -> tuple[int, int]:
    """(bytes, side): peak RSS growth of one encoder / decoder run at the codec's inference size."""
    rt = get_config().runtime
    s = spec.stride
    side = -(-size // s) * s
    if rt.tile_size > 0 and size * size > rt.tile_size * rt.tile_size:  # the tiled path's window
        side = min(side, (max(1, rt.tile_size // s) + 2 * -(-rt.tile_overlap // s)) * s)
    worst = 0
    for path, x in (
        (spec.encoder, np.zeros((1, 3, side, side), dtype=np.float32)),
        (spec.decoder, np.zeros((1, 4, side // s, side // s), dtype=np.float32)),
    ):
        session = get_session(path)
        gc.collect()
        reset_peak()
        rss0 = rss_bytes()
        run_session(session, x, release_memory=True)
        worst = max(worst, peak_rss_bytes() - rss0)
    return worst, side


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--model", default="default")
    ap.add_argument("--quality", type=float, default=None)
    ap.add_argument("--no-decode", action="store_true", help="measure compression only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        spec = get_model(args.model)
    except VaeransError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    quality = args.quality if args.quality is not None else float(get_config().codec.quality)

    rss_start = rss_bytes()
    small = make_image(64, seed=1)
    api.decompress(api.compress(small, quality, spec.name))  # creates both ONNX sessions
    model_rss = max(rss_bytes() - rss_start, 0)
    model_files = spec.encoder.stat().st_size + spec.decoder.stat().st_size

    work, side = inference_working_set(spec, args.size)

    img = make_image(args.size)
    raw = img.nbytes
    budget = 3 * raw + model_rss + work
    strict = 3 * raw + model_rss
    data, enc = measure(lambda: api.compress(img, quality, spec.name))
    phases = {"compress": enc}
    if not args.no_decode:
        recon, dec = measure(lambda: api.decompress(data))
        assert recon.shape == img.shape
        phases["decompress"] = dec
        del recon
    rt = get_config().runtime
    print(
        f"{args.size}x{args.size} image ({raw / MIB:.0f} MiB raw RGB), model {spec.name} (files "
        f"{model_files / MIB:.1f} MiB, sessions +{model_rss / MIB:.0f} MiB RSS), quality {quality:g}, "
        f"{len(data) * 8 / (args.size * args.size):.3f} bpp, tile_size {rt.tile_size}"
    )
    print(
        f"budget = 3 x raw + model = {budget / MIB:.0f} MiB (model: sessions {model_rss / MIB:.0f} + one "
        f"{side}x{side} inference {work / MIB:.0f} MiB; without the inference: {strict / MIB:.0f} MiB)"
    )
    print(
        f"{'phase':>11} {'seconds':>8} {'tracemalloc MiB':>16} {'RSS peak above start MiB':>25} {'of budget':>10}"
        f" {'of 3xraw+sessions':>18}"
    )
    for name, m in phases.items():
        above = m["rss_peak_above_start_mib"] * MIB
        print(
            f"{name:>11} {m['seconds']:>8.1f} {m['tracemalloc_peak_mib']:>16.0f} "
            f"{above / MIB:>25.0f} {above / budget:>10.2f} {above / strict:>18.2f}"
        )
    print("(tracemalloc counts the arena's first chunk, reserved but mostly untouched: "
          f"{get_config().arena.capacity_mb} MiB)")
    if not all(m["rss_peak_is_phase_peak"] for m in phases.values()):
        print("note: RSS peak is the process lifetime peak (could not reset VmHWM)")
    if args.json:
        write_json(
            args.json,
            {
                "size": args.size,
                "model": spec.name,
                "quality": quality,
                "raw_mib": raw / MIB,
                "model_files_mib": model_files / MIB,
                "model_rss_mib": model_rss / MIB,
                "inference_side": side,
                "inference_working_set_mib": work / MIB,
                "budget_mib": budget / MIB,
                "budget_without_inference_mib": strict / MIB,
                "tile_size": rt.tile_size,
                "pid": os.getpid(),
                "phases": phases,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
