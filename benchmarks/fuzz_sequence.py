"""Fuzz campaign for the sequence decoder: decompress_sequence, decompress_frame and inspect_sequence.

Seeds are small valid sequence streams (lossy with image keyframes and scene-cut GOPs, lossless,
near-lossless, transform-coded intra keyframes) made here from synthetic moving frames. Each
input is one mutation of a seed (``tests/sequence/mutate.py``: raw edits the checksums must catch,
and ``*_crc`` edits with every checksum and length recomputed so the parsers and payload decoders
behind them see forged data: frame payloads, the header, the index, dropped, repeated, swapped
and re-flagged frames) and is read by every public path under a low ``max_pixels``. Outcomes:
``ok``, ``VaeransError`` (expected), ``BUG`` (anything else), ``slow`` (over ``--slow`` s) and the
peak traced memory (checked every ``--trace-every``-th input against ``--alloc-limit-mb``)::

    python benchmarks/fuzz_sequence.py [--n 2000] [--seed 0] [--json PATH]

Exit status 1 when a bug, a slow input or an over-limit allocation was seen.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import sys
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _util import write_json  # noqa: E402

from tests.sequence.conftest import moving_frames  # noqa: E402
from tests.sequence.mutate import KINDS, mutate  # noqa: E402
from vaerans_ecs.config import ArenaConfig, Config, RuntimeConfig  # noqa: E402
from vaerans_ecs.errors import VaeransError  # noqa: E402
from vaerans_ecs.sequence import compress_sequence, decompress_frame, decompress_sequence, inspect_sequence  # noqa: E402

CONFIG = Config(runtime=RuntimeConfig(max_pixels=64 * 64), arena=ArenaConfig(capacity_mb=4, max_capacity_mb=64))


def seeds() -> list[bytes]:
    frames = moving_frames(6, 24, 32, step=(1, 2), cut_at=4, seed=21)
    return [
        compress_sequence(frames, quality=50, gop=3),
        compress_sequence(frames[:3], lossless=True),
        compress_sequence(frames[:3], max_error=2),
        compress_sequence(frames[:4], quality=70, keyframes="intra"),
    ]


def run_one(data: bytes) -> str:
    """Every reading path on one input; the worst outcome."""
    outcome = "ok"
    for call in (lambda: sum(1 for _ in decompress_sequence(data, config=CONFIG)),
                 lambda: inspect_sequence(data, config=CONFIG),
                 lambda: decompress_frame(data, 3, config=CONFIG)):
        try:
            call()
        except VaeransError:
            outcome = "VaeransError" if outcome == "ok" else outcome
        except Exception:
            return "BUG:" + traceback.format_exc(limit=6)
    return outcome


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slow", type=float, default=2.0, help="seconds over which an input counts as slow")
    p.add_argument("--trace-every", type=int, default=10)
    p.add_argument("--alloc-limit-mb", type=float, default=64.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rng = random.Random(args.seed)
    pool = seeds()
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    bugs: dict[str, str] = {}
    slow = over = 0
    peak_max = 0
    t0 = time.perf_counter()
    for i in range(args.n):
        kind, data = mutate(rng.choice(pool), rng, rng.choice(KINDS))
        trace = args.trace_every and i % args.trace_every == 0
        if trace:
            tracemalloc.start()
        start = time.perf_counter()
        outcome = run_one(data)
        seconds = time.perf_counter() - start
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            peak_max = max(peak_max, peak)
            over += peak > args.alloc_limit_mb * 2**20
        slow += seconds > args.slow
        if outcome.startswith("BUG:"):
            key = outcome.strip().splitlines()[-1]
            bugs.setdefault(key, outcome)
            outcome = "BUG"
        table[kind][outcome] += 1
    elapsed = time.perf_counter() - t0
    print(f"{'kind':<22}{'ok':>8}{'VaeransError':>14}{'BUG':>6}")
    for kind in KINDS:
        c = table.get(kind, collections.Counter())
        print(f"{kind:<22}{c['ok']:>8}{c['VaeransError']:>14}{c['BUG']:>6}")
    total_bugs = sum(c["BUG"] for c in table.values())
    print(f"{args.n} inputs: {total_bugs} bugs ({len(bugs)} distinct), {slow} slow (> {args.slow} s), "
          f"{over} over {args.alloc_limit_mb:g} MiB (peak {peak_max / 2**20:.1f} MiB), "
          f"{elapsed / args.n * 1000:.1f} ms per input")
    for text in bugs.values():
        print(text)
    if args.json:
        result: dict[str, Any] = {"n": args.n, "seed": args.seed, "bugs": list(bugs.values()), "slow": slow,
                                  "over_limit": over, "peak_mib": peak_max / 2**20,
                                  "table": {k: dict(v) for k, v in table.items()}, "seconds": elapsed}
        write_json(args.json, result)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 1 if total_bugs or slow or over else 0


if __name__ == "__main__":
    sys.exit(main())
