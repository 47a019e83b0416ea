"""Entropy stage on real quantized symbols: every registered coder, then the stage vs bare constriction.

The first ``--images`` Kodak images go through the codec's front end with the World/Pipe API
(``OnnxVAEEncode | Hadamard4 | Wavelet | QuantizeU8`` at ``--quality``); the resulting SymbolsU8
bands (channel-major, layout order: what ANSEncode codes) are then coded by each coder of
``vaerans_ecs.systems.entropy.coder_names()``. Per coder: payload bytes (tables included), the
order-0 bound (sum over bands of n*H/8), their ratio, and encode/decode throughput in Msymbols/s
(median of ``--repeats``, model caches cleared before every run, round trip checked).

Then the stage against bare constriction, all in one run on the same symbols, the timed runs
interleaved repeat by repeat (so machine noise hits every variant alike), medians reported.
``world.pipe(eids) | ANSEncode()`` / ``| ANSDecode()`` (rANS; model caches cleared before every
run, so each run pays for all its models; also reported with warm caches) against ``AnsCoder``
calls coding each band with one exact-histogram ``Categorical(perfect=False)`` over its used
range, symbols pre-shifted to int32:

``strict``
    the Categorical models already built (only ``encode_reverse``/``decode`` is timed);
``models``
    building the Categorical models from the same (precomputed) probability arrays is timed too;
``hist`` (encode only)
    what a constriction user writes end to end: min/max, ``bincount``, probabilities, models,
    symbol shift and coding, all timed.

ratio = bare seconds / stage seconds (goal >= 0.7). A breakdown of the stage's own time follows
(model choice, chunk planning, coding; decoding replayed with and without constriction)::

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
from _util import KODAK, REPO, write_json

from vaerans_ecs.components import ANSBitstream, SymbolsU8
from vaerans_ecs.config import get_config
from vaerans_ecs.core import World
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.models import get_model
from vaerans_ecs.systems.entropy import (
    ANSDecode,
    ANSEncode,
    Layout,
    RansCoder,
    bytes_to_words,
    clear_caches,
    coder_names,
    empirical_entropy_bound_bytes,
    get_coder,
)
from vaerans_ecs.systems.entropy.plan import decode_plan
from vaerans_ecs.systems.entropy.search import choose_models, encode_chunks
from vaerans_ecs.systems.hadamard import Hadamard4
from vaerans_ecs.systems.quantize import QuantizeU8, step_for_quality
from vaerans_ecs.systems.vae import OnnxVAEEncode
from vaerans_ecs.systems.wavelet import WaveletCDF53, WaveletHaar

Bands = list[np.ndarray]
GOAL = 0.7
DEFAULT_JSON = REPO / "benchmarks" / "results" / "entropy_stage.json"
_Cat = constriction.stream.model.Categorical
_Ans = constriction.stream.stack.AnsCoder


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up; caches cleared before each run."""
    clear_caches()
    fn()
    times = []
    for _ in range(repeats):
        clear_caches()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per function, timing them in turn within each repeat (after one warm-up
    each); model caches are cleared before every run, except for names ending in ``_warm``."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        clear_caches()
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            if not name.endswith("_warm"):
                clear_caches()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


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


def entity_layout(world: World, eid: int) -> Layout:
    """The layout ANSEncode hands its coder (context coders need it)."""
    sym = world.get_component(eid, SymbolsU8)
    return Layout(world.view(sym.ref).shape[0], sym.bands)


