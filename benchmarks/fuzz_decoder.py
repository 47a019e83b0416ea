"""Fuzz campaign for the stream decoder: ``decompress`` and ``inspect`` (what ``vaerans info`` runs).

Seeds are small valid streams made with the committed synthetic model of ``tests/fixtures``
(registered under the name the golden streams record), over every wavelet and coder and a few
qualities and sizes, each in the v2 layout the library writes and in the v1 layout it still reads.
Each input is one mutation of a seed (kinds and their meaning: ``tests/fixtures/streamfuzz.py``;
``*_crc`` kinds recompute the CRC so the parser behind the checksum sees forged data; the
structure-aware kinds rearrange whole stage records and sections, forge model names, sizes,
the layout byte and nested layers) and is fed to ``inspect`` and then to ``decompress`` under a
low ``[runtime] max_pixels`` (forged sizes must be refused, not honoured) and a small arena.

Outcome of each call: ``ok``, ``BitstreamError``, ``other VaeransError`` (ModelError & co.),
``BUG`` (any other exception: the decoder promises to raise only VaeransError subclasses), and
independently ``slow`` (over ``--slow`` seconds), ``alloc`` (tracemalloc peak over
``--alloc-limit-mb``; measured on every ``--trace-every``-th input) and ``warn`` (a Python
warning, e.g. numpy's RuntimeWarning on overflow, was emitted while decoding). Prints a table per mutation
kind, a reproducer for each distinct bug (``--bugs-dir`` keeps the inputs), and the time per 1k
inputs; ``--json`` writes it all::

    python benchmarks/fuzz_decoder.py [--n 100000] [--seed 0] [--json PATH] [--trace-every 10] [--kinds struct]

Exit status 1 when a bug, a slow input, an over-limit allocation or an input over 10 kB was seen.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import random
import sys
import time
import traceback
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.streamfuzz import KINDS, RAW_KINDS, STRUCT_KINDS, as_v1, random_mutation  # noqa: E402
from vaerans_ecs import api  # noqa: E402
from vaerans_ecs.config import ArenaConfig, Config, RuntimeConfig, get_config, set_config  # noqa: E402
from vaerans_ecs.errors import BitstreamError, VaeransError  # noqa: E402
from vaerans_ecs.models import register_model  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
OUTCOMES = ("ok", "BitstreamError", "other VaeransError", "BUG")


def fixture_model() -> str:
    """Register the committed synthetic model (or build one when the fixtures are absent); its name."""
    manifest = FIXTURES / "golden" / "manifest.json"
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        folder = FIXTURES / "golden" / meta["model_dir"]
        register_model(meta["model"], encoder=folder / "encoder.onnx", decoder=folder / "decoder.onnx",
                       replace_existing=True)
        return str(meta["model"])
    from tests.synthetic_vae import build_synthetic_vae  # needs the onnx package

    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "vaerans-fuzz-model"
    enc, dec = build_synthetic_vae(folder, model_name="fuzz-s8", stride=8)
    register_model("fuzz-s8", encoder=enc, decoder=dec, replace_existing=True)
    return "fuzz-s8"


def make_seeds(model: str, *, v1: bool = True) -> list[bytes]:
    """Small valid streams: 4 sizes x (every wavelet x every coder) at two qualities, v2 then (``v1``) as v1."""
    rng = np.random.default_rng(1234)
    seeds = []
    sizes = [(16, 16), (37, 23), (9, 70), (64, 48)]
    for k, (h, w) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([128 + 100 * np.sin(x / (3 + c) + k) * np.cos(y / 5 - c) for c in range(3)], axis=-1)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        for wavelet in ("cdf53", "haar", "none"):
            for coder in ("rans-ctx", "rans", "range", "zlib", "lzma"):
                for quality in (30, 90):
                    seeds.append(api.compress(img, quality, model=model, wavelet=wavelet, coder=coder))
    return seeds + [as_v1(s) for s in seeds] if v1 else seeds


def classify(fn: Any, data: bytes) -> tuple[str, str]:
    """(outcome, detail) of ``fn(data)``."""
    try:
        fn(data)
    except BitstreamError:
        return "BitstreamError", ""
    except VaeransError as exc:
        return "other VaeransError", type(exc).__name__
    except Exception as exc:  # anything else is what we hunt for
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        return "BUG", f"{type(exc).__name__} at {where}: {str(exc)[:160]}"
    return "ok", ""


def run_campaign(args: argparse.Namespace) -> dict[str, Any]:
    model = fixture_model()
    seeds = make_seeds(model, v1=not args.no_v1)
    saved = get_config()
    set_config(Config(
        arena=ArenaConfig(capacity_mb=args.arena_mb, max_capacity_mb=4 * args.arena_mb),
        runtime=RuntimeConfig(max_pixels=args.max_pixels, intra_op_threads=1),
    ))
    rng = random.Random(args.seed)
    kinds = list(STRUCT_KINDS) if args.kinds == "struct" else args.kinds.split(",") if args.kinds else list(KINDS)
    counts: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in kinds}
    bugs: dict[str, dict[str, Any]] = {}
    slow: list[dict[str, Any]] = []
    allocs: list[dict[str, Any]] = []
    peak_alloc = 0
    warned: collections.Counter[str] = collections.Counter()
    traced = 0
    max_input = 0
    big: list[dict[str, Any]] = []
    limit = args.alloc_limit_mb << 20
    seed_set = set(seeds)
    t_start = time.perf_counter()
    try:
        for i in range(args.n):
            kind = kinds[i % len(kinds)]
            data = random_mutation(rng, seeds, kind)
            c = counts[kind]
            if data in seed_set:
                c["unchanged"] += 1
                continue
            c["n"] += 1
            max_input = max(max_input, len(data))
            if len(data) >= args.max_input:
                c["big"] += 1
                big.append({"kind": kind, "bytes": len(data)})
            trace = args.trace_every > 0 and i % args.trace_every == 0
            if trace:
                tracemalloc.start()
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out_i, det_i = classify(api.inspect, data)
                out_d, det_d = classify(api.decompress, data)
            dt = time.perf_counter() - t0
            if caught:
                c["warn"] += 1
                for w in caught:
                    warned[f"{Path(w.filename).name}:{w.lineno}: {w.category.__name__}: {w.message}"] += 1
            if trace:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                traced += 1
                peak_alloc = max(peak_alloc, peak)
                if peak > limit:
                    c["alloc"] += 1
                    allocs.append({"kind": kind, "peak_mb": peak / 2**20, "hex": data.hex()})
            c["inspect " + out_i] += 1
            c[out_d] += 1
            if out_d == "ok" and kind in RAW_KINDS:
                c["raw accepted"] += 1  # a CRC collision: should never happen in practice
            if dt > args.slow:
                c["slow"] += 1
                slow.append({"kind": kind, "seconds": dt, "hex": data.hex()})
            for target, outcome, detail in (("inspect", out_i, det_i), ("decompress", out_d, det_d)):
                if outcome != "BUG":
                    continue
                key = f"{target}: {detail.split(':', 2)[0]}:{detail.split(':', 2)[1] if ':' in detail else ''}"
                entry = bugs.setdefault(key, {"target": target, "detail": detail, "kind": kind, "count": 0,
                                              "hex": data.hex()})
                entry["count"] += 1
                if len(data.hex()) < len(entry["hex"]):
                    entry["hex"] = data.hex()  # keep the smallest reproducer
            if args.progress and (i + 1) % args.progress == 0:
                el = time.perf_counter() - t_start
                print(f"  {i + 1} inputs, {el:.0f} s, {len(bugs)} distinct bugs", file=sys.stderr, flush=True)
    finally:
        set_config(saved)
    elapsed = time.perf_counter() - t_start
    return {
        "n": args.n, "seed": args.seed, "seeds": len(seeds), "max_pixels": args.max_pixels,
        "seed_versions": dict(collections.Counter(f"v{s[4]}" for s in seeds)), "max_input_bytes": max_input,
        "inputs_over_limit": big[:20], "max_input_limit": args.max_input,
        "alloc_limit_mb": args.alloc_limit_mb, "trace_every": args.trace_every, "traced": traced,
        "peak_alloc_mb": peak_alloc / 2**20, "seconds": elapsed, "seconds_per_1k": 1000 * elapsed / max(1, args.n),
        "counts": {k: dict(v) for k, v in counts.items()}, "bugs": list(bugs.values()), "slow": slow[:20],
        "alloc_over_limit": allocs[:20], "warnings": dict(warned.most_common()),
        "python": platform.python_version(), "machine": platform.machine(),
    }


def print_table(res: dict[str, Any]) -> None:
    cols = ["n", *OUTCOMES, "slow", "alloc", "big", "warn", "inspect ok", "inspect BitstreamError", "inspect BUG"]
    short = {"BitstreamError": "Bitstream", "other VaeransError": "otherVaer", "inspect ok": "insp.ok",
             "inspect BitstreamError": "insp.Bits", "inspect BUG": "insp.BUG"}
    head = f"{'kind':<18}" + "".join(f"{short.get(c, c):>10}" for c in cols)
    print(head)
    print("-" * len(head))
    total: collections.Counter[str] = collections.Counter()
    for kind, c in res["counts"].items():
        total.update(c)
        print(f"{kind:<18}" + "".join(f"{c.get(col, 0):>10}" for col in cols))
    print("-" * len(head))
    print(f"{'total':<18}" + "".join(f"{total.get(col, 0):>10}" for col in cols))
    versions = ", ".join(f"{n} {v}" for v, n in res["seed_versions"].items())
    print(f"\n{res['n']} inputs from {res['seeds']} seeds ({versions}) in {res['seconds']:.1f} s "
          f"({res['seconds_per_1k']:.2f} s per 1k inputs; 100k would take {res['seconds_per_1k'] * 100 / 60:.1f} min)")
    print(f"tracemalloc: {res['traced']} inputs traced, peak {res['peak_alloc_mb']:.2f} MiB "
          f"(limit {res['alloc_limit_mb']} MiB, max_pixels={res['max_pixels']})")
    print(f"largest input {res['max_input_bytes']} bytes (limit {res['max_input_limit']})")
    if res["bugs"]:
        print(f"\n{len(res['bugs'])} DISTINCT BUGS (other exceptions):")
        for b in res["bugs"]:
            print(f"  [{b['count']}x, {b['kind']}] {b['target']}: {b['detail']}")
            print(f"      reproducer: vaerans_ecs.api.{b['target']}(bytes.fromhex('{b['hex']}'))")
    else:
        print("no bugs: only VaeransError subclasses escaped")
    if res["warnings"]:
        print("\nwarnings emitted while decoding forged streams (inputs still refused or decoded):")
        for text, count in list(res["warnings"].items())[:8]:
            print(f"  {count:>7}x {text}")
    for s in res["slow"][:5]:
        print(f"slow: {s['seconds']:.2f} s [{s['kind']}] {s['hex'][:120]}...")
    for a in res["alloc_over_limit"][:5]:
        print(f"alloc: {a['peak_mb']:.1f} MiB [{a['kind']}] {a['hex'][:120]}...")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="number of inputs (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--kinds", default="", help="comma-separated mutation kinds, or 'struct' for the "
                   f"structure-aware ones (default all: {','.join(KINDS)})")
    p.add_argument("--no-v1", action="store_true", help="v2 seeds only (default: v2 seeds and the same as v1)")
    p.add_argument("--max-input", type=int, default=10_000, help="inputs must be smaller (bytes, default 10000)")
    p.add_argument("--max-pixels", type=int, default=1 << 16, help="[runtime] max_pixels (default 65536)")
    p.add_argument("--arena-mb", type=int, default=4, help="[arena] capacity_mb (default 4)")
    p.add_argument("--alloc-limit-mb", type=int, default=96,
                   help="tracemalloc peak limit (default 96: the lzma baseline alone allocates a 64 MiB dictionary "
                   "per decode, its encoder using preset 9)")
    p.add_argument("--trace-every", type=int, default=10, help="trace allocations of every k-th input (0: none)")
    p.add_argument("--slow", type=float, default=1.0, help="seconds above which an input counts as slow")
    p.add_argument("--progress", type=int, default=0, help="print progress every N inputs")
    p.add_argument("--bugs-dir", type=Path, help="write each distinct bug's input to this folder")
    args = p.parse_args(argv)
    res = run_campaign(args)
    print_table(res)
    if args.bugs_dir and res["bugs"]:
        args.bugs_dir.mkdir(parents=True, exist_ok=True)
        for b in res["bugs"]:
            raw = bytes.fromhex(b["hex"])
            (args.bugs_dir / f"{hashlib.sha256(raw).hexdigest()[:12]}.vae").write_bytes(raw)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
        print(f"wrote {args.json}")
    bad = res["bugs"] or res["slow"] or res["alloc_over_limit"] or res["inputs_over_limit"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
