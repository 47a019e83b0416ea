"""Pipe overhead: 6 systems over 64 entities through a Pipe vs the same functions called directly.

Two workloads, measured in the same run: empty systems (pure overhead, reported per system call)
and systems doing ~1 ms of numpy work per call (overhead as a ratio; goal <= 3 %).

    python benchmarks/bench_pipe_overhead.py [--repeats 30] [--json benchmarks/results/pipe_overhead.json]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from _util import paired_medians, write_json

from vaerans_ecs.components import Component
from vaerans_ecs.core import System, World

N_ENTITIES, N_SYSTEMS = 64, 6


class Tick(Component):
    """A counter the benchmark systems bump."""

    kind: ClassVar[str] = "Tick"
    value: int


def work(block: np.ndarray, ms_work: bool) -> None:
    """The per-call numpy work shared by both variants (~1 ms when ms_work)."""
    if ms_work:
        np.sqrt(block, out=block)
        np.add(block, 1.0, out=block)


class Step(System):
    """Bumps every entity's Tick and optionally does ~1 ms of numpy work per call."""

    name = "bench.step"

    def __init__(self, block: np.ndarray, ms_work: bool) -> None:
        self.block, self.ms_work = block, ms_work

    def required_components(self) -> tuple[type[Component], ...]:
        return (Tick,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Tick,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        work(self.block, self.ms_work)
        for e in eids:
            world.add_component(e, Tick(value=world.get_component(e, Tick).value + 1))


def direct(world: World, eids: list[int], block: np.ndarray, ms_work: bool) -> None:
    """The same chain as plain function calls (no Pipe, no checks, no history)."""
    for _ in range(N_SYSTEMS):
        work(block, ms_work)
        for e in eids:
            world.add_component(e, Tick(value=world.get_component(e, Tick).value + 1))


def measure(ms_work: bool, repeats: int) -> dict[str, float]:
    world = World(arena_bytes=1 << 20)
    eids = [world.spawn(Tick(value=0)) for _ in range(N_ENTITIES)]
    block = np.random.default_rng(0).random(600_000) + 1.0
    systems = [Step(block, ms_work) for _ in range(N_SYSTEMS)]

    def via_pipe() -> None:
        pipe = world.pipe(eids)
        for s in systems:
            pipe = pipe | s
        pipe.run()

    t_pipe, t_direct = paired_medians(via_pipe, lambda: direct(world, eids, block, ms_work), repeats, warmup=3)
    return {
        "pipe_ms": t_pipe * 1e3,
        "direct_ms": t_direct * 1e3,
        "ratio": t_pipe / t_direct,
        "overhead_us_per_system_call": (t_pipe - t_direct) / N_SYSTEMS * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default="benchmarks/results/pipe_overhead.json")
    args = parser.parse_args()
    results = {"empty": measure(False, args.repeats), "1ms_work": measure(True, args.repeats)}
    print(f"{N_SYSTEMS} systems x {N_ENTITIES} entities, median of {args.repeats}")
    print(f"{'workload':<10} {'pipe ms':>9} {'direct ms':>10} {'ratio':>7} {'overhead/system call':>22}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['pipe_ms']:9.3f} {r['direct_ms']:10.3f} {r['ratio']:7.3f} "
            f"{r['overhead_us_per_system_call']:19.1f} us"
        )
    write_json(args.json, {"entities": N_ENTITIES, "systems": N_SYSTEMS, "repeats": args.repeats, **results})


if __name__ == "__main__":
    main()
