"""Peak memory of compressing and decompressing one large image with tiling (default config).

Each phase runs in a fresh subprocess so that ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the
peak resident set of that phase alone:

* ``compress``: generate an HxW RGB image (smooth colour pattern plus noise, generated in row
  strips so no float copy of the whole image exists), ``api.compress`` it, write the stream;
* ``decompress``: read the stream, ``api.decompress`` it, check the size and the PSNR.

For each phase it reports the baseline RSS (interpreter, numpy, onnxruntime and the model
session loaded, plus the input image for ``compress``), the peak RSS, the peak above baseline,
the tracemalloc peak (numpy and Python allocations; it includes the arena's reserved but untouched
chunks, which cost virtual memory only; ``tm-arena`` subtracts the first chunk) and the raw image
size ``H*W*3``. Goal: at most a few hundred MB above the image itself. The ``--psnr`` check runs
after the peak is read. ``--no-tracemalloc`` measures without its overhead::

    python benchmarks/bench_large_image.py [--size 8192] [--model default] [--quality 75] [--json PATH]
        [--tile-size N] [--tile-overlap N] [--psnr] [--no-tracemalloc]

The model is ``--model`` (default: the built-in default model when installed, else the committed
synthetic model of ``tests/fixtures/golden``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MiB = 1 << 20


def make_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like RGB image, built strip by strip (no full-size float temporaries)."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), dtype=np.uint8)
    x = np.arange(w, dtype=np.float32)
    strip = 256
    for y0 in range(0, h, strip):
        y = np.arange(y0, min(h, y0 + strip), dtype=np.float32)[:, None]
        for c in range(3):
            v = 128 + 80 * np.sin(x / (37 + 11 * c) + c) * np.cos(y / (53 - 7 * c)) + 30 * np.sin((x + y) / 301)
            v += rng.normal(0, 6, v.shape).astype(np.float32)
            img[y0 : y0 + len(y), :, c] = np.clip(v, 0, 255)
    return img


def resolve_model(name: str | None) -> str:
    from vaerans_ecs.errors import ModelError
    from vaerans_ecs.models import get_model, register_model

    manifest = json.loads((REPO / "tests" / "fixtures" / "golden" / "manifest.json").read_text())
    if name is None or name == manifest["model"]:
        try:
            if name is None:
                return get_model("default").name
        except ModelError:
            pass
        folder = REPO / "tests" / "fixtures" / "golden" / manifest["model_dir"]
        register_model(manifest["model"], encoder=folder / "encoder.onnx", decoder=folder / "decoder.onnx")
        return str(manifest["model"])
    return get_model(name).name


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB
    except OSError:  # pragma: no cover - not Linux
        return _rss_mib()


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One phase, in this (fresh) process."""
    from vaerans_ecs import api
    from vaerans_ecs.config import get_config, set_config
    from vaerans_ecs.models import get_model
    from vaerans_ecs.runtime import get_session

    runtime = {k: v for k, v in (("tile_size", args.tile_size), ("tile_overlap", args.tile_overlap)) if v is not None}
    if runtime:
        cfg = get_config()
        set_config(cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update=runtime)}))
    model = resolve_model(args.model)
    spec = get_model(model)
    get_session(spec.encoder if args.phase == "compress" else spec.decoder)  # load outside the measurement
    h, w = args.height, args.width
    img = make_image(h, w) if args.phase == "compress" else None
    baseline = _current_rss_mib()
    peak_before = _rss_mib()
    if args.tracemalloc:
        tracemalloc.start()
    t0 = time.perf_counter()
    if args.phase == "compress":
        data = api.compress(img, args.quality, model=model)
        Path(args.stream).write_bytes(data)
        extra: dict[str, Any] = {"stream_bytes": len(data), "bpp": len(data) * 8 / (h * w)}
    else:
        data = Path(args.stream).read_bytes()
        out = api.decompress(data)
        assert out.shape == (h, w, 3)
        extra = {}
    seconds = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / MiB if args.tracemalloc else None
    if args.tracemalloc:
        tracemalloc.stop()
    peak = _rss_mib()  # before the PSNR check, which needs the source image again
    if args.phase == "decompress" and args.psnr:
        extra["psnr_db"] = psnr_strips(out, make_image(h, w))
    cfg = get_config()
    return {
        "phase": args.phase, "model": model, "height": h, "width": w, "seconds": seconds,
        "baseline_rss_mib": baseline, "peak_rss_mib": peak, "peak_rss_before_mib": peak_before,
        "above_baseline_mib": peak - baseline, "tracemalloc_peak_mib": traced,
        "image_mib": h * w * 3 / MiB, "tile_size": cfg.runtime.tile_size, "tile_overlap": cfg.runtime.tile_overlap,
        "arena_capacity_mb": cfg.arena.capacity_mb, **extra,
    }


