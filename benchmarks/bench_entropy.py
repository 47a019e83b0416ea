"""Benchmark the entropy-coding stage on synthetic Laplacian bands in the codec's band layout.

For each scale, 40 bands as a 768x512 image gives them (stride-4 VAE: 4 x 192 x 128 latent, a
3-level wavelet per channel; ``--stride 8`` for 4 x 96 x 64): the low-pass band 4x wider than the
scale (DPCM-like), detail bands halving per level, channels 1-3 half as wide as channel 0.
Prints, per scale and coder: the order-0 bound (sum of n*H/8 over bands), our payload bytes
(tables included), the ratio, bits per pixel of the 768x512 image, encode/decode throughput
(best of ``--repeat`` runs, the least noisy statistic on a shared machine; model caches are
cleared before each run so nothing carries over from the previous image) and its ratio to bare
constriction AnsCoder calls on the same symbols with precomputed models (one exact histogram
model per band over its used range, symbols already int32 and shifted; ``enc/bm`` and ``dec/bm``:
the same with building the Categorical models from those probabilities timed too). Writes JSON with ``--json``::

    python benchmarks/bench_entropy.py [--stride 4] [--repeat 15] [--coders rans,range] [--json PATH]

``--kodak N`` instead uses the first N Kodak images (``shared/data/kodak``) as a proxy for real
latents with real (non-i.i.d.) statistics: YCbCr plus a luma-detail channel averaged over
stride x stride blocks, CDF 5/3 3-level wavelet, uniform deadzone quantizer per band (zero point
128, DPCM along rows for the low-pass band); ``--scales`` are then quantizer steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import constriction
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vaerans_ecs.systems.entropy import EntropyCoder, clear_caches, empirical_entropy_bound_bytes, get_coder
from vaerans_ecs.systems.wavelet import band_layout

DEFAULT_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
PIXELS = 768 * 512


def layout_bands(scale: float, stride: int, seed: int = 0) -> list[np.ndarray]:
    """Synthetic quantizer symbols (zero point 128) in the 4-channel x 10-band layout."""
    rng = np.random.default_rng(seed)
    h, w = 768 // stride, 512 // stride
    out = []
    for c in range(4):
        for i, band in enumerate(band_layout(h, w, 3)):
            gain = 4.0 if i == 0 else 2.0 ** (-((i - 1) // 3))
            s = scale * gain * (1.0 if c == 0 else 0.5)
            x = np.rint(rng.laplace(0.0, s, band.size)) + 128
            out.append(np.clip(x, 0, 255).astype(np.uint8))
    return out


def kodak_bands(path: Path, step: float, stride: int) -> list[np.ndarray]:
    """Proxy quantizer symbols from an image (see the module docstring)."""
    from PIL import Image

    from vaerans_ecs.systems.wavelet import wavelet_forward

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    if rgb.shape[0] > rgb.shape[1]:
        rgb = rgb.transpose(1, 0, 2)
    h, w = rgb.shape[0] // stride, rgb.shape[1] // stride
    blocks = rgb[: h * stride, : w * stride].reshape(h, stride, w, stride, 3)
    mean = blocks.mean(axis=(1, 3))
    y = mean @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    cb, cr = mean[..., 2] - y, mean[..., 0] - y
    detail = (blocks @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).std(axis=(1, 3))
    lat = np.stack([y * 4, cb * 4, cr * 4, detail * 8]).astype(np.float32)
    packed = wavelet_forward(lat, "cdf53", 3)
    out = []
    for c in range(4):
        for i, band in enumerate(band_layout(h, w, 3)):
            x = packed[c, band.offset : band.offset + band.size] / step
            q = np.sign(x) * np.floor(np.abs(x) + 0.3)  # deadzone rounding
            if i == 0:
                q = np.diff(q.reshape(band.h, band.w), axis=1, prepend=0).ravel()
            out.append(np.clip(q + 128, 0, 255).astype(np.uint8))
    return out


def best_s(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` timed runs of ``fn()`` (after one warm-up), in seconds."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bare_constriction(bands: list[np.ndarray], repeat: int) -> tuple[float, float, float, float]:
    """Seconds to encode / decode with bare AnsCoder calls and precomputed per-band models
    (strict), then encode / decode including building the Categorical models from the same
    probabilities (what a constriction user writes, the probabilities given)."""
    cat = constriction.stream.model.Categorical
    syms, probs = [], []
    for b in bands:
        if b.size == 0:
            continue
        lo, hi = int(b.min()), int(b.max())
        counts = np.bincount(b - lo, minlength=hi - lo + 1).astype(np.float64)
        if hi == lo:
            counts = np.array([1.0, 1e-9])
        syms.append(b.astype(np.int32) - lo)
        probs.append(counts / counts.sum())
    models = [cat(p, perfect=False) for p in probs]

    def enc(ms: list[Any] | None = None) -> Any:
        ms = [cat(p, perfect=False) for p in probs] if ms is None else ms
        coder = constriction.stream.stack.AnsCoder()
        for s, m in zip(reversed(syms), reversed(ms), strict=True):
            coder.encode_reverse(s, m)
        return coder.get_compressed()

    words = enc(models)

    def dec(ms: list[Any] | None = None) -> None:
        ms = [cat(p, perfect=False) for p in probs] if ms is None else ms
        coder = constriction.stream.stack.AnsCoder(words)
        for s, m in zip(syms, ms, strict=True):
            coder.decode(m, s.size)

    strict = best_s(lambda: enc(models), repeat), best_s(lambda: dec(models), repeat)
    return *strict, best_s(enc, repeat), best_s(dec, repeat)


def run(
    scales: list[float], stride: int, coders: list[str], repeat: int, images: list[Path] | None = None
) -> list[dict[str, Any]]:
    rows = []
    cases = [(s, None) for s in scales] if not images else [(s, p) for p in images for s in scales]
    for scale, image in cases:
        bands = layout_bands(scale, stride) if image is None else kodak_bands(image, scale, stride)
        sizes = [b.size for b in bands]
        n = sum(sizes)
        bound = empirical_entropy_bound_bytes(bands)
        bare_enc, bare_dec, bare_enc_models, bare_dec_models = bare_constriction(bands, repeat)
        for name in coders:
            coder = get_coder(name)
            data = coder.encode(bands)
            assert all(np.array_equal(a, b) for a, b in zip(coder.decode(data, sizes), bands, strict=True))

            def enc(c: EntropyCoder = coder, b: list[np.ndarray] = bands) -> None:
                clear_caches()
                c.encode(b)

            def dec(c: EntropyCoder = coder, d: bytes = data, s: list[int] = sizes) -> None:
                clear_caches()
                c.decode(d, s)

            t_enc = best_s(enc, repeat)
            t_dec = best_s(dec, repeat)
            rows.append(
                {
                    "scale": scale,
                    "image": image.name if image is not None else None,
                    "stride": stride,
                    "coder": name,
                    "symbols": n,
                    "bound_bytes": round(bound, 1),
                    "bytes": len(data),
                    "ratio": len(data) / bound if bound > 0 else float("inf"),
                    "bpp": len(data) * 8 / PIXELS,
                    "encode_ms": t_enc * 1e3,
                    "decode_ms": t_dec * 1e3,
                    "encode_msym_s": n / t_enc / 1e6,
                    "decode_msym_s": n / t_dec / 1e6,
                    "encode_vs_bare": bare_enc / t_enc,
                    "decode_vs_bare": bare_dec / t_dec,
                    "encode_vs_bare_models": bare_enc_models / t_enc,
                    "decode_vs_bare_models": bare_dec_models / t_dec,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stride", type=int, default=4, choices=(4, 8))
    ap.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES))
    ap.add_argument("--coders", default="rans,range,zlib,lzma")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument("--kodak", type=int, default=0, help="use the first N Kodak images; scales are steps")
    args = ap.parse_args(argv)
    images = None
    if args.kodak:
        folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
        images = sorted(folder.glob("*.png"))[: args.kodak]
        if not images:
            ap.error(f"no Kodak images in {folder}")
    rows = run(args.scales, args.stride, args.coders.split(","), args.repeat, images)
    head = (
        f"{'scale':>6} {'coder':>6} {'bpp':>6} {'bound B':>9} {'ours B':>8} {'ratio':>6} "
        f"{'enc ms':>7} {'dec ms':>7} {'enc Ms/s':>9} {'dec Ms/s':>9} {'enc/bare':>8} {'dec/bare':>8} "
        f"{'enc/bm':>6} {'dec/bm':>6}"
    )
    what = f"{len(images)} Kodak images (scale = step)" if images else "synthetic Laplacian"
    print(f"stride {args.stride}, {what}: {rows[0]['symbols'] if rows else 0} symbols in 40 bands, 768x512 image")
    print(head)
    for r in rows:
        print(
            (f"{r['image']} " if r["image"] else "")
            + f"{r['scale']:>6g} {r['coder']:>6} {r['bpp']:>6.3f} {r['bound_bytes']:>9.1f} {r['bytes']:>8d} "
            f"{r['ratio']:>6.3f} {r['encode_ms']:>7.2f} {r['decode_ms']:>7.2f} {r['encode_msym_s']:>9.1f} "
            f"{r['decode_msym_s']:>9.1f} {r['encode_vs_bare']:>8.2f} {r['decode_vs_bare']:>8.2f} "
            f"{r['encode_vs_bare_models']:>6.2f} {r['decode_vs_bare_models']:>6.2f}"
        )
    if args.json:
        import json

        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
        out.write_text(json.dumps({"meta": meta, "args": vars(args), "rows": rows}, indent=2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
