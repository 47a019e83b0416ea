"""Entropy stage on real quantized symbols: every registered coder on the same SymbolsU8.

The first ``--images`` Kodak images go through the codec's front end with the World/Pipe API
(``OnnxVAEEncode | Hadamard4 | Wavelet | QuantizeU8`` at ``--quality``); the resulting SymbolsU8
bands (channel-major, layout order: what ANSEncode codes) are then coded by each coder of
``vaerans_ecs.systems.entropy.coder_names()``. Per coder: payload bytes (tables included), the
order-0 bound (sum over bands of n*H/8), their ratio, and encode/decode throughput in Msymbols/s
(median of ``--repeats``, model caches cleared before every run, round trip checked).

Then the system overhead: ``world.pipe(eids) | ANSEncode()`` and ``| ANSDecode()`` on the same
entities against bare constriction ``AnsCoder`` calls on the same symbols with precomputed
models (one exact-histogram Categorical per band over its used range, symbols pre-shifted to
int32): ratio = bare seconds / system seconds (goal >= 0.7)::

    python benchmarks/bench_entropy_stage.py [--images 4] [--quality 75] [--model default]
        [--repeats 15] [--json benchmarks/results/entropy_stage.json]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import constriction
import numpy as np
from _util import KODAK, write_json

from vaerans_ecs.components import ANSBitstream, SymbolsU8
from vaerans_ecs.config import get_config
from vaerans_ecs.core import World
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.models import get_model
from vaerans_ecs.systems import _tables
from vaerans_ecs.systems.entropy import ANSDecode, ANSEncode, coder_names, empirical_entropy_bound_bytes, get_coder
from vaerans_ecs.systems.hadamard import Hadamard4
from vaerans_ecs.systems.quantize import QuantizeU8, step_for_quality
from vaerans_ecs.systems.vae import OnnxVAEEncode
from vaerans_ecs.systems.wavelet import WaveletCDF53, WaveletHaar

Bands = list[np.ndarray]


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up; caches cleared before each run."""
    _tables.clear_caches()
    fn()
    times = []
    for _ in range(repeats):
        _tables.clear_caches()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def quantize_images(paths: list[Path], model: str, quality: float) -> tuple[World, list[int], str]:
    """Spawn the images and run the front end up to QuantizeU8; returns the world and entities."""
    from PIL import Image

    spec = get_model(model)
    cfg = get_config().codec
    world = World()
    imgs = []
    for p in paths:
        with Image.open(p) as im:
            imgs.append(np.asarray(im.convert("RGB")))
    eids = world.spawn_batch_images(imgs)
    wavelet = WaveletHaar(levels=cfg.levels) if cfg.wavelet == "haar" else WaveletCDF53(levels=cfg.levels)
    step = step_for_quality(quality, spec.step_min, spec.step_max)
    (world.pipe(eids) | OnnxVAEEncode(model=spec.name) | Hadamard4() | wavelet | QuantizeU8(step=step)).run()
    return world, eids, f"{spec.name} ({wavelet.name} x{cfg.levels}, step {step:.4g})"


def entity_bands(world: World, eid: int) -> Bands:
    """The entity's symbols as ANSEncode splits them: channel-major, bands in layout order."""
    sym = world.get_component(eid, SymbolsU8)
    arr = world.view(sym.ref)
    return [np.array(arr[c, b.offset : b.offset + b.size]) for c in range(arr.shape[0]) for b in sym.bands]


def bare_models(bands: Bands) -> tuple[list[np.ndarray], list[Any]]:
    """Pre-shifted int32 symbols and one exact-histogram Categorical per non-empty band."""
    cat = constriction.stream.model.Categorical
    syms, models = [], []
    for b in bands:
        if b.size == 0:
            continue
        lo, hi = int(b.min()), int(b.max())
        counts = np.bincount(b.astype(np.int64) - lo, minlength=hi - lo + 1).astype(np.float64)
        if hi == lo:
            counts = np.array([1.0, 1e-9])
        syms.append(b.astype(np.int32) - lo)
        models.append(cat(counts / counts.sum(), perfect=False))
    return syms, models


def bare_times(all_bands: list[Bands], repeats: int) -> tuple[float, float, float]:
    """Seconds to encode / decode every image with bare AnsCoder calls (models precomputed),
    and to encode including building the models."""
    prepared = [bare_models(b) for b in all_bands]

    def enc() -> list[Any]:
        out = []
        for syms, models in prepared:
            coder = constriction.stream.stack.AnsCoder()
            for s, m in zip(reversed(syms), reversed(models), strict=True):
                coder.encode_reverse(s, m)
            out.append(coder.get_compressed())
        return out

    words = enc()

    def dec() -> None:
        for (syms, models), w in zip(prepared, words, strict=True):
            coder = constriction.stream.stack.AnsCoder(w)
            for s, m in zip(syms, models, strict=True):
                coder.decode(m, s.size)

    def enc_with_models() -> None:
        for bands in all_bands:
            syms, models = bare_models(bands)
            coder = constriction.stream.stack.AnsCoder()
            for s, m in zip(reversed(syms), reversed(models), strict=True):
                coder.encode_reverse(s, m)
            coder.get_compressed()

    return median_s(enc, repeats), median_s(dec, repeats), median_s(enc_with_models, repeats)


