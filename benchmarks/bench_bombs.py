"""Decompression bombs: what the largest forged sizes cost the decoder, and what a valid bomb costs.

Forged bombs: real small streams (every coder; a picture with the 5/3 wavelet at the aspect ratio of
the forged size, 64x64, 1x512 or 512x1, and a 32x40 one without wavelet whose latent bands are
nearly flat) whose image size is set to the largest a
``max_pixels`` allows, square and at both extreme aspect ratios, with every check the format has
recomputed as a forger would (CRC, the v2 geometry check byte). Sizes: 16384x16384, 1x2^28 and
2^28x1 with ``max_pixels`` raised to 2^28 (``config=``), and 13376x13376, 1x178956970 and
178956970x1 within the default ``max_pixels`` (178,956,970).

The valid bomb: a flat 8192x8192 image compressed for real. Its stream is tiny, yet decoding it
legitimately costs O(pixels): only ``max_pixels`` bounds a valid stream.

Each case runs in a fresh subprocess: seconds of ``decompress`` (no tracer), peak RSS above the
baseline (``/proc/self/status`` VmHWM after resetting it through ``/proc/self/clear_refs``, the
baseline being the process after imports and one small warm-up decode), then the tracemalloc peak
of a second run. The arena starts at 1 MiB (grown on demand) so that its reserve is not counted.
Prints a table and writes ``benchmarks/results/bench_bombs.json``::

    python benchmarks/bench_bombs.py [--json PATH] [--coders rans,zlib] [--no-valid]
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
sys.path.insert(0, str(REPO / "benchmarks"))

from fuzz_decoder import fixture_model  # noqa: E402

from tests.fixtures.streamfuzz import pack_v2, split_sections, varint  # noqa: E402
from vaerans_ecs import api  # noqa: E402
from vaerans_ecs.config import ArenaConfig, Config, RuntimeConfig  # noqa: E402
from vaerans_ecs.core.stream import geometry_check, read_image_stream  # noqa: E402

CODERS = ("rans", "rans-ctx", "range", "zlib", "lzma")
DEFAULT_MAX = 178_956_970
SIZES = ((1 << 28, (16384, 16384)), (1 << 28, (1, 1 << 28)), (1 << 28, (1 << 28, 1)),
         (DEFAULT_MAX, (13376, 13376)), (DEFAULT_MAX, (1, DEFAULT_MAX)), (DEFAULT_MAX, (DEFAULT_MAX, 1)))
#: Seed pictures: the 5/3 wavelet at the forged size's aspect ratio (its band layout must match), and a
#: nearly flat latent without wavelet (no band layout to match).
SEEDS = ("cdf53", "32x40 none")


def seed_shape(seed: str, h: int, w: int) -> tuple[tuple[int, int], str]:
    """Picture size and wavelet of ``seed`` for a forged ``h x w``."""
    if seed != "cdf53":
        return (32, 40), "none"
    return ((1, 512) if h == 1 else (512, 1) if w == 1 else (64, 64)), "cdf53"


def picture(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / (3 + c)) * np.cos(y / 5 - c) for c in range(3)], axis=-1)
    return np.clip(img + np.random.default_rng(0).normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def config(max_pixels: int) -> Config:
    return Config(arena=ArenaConfig(capacity_mb=1, max_capacity_mb=1 << 15),
                  runtime=RuntimeConfig(max_pixels=max_pixels, intra_op_threads=1))


def forge(seed: bytes, h: int, w: int, max_pixels: int) -> bytes:
    """``seed`` declaring ``h x w``, its geometry check byte and CRC recomputed (what any forger can do)."""
    items = [(c, varint(h) + varint(w) + b[_size_len(b) :] if c == 0x01 else b) for c, b in split_sections(seed[5:-4])]
    try:
        geom = read_image_stream(pack_v2(items), config(max_pixels)).layers[0].inputs[-1]
    except Exception:  # refused from the header alone: nothing to recompute
        return pack_v2(items)
    return pack_v2([(c, bytes([geometry_check(geom)]) + b[1:] if c == 0x05 else b) for c, b in items])


def _size_len(body: bytes) -> int:
    """Bytes of the two varints (height, width) that start an image section body."""
    pos = 0
    for _ in range(2):
        while body[pos] & 0x80:
            pos += 1
        pos += 1
    return pos


# -- one case, in a subprocess ------------------------------------------------------------------


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def run_case(path: Path, max_pixels: int) -> dict[str, Any]:
    """Decode the stream in ``path``: seconds, peak RSS above baseline, tracemalloc peak, outcome."""
    model = fixture_model()
    cfg = config(max_pixels)
    api.decompress(api.compress(picture(16, 16), 60, model), config=cfg)  # warm-up: onnxruntime, numpy, coders
    data = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    base = _status("VmRSS")
    t0 = time.perf_counter()
    outcome = "decoded"
    try:
        out = api.decompress(data, config=cfg)
        outcome = f"decoded {out.shape[0]}x{out.shape[1]}"
        del out
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:70]}"
    seconds = time.perf_counter() - t0
    rss = _status("VmHWM") - base
    tracemalloc.start()
    with contextlib.suppress(Exception):
        api.decompress(data, config=cfg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": seconds, "rss_mib": rss / 2**20, "alloc_mib": peak / 2**20, "outcome": outcome}


def measure(data: bytes, max_pixels: int, workdir: Path) -> dict[str, Any]:
    path = workdir / "case.vae"
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, __file__, "--case", str(path), "--max-pixels", str(max_pixels)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        return {"seconds": float("nan"), "rss_mib": float("nan"), "alloc_mib": float("nan"),
                "outcome": f"subprocess failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_bombs.json")
    p.add_argument("--coders", default=",".join(CODERS))
    p.add_argument("--no-valid", action="store_true", help="skip the valid 8192x8192 bomb")
    p.add_argument("--valid-size", type=int, default=8192)
    p.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.max_pixels)))
        return 0
    model = fixture_model()
    rows: list[dict[str, Any]] = []
    head = f"{'coder':<9}{'seed':<13}{'declared':>22}{'max_pixels':>12}{'bytes':>7}{'s':>8}{'RSS MiB':>9}" \
           f"{'alloc MiB':>10}  outcome"
    print(head)
    print("-" * (len(head) + 40))
    with tempfile.TemporaryDirectory() as tmp:
        for coder in args.coders.split(","):
            for kind in SEEDS:
                for max_pixels, (sh, sw) in SIZES:
                    (h, w), wavelet = seed_shape(kind, sh, sw)
                    label = f"{h}x{w} {wavelet}"
                    seed = api.compress(picture(h, w), 60, model, wavelet=wavelet, coder=coder)
                    bomb = forge(seed, sh, sw, max_pixels)
                    res = {"coder": coder, "seed": label, "height": sh, "width": sw, "max_pixels": max_pixels,
                           "bytes": len(bomb), **measure(bomb, max_pixels, Path(tmp))}
                    rows.append(res)
                    print(f"{coder:<9}{label:<13}{f'{sh}x{sw}':>22}{max_pixels:>12}{len(bomb):>7}"
                          f"{res['seconds']:>8.3f}{res['rss_mib']:>9.1f}{res['alloc_mib']:>10.1f}  {res['outcome']}",
                          flush=True)
        valid: dict[str, Any] | None = None
        if not args.no_valid:
            n = args.valid_size
            t0 = time.perf_counter()
            stream = api.compress(np.full((n, n, 3), 128, np.uint8), 60, model, config=config(DEFAULT_MAX))
            enc = time.perf_counter() - t0
            valid = {"height": n, "width": n, "bytes": len(stream), "encode_seconds": enc,
                     **measure(stream, DEFAULT_MAX, Path(tmp))}
            print(f"\nvalid bomb: flat {n}x{n} image, {len(stream)} bytes (encoded in {enc:.1f} s); decode "
                  f"{valid['seconds']:.2f} s, peak RSS +{valid['rss_mib']:.0f} MiB, tracemalloc "
                  f"{valid['alloc_mib']:.0f} MiB: {valid['outcome']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"forged": rows, "valid": valid}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