def psnr_strips(a: np.ndarray, b: np.ndarray, strip: int = 256) -> float:
    """PSNR of two uint8 images, accumulated over row strips (no full-size float copies)."""
    sse = 0.0
    for y0 in range(0, a.shape[0], strip):
        d = a[y0 : y0 + strip].astype(np.float64) - b[y0 : y0 + strip]
        sse += float(np.sum(d * d))
    mse = sse / a.size
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def run_phase(phase: str, args: argparse.Namespace, stream: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", phase, "--height", str(args.height), "--width", str(args.width),
           "--quality", str(args.quality), "--stream", str(stream)]
    if args.model:
        cmd += ["--model", args.model]
    for opt in ("tile_size", "tile_overlap"):
        if getattr(args, opt) is not None:
            cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
    if not args.tracemalloc:
        cmd.append("--no-tracemalloc")
    if args.psnr:
        cmd.append("--psnr")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{phase} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=8192, help="square image side (default 8192)")
    p.add_argument("--height", type=int, help="image height (overrides --size)")
    p.add_argument("--width", type=int, help="image width (overrides --size)")
    p.add_argument("--model", default=None, help="model name (default: built-in default, else synthetic)")
    p.add_argument("--quality", type=float, default=75.0)
    p.add_argument("--tile-size", type=int, help="override [runtime] tile_size")
    p.add_argument("--tile-overlap", type=int, help="override [runtime] tile_overlap")
    p.add_argument("--no-tracemalloc", dest="tracemalloc", action="store_false", help="skip tracemalloc")
    p.add_argument("--psnr", action="store_true", help="regenerate the source after decoding and report PSNR")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--child", choices=["compress", "decompress"], help=argparse.SUPPRESS)
    p.add_argument("--stream", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.height = args.height or args.size
    args.width = args.width or args.size
    if args.child:
        args.phase = args.child
        print(json.dumps(child(args)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "large.vae"
        results = [run_phase("compress", args, stream), run_phase("decompress", args, stream)]
    img = results[0]["image_mib"]
    print(f"{args.height}x{args.width} RGB = {img:.0f} MiB raw; model {results[0]['model']}, quality {args.quality}, "
          f"tile_size {results[0]['tile_size']} (+{results[0]['tile_overlap']} overlap), "
          f"stream {results[0]['stream_bytes']} bytes ({results[0]['bpp']:.3f} bpp)")
    head = ("phase", "seconds", "baseline", "peak RSS", "above", "above-img", "tracemalloc", "tm-arena")
    print(f"{head[0]:<11}{head[1]:>9}{head[2]:>10}{head[3]:>10}{head[4]:>9}{head[5]:>10}{head[6]:>12}{head[7]:>10}")
    for r in results:
        above_img = r["above_baseline_mib"] - (img if r["phase"] == "decompress" else 0.0)
        traced = r["tracemalloc_peak_mib"]
        tm = f"{traced:.0f}" if traced is not None else "-"
        tm_free = f"{traced - r['arena_capacity_mb']:.0f}" if traced is not None else "-"
        print(f"{r['phase']:<11}{r['seconds']:>9.1f}{r['baseline_rss_mib']:>10.0f}{r['peak_rss_mib']:>10.0f}"
              f"{r['above_baseline_mib']:>9.0f}{above_img:>10.0f}{tm:>12}{tm_free:>10}")
        if "psnr_db" in r:
            print(f"  PSNR {r['psnr_db']:.2f} dB")
    print("(MiB; baseline includes the input image for compress; 'above-img' discounts the decoded image "
          "for decompress; tracemalloc counts the arena's first chunk, reserved but mostly untouched, which "
          "'tm-arena' leaves out)")
    if args.json:
        payload = {"results": results, "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