def band_probabilities(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-shifted int32 symbols and the exact histogram probabilities over the used range
    (a constant band gets a second, negligible symbol: a Categorical needs two)."""
    lo, hi = int(b.min()), int(b.max())
    counts = np.bincount(b.astype(np.int64) - lo, minlength=hi - lo + 1).astype(np.float64)
    if hi == lo:
        counts = np.array([1.0, 1e-9])
    return b.astype(np.int32) - lo, counts / counts.sum()


def bare_variants(all_bands: list[Bands]) -> dict[str, Callable[[], object]]:
    """The bare-constriction encoders/decoders (see the module docstring), over all images."""
    prepared = [[band_probabilities(b) for b in bands if b.size] for bands in all_bands]
    models = [[_Cat(p, perfect=False) for _, p in img] for img in prepared]

    def encode(img: list[tuple[np.ndarray, np.ndarray]], ms: list[Any]) -> Any:
        coder = _Ans()
        for (s, _), m in zip(reversed(img), reversed(ms), strict=True):
            coder.encode_reverse(s, m)
        return coder.get_compressed()

    words = [encode(img, ms) for img, ms in zip(prepared, models, strict=True)]

    def enc_strict() -> None:
        for img, ms in zip(prepared, models, strict=True):
            encode(img, ms)

    def enc_models() -> None:
        for img in prepared:
            encode(img, [_Cat(p, perfect=False) for _, p in img])

    def enc_hist() -> None:
        for bands in all_bands:
            img = [band_probabilities(b) for b in bands if b.size]
            encode(img, [_Cat(p, perfect=False) for _, p in img])

    def decode(img: list[tuple[np.ndarray, np.ndarray]], ms: list[Any], w: Any) -> None:
        coder = _Ans(w)
        for (s, _), m in zip(img, ms, strict=True):
            coder.decode(m, s.size)

    def dec_strict() -> None:
        for img, ms, w in zip(prepared, models, words, strict=True):
            decode(img, ms, w)

    def dec_models() -> None:
        for img, w in zip(prepared, words, strict=True):
            decode(img, [_Cat(p, perfect=False) for _, p in img], w)

    return {
        "bare_encode_strict": enc_strict,
        "bare_encode_models": enc_models,
        "bare_encode_hist": enc_hist,
        "bare_decode_strict": dec_strict,
        "bare_decode_models": dec_models,
    }


def breakdown(all_bands: list[Bands], repeats: int) -> dict[str, float]:
    """Where the stage's time goes (seconds for all images, medians, cold model caches).

    Encode: model choice (histograms and costs), the rest of chunk planning, the AnsCoder calls.
    Decode: the same constriction ``decode`` calls replayed alone, and the decoder's own Python
    and numpy work (``decode_plan`` fed the recorded symbols, no constriction).
    """
    coder = RansCoder()
    plan: Callable[[Bands], list[Any]] = encode_chunks
    chunks = [plan(b) for b in all_bands]
    records = []
    for bands in all_bands:
        words = bytes_to_words(coder.encode(bands))
        ans = _Ans(words)
        calls: list[tuple[Any, int, np.ndarray]] = []

        def rec(model: Any, amount: int, a: Any = ans, c: list[Any] = calls) -> np.ndarray:
            out = np.asarray(a.decode(model, amount), dtype=np.int32)
            c.append((model, amount, out))
            return out

        decode_plan(rec, [b.size for b in bands])
        records.append((words, [b.size for b in bands], calls))

    def constriction_only() -> None:
        for words, _, calls in records:
            ans = _Ans(words)
            for model, amount, _ in calls:
                ans.decode(model, amount)

    def python_only() -> None:
        for _, sizes, calls in records:
            it = iter(calls)
            decode_plan(lambda m, a, i=it: next(i)[2], sizes)

    t = interleaved_medians(
        {
            "encode_choose_models": lambda: [choose_models(b) for b in all_bands],
            "encode_choose_and_plan": lambda: [plan(b) for b in all_bands],
            "encode_ans_calls": lambda: [coder.chunks_to_words(c) for c in chunks],
            "decode_ans_calls": constriction_only,
            "decode_python": python_only,
        },
        repeats,
    )
    t["encode_plan"] = t.pop("encode_choose_and_plan") - t["encode_choose_models"]
    return t


def run(images: int, quality: float, model: str, repeats: int, coders: list[str]) -> dict[str, Any]:
    paths = sorted(KODAK.glob("*.png"))[:images]
    world, eids, front = quantize_images(paths, model, quality)
    all_bands = [entity_bands(world, e) for e in eids]
    layouts = [entity_layout(world, e) for e in eids]
    n = sum(b.size for bands in all_bands for b in bands)
    bound = sum(empirical_entropy_bound_bytes(bands) for bands in all_bands)
    pixels = sum(world.view(world.get_component(e, SymbolsU8).ref).shape[1] for e in eids)
    rows = []
    for name in coders:
        coder = get_coder(name)
        payloads = [coder.encode_layout(bands, lay) for bands, lay in zip(all_bands, layouts, strict=True)]
        for bands, data, lay in zip(all_bands, payloads, layouts, strict=True):
            back = coder.decode_layout(data, lay)
            assert all(np.array_equal(x, y) for x, y in zip(back, bands, strict=True)), f"{name}: round trip failed"
        t_enc = median_s(
            lambda c=coder: [c.encode_layout(b, lay) for b, lay in zip(all_bands, layouts, strict=True)], repeats
        )
        t_dec = median_s(
            lambda c=coder, p=payloads: [c.decode_layout(d, lay) for d, lay in zip(p, layouts, strict=True)], repeats
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
    # The stage (through a Pipe) vs bare constriction: same symbols, same run, interleaved.
    fns = bare_variants(all_bands)
    fns["stage_encode"] = lambda: (world.pipe(eids) | ANSEncode(coder="rans")).run()
    fns["stage_decode"] = lambda: (world.pipe(eids) | ANSDecode(coder="rans")).run()
    fns["stage_encode_warm"] = fns["stage_encode"]  # models cached from earlier runs (a long-lived process)
    fns["stage_decode_warm"] = fns["stage_decode"]
    t = interleaved_medians(fns, repeats)
    for e, bands in zip(eids, all_bands, strict=True):  # the decoded symbols are the originals
        assert world.get_component(e, ANSBitstream).coder == "rans"
        assert all(np.array_equal(x, y) for x, y in zip(entity_bands(world, e), bands, strict=True))
    ratios = {
        "encode_strict": t["bare_encode_strict"] / t["stage_encode"],
        "encode_models": t["bare_encode_models"] / t["stage_encode"],
        "encode_hist": t["bare_encode_hist"] / t["stage_encode"],
        "decode_strict": t["bare_decode_strict"] / t["stage_decode"],
        "decode_models": t["bare_decode_models"] / t["stage_decode"],
        "encode_strict_warm": t["bare_encode_strict"] / t["stage_encode_warm"],
        "decode_strict_warm": t["bare_decode_strict"] / t["stage_decode_warm"],
    }
    return {
        "images": [p.name for p in paths],
        "quality": quality,
        "front_end": front,
        "symbols": n,
        "latent_positions": pixels,
        "repeats": repeats,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "coders": rows,
        "stage_vs_bare": {
            "goal": GOAL,
            "ms": {k: v * 1e3 for k, v in t.items()},
            "msym_s": {k: n / v / 1e6 for k, v in t.items()},
            "ratio": ratios,
        },
        "breakdown_ms": {k: v * 1e3 for k, v in breakdown(all_bands, repeats).items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4, help="first N Kodak images (default 4)")
    ap.add_argument("--quality", type=float, default=75.0, help="codec quality 1-100 (default 75)")
    ap.add_argument("--model", default="default", help="model name or folder (default: the default model)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--coders", default=",".join(coder_names()), help="comma-separated (default: all registered)")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help=f"results file (default {DEFAULT_JSON}; '' for none)")
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
    s = res["stage_vs_bare"]
    ms, mss, ratio = s["ms"], s["msym_s"], s["ratio"]
    print(f"\nstage vs bare constriction AnsCoder (same symbols, interleaved, goal ratio >= {GOAL}):")
    head = ("", "baseline", "bare ms", "bare Msym/s", "stage ms", "stage Msym/s", "ratio")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (8, 9, 8, 12, 9, 13, 6), strict=True)))
    for d in ("encode", "decode"):
        for base in ("strict", "models", "hist"):
            key = f"bare_{d}_{base}"
            if key not in ms:
                continue
            r = ratio[f"{d}_{base}"]
            print(
                f"{d:>8} {base:>9} {ms[key]:>8.2f} {mss[key]:>12.2f} {ms['stage_' + d]:>9.2f} "
                f"{mss['stage_' + d]:>13.2f} {r:>6.2f}{'' if r >= GOAL else '  below goal'}"
            )
    print(
        f"with warm model caches (a long-lived process): encode {ms['stage_encode_warm']:.2f} ms, strict ratio "
        f"{ratio['encode_strict_warm']:.2f}; decode {ms['stage_decode_warm']:.2f} ms, strict ratio "
        f"{ratio['decode_strict_warm']:.2f}"
    )
    b = res["breakdown_ms"]
    print(
        f"\nstage time, ms for all images (the rest is system and payload plumbing):\n"
        f"  encode: choose models {b['encode_choose_models']:.2f} + plan chunks {b['encode_plan']:.2f}"
        f" + AnsCoder calls {b['encode_ans_calls']:.2f}\n"
        f"  decode: AnsCoder calls {b['decode_ans_calls']:.2f} + decoder Python/numpy {b['decode_python']:.2f}"
    )
    if args.json:
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
