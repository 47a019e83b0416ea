"""Cold start: ``import vaerans_ecs`` and one CLI compress, in fresh processes, for one or two source trees.

Each measurement is a new interpreter (so imports are really paid), alternating between the trees
so that a machine getting busier affects both alike; medians are reported, and the ratio
second/first tree when two are given. The CLI compress is ``python -m vaerans_ecs compress`` of a
768x512 PNG (a Kodak image when ``../shared/data/kodak`` exists, else a generated one) at quality
60 with the named model, so both trees run the same VAE pipeline::

    python benchmarks/bench_import.py --trees /tmp/base,. [--runs 7] [--json benchmarks/results/import.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _util import KODAK, write_json
from PIL import Image


def _timed(cmd: list[str], tree: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", default=".", help="comma-separated source trees (repository roots)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default="vae-f4c4-xe")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    trees = [Path(t) for t in args.trees.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = KODAK / "kodim01.png"
        if src.is_file():
            Image.open(src).save(work / "in.png")
        else:
            y, x = np.mgrid[0:512, 0:768]
            Image.fromarray(np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8)).save(work / "in.png")
        commands = {
            "import": [sys.executable, "-c", "import vaerans_ecs"],
            "cli compress": [sys.executable, "-m", "vaerans_ecs", "compress", "in.png", "-o", "out.vae", "--force",
                             "-q", "60", "--model", args.model],
        }
        times: dict[str, dict[str, list[float]]] = {name: {str(t): [] for t in trees} for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                for tree in trees:
                    times[name][str(tree)].append(_timed(cmd, tree, work))
    result: dict[str, object] = {"runs": args.runs, "trees": [str(t) for t in trees], "medians": {}}
    medians: dict[str, dict[str, float]] = {}
    for name, per_tree in times.items():
        medians[name] = {tree: statistics.median(v) for tree, v in per_tree.items()}
        line = ", ".join(f"{tree}: {1e3 * m:.0f} ms" for tree, m in medians[name].items())
        if len(trees) == 2:
            a, b = (medians[name][str(t)] for t in trees)
            line += f"  (ratio {b / a:.2f})"
        print(f"{name:13s} {line}")
    result["medians"] = medians
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