def run(images: int, quality: float, model: str, repeats: int, coders: list[str]) -> dict[str, Any]:
    paths = sorted(KODAK.glob("*.png"))[:images]
    world, eids, front = quantize_images(paths, model, quality)
    all_bands = [entity_bands(world, e) for e in eids]
    n = sum(b.size for bands in all_bands for b in bands)
    bound = sum(empirical_entropy_bound_bytes(bands) for bands in all_bands)
    pixels = sum(world.view(world.get_component(e, SymbolsU8).ref).shape[1] for e in eids)
    rows = []
    for name in coders:
        coder = get_coder(name)
        payloads = [coder.encode(bands) for bands in all_bands]
        sizes = [[b.size for b in bands] for bands in all_bands]
        for bands, data, sz in zip(all_bands, payloads, sizes, strict=True):
            back = coder.decode(data, sz)
            assert all(np.array_equal(x, y) for x, y in zip(back, bands, strict=True)), f"{name}: round trip failed"
        t_enc = median_s(lambda c=coder: [c.encode(b) for b in all_bands], repeats)
        t_dec = median_s(
            lambda c=coder, p=payloads, s=sizes: [c.decode(d, z) for d, z in zip(p, s, strict=True)], repeats
        )
        nbytes = sum(len(p) for p in payloads)
        rows.append(
            {
                "coder": name,
                "symbols": n,
                "bound_bytes": bound,
                "bytes": nbytes,
                "ratio": nbytes / bound if bound > 0 else float("inf"),
                "encode_msym_s": n / t_enc / 1e6,
                "decode_msym_s": n / t_dec / 1e6,
                "encode_ms": t_enc * 1e3,
                "decode_ms": t_dec * 1e3,
            }
        )
    # System (through a Pipe) vs bare constriction, same symbols, same run.
    bare_enc, bare_dec, bare_enc_models = bare_times(all_bands, repeats)
    sys_enc = median_s(lambda: (world.pipe(eids) | ANSEncode(coder="rans")).run(), repeats)
    sys_dec = median_s(lambda: (world.pipe(eids) | ANSDecode(coder="rans")).run(), repeats)
    for e, bands in zip(eids, all_bands, strict=True):  # the decoded symbols are the originals
        assert world.get_component(e, ANSBitstream).coder == "rans"
        assert all(np.array_equal(x, y) for x, y in zip(entity_bands(world, e), bands, strict=True))
    system = {
        "bare_encode_msym_s": n / bare_enc / 1e6,
        "bare_decode_msym_s": n / bare_dec / 1e6,
        "system_encode_msym_s": n / sys_enc / 1e6,
        "system_decode_msym_s": n / sys_dec / 1e6,
        "encode_ratio": bare_enc / sys_enc,
        "decode_ratio": bare_dec / sys_dec,
        "bare_encode_with_models_msym_s": n / bare_enc_models / 1e6,
        "encode_ratio_vs_bare_with_models": bare_enc_models / sys_enc,
        "goal": 0.7,
    }
    return {
        "images": [p.name for p in paths],
        "quality": quality,
        "front_end": front,
        "symbols": n,
        "latent_positions": pixels,
        "repeats": repeats,
        "python": platform.python_version(),
        "constriction": getattr(constriction, "__version__", "?"),
        "coders": rows,
        "system_vs_bare": system,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4, help="first N Kodak images (default 4)")
    ap.add_argument("--quality", type=float, default=75.0, help="codec quality 1-100 (default 75)")
    ap.add_argument("--model", default="default", help="model name or folder (default: the default model)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--coders", default=",".join(coder_names()), help="comma-separated (default: all registered)")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    if not KODAK.is_dir():
        print(f"skipped: Kodak images not found at {KODAK}")
        return 0
    try:
        res = run(args.images, args.quality, args.model, args.repeats, [c for c in args.coders.split(",") if c])
    except VaeransError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    print(
        f"{len(res['images'])} Kodak images, quality {res['quality']:g}, {res['front_end']}: "
        f"{res['symbols']} symbols, median of {res['repeats']}"
    )
    print(f"{'coder':>6} {'bound B':>10} {'bytes':>9} {'ratio':>6} {'enc Msym/s':>11} {'dec Msym/s':>11}")
    for r in res["coders"]:
        print(
            f"{r['coder']:>6} {r['bound_bytes']:>10.0f} {r['bytes']:>9} {r['ratio']:>6.3f} "
            f"{r['encode_msym_s']:>11.2f} {r['decode_msym_s']:>11.2f}"
        )
    s = res["system_vs_bare"]
    for d in ("encode", "decode"):
        ok = "ok" if s[f"{d}_ratio"] >= s["goal"] else "BELOW GOAL"
        print(
            f"ANS{d.capitalize()} system {s[f'system_{d}_msym_s']:.2f} Msym/s vs bare AnsCoder "
            f"{s[f'bare_{d}_msym_s']:.2f} Msym/s: ratio {s[f'{d}_ratio']:.2f} (goal >= {s['goal']}: {ok})"
        )
    print(
        f"(bare AnsCoder encode including building its histogram models: {s['bare_encode_with_models_msym_s']:.2f} "
        f"Msym/s; system ratio to that {s['encode_ratio_vs_bare_with_models']:.2f})"
    )
    if args.json:
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
