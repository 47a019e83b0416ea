"""Batch-job scaling on the Kodak set: the same job with 1 and 2 local workers, interleaved repeats.

    python benchmarks/bench_batch_workers.py [--data ../shared/data/kodak] [--workers 1 2] [--repeats 3]
                                             [--quality 40] [--model default] [--threads 0] [--decompress]
                                             [--limit N] [--max-other 0.05] [--retries 2] [--wait-quiet 30]
                                             [--json benchmarks/results/batch_workers.json]

Every run is ``load_job`` + ``run_job`` of a TOML job (what ``vaerans batch JOB.toml`` does, minus
the progress bar) in a fresh Python process, so each run pays the real start-up: fork server,
worker imports, onnxruntime session creation. Outputs go to a temporary folder, never the repo.
Runs are interleaved (1, 2, 2, 1, 1, 2, ...) so that drifts of the machine hit both worker counts.

Per worker count it reports the median of:

* ``wall``: the job's wall time (``run_job`` call to return), and images/s = files / wall;
* ``steady``: images/s once every worker is busy, from the completion times of the files
  (``on_progress`` timestamps): ``(N - w) / (t_N - t_w)`` with ``w`` workers, which leaves out
  pool start-up, session creation and the first file of each worker;
* ``file_s``: median seconds a worker spends on one file (decode PNG + codec), i.e. latency;
* ``cores``: cores busy during the job (from ``/proc/stat``, whole machine, niced time left out;
  Linux only);
* ``other``: the largest share of the machine that processes outside the benchmark, at nice <= 0,
  took during a run (other jobs on a shared machine; niced ones are counted apart, ``niced``).
  A run above ``--max-other`` (5 %) is done again, up to ``--retries`` times; the JSON counts the
  runs that stayed disturbed (``disturbed``). Before each run the script waits (``--wait-quiet``
  seconds at most) for the other processes to calm down.

and the ratios w-worker / 1-worker of both throughputs. ``--threads 0`` (default) lets the job split
the cores (``max(1, cores // workers)`` onnxruntime intra-op threads per worker); ``--threads N``
sets ``[runtime] intra_op_threads = N`` for every run. ``--decompress`` also times a decompress job
(``.vae`` -> PNG) on streams made once, untimed, from the same images.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import KODAK, write_json


def _cpu_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine, or None where there is no /proc/stat.

    Time of niced processes counts as idle (a background job at nice 19 is meant to use only idle
    cycles; the ``niced`` share in the JSON says whether it did).
    """
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[1] + fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _cpu_ticks_by_pid() -> dict[int, tuple[int, int, int]]:
    """``{pid: (ppid, utime + stime ticks, nice)}`` of every process (empty where there is no /proc)."""
    out: dict[int, tuple[int, int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[16]))
    return out


def _foreign_cpu_s(
    before: dict[int, tuple[int, int, int]], after: dict[int, tuple[int, int, int]], *, niced: bool = False
) -> float:
    """CPU seconds used between two snapshots by processes that are not this one or its descendants.

    Other people's jobs on a shared machine distort a scaling measurement; runs that have much of
    this are flagged. ``niced=False`` counts processes at nice <= 0, ``niced=True`` the others
    (a background job at nice 19 is meant to take only idle cycles). Processes that start and end
    between the snapshots are not seen.
    """
    ours = {os.getpid()}
    for snap in (before, after):
        grew = True
        while grew:
            new = {pid for pid, (ppid, _, _) in snap.items() if ppid in ours and pid not in ours}
            ours |= new
            grew = bool(new)
    ticks = sum(
        t - before.get(pid, (0, 0, 0))[1]
        for pid, (_, t, nice) in after.items()
        if pid not in ours and (nice > 0) == niced
    )
    return max(0, ticks) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, share: float) -> None:
    """Wait (``limit_s`` at most) until other processes take under ``share`` of the machine for 2 s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = _cpu_ticks_by_pid()
        if not before:
            return
        time.sleep(2.0)
        if _foreign_cpu_s(before, _cpu_ticks_by_pid()) / (2.0 * (os.cpu_count() or 1)) < share:
            return


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One job run, in this (fresh) process: timings of the job and of each file."""
    from vaerans_ecs.batch import Progress, load_job, run_job

    job, cfg = load_job(spec["job_file"])
    stamps: list[float] = []
    done = 0

    def on_progress(p: Progress) -> None:
        nonlocal done
        if p.done > done:  # one stamp per finished file (the first call reports the plan)
            stamps.extend([time.perf_counter()] * (p.done - done))
            done = p.done

    procs0 = _cpu_ticks_by_pid()
    cpu0 = _cpu_busy()
    t0 = time.perf_counter()
    report = run_job(job, config=cfg, on_progress=on_progress, restart=True)
    wall = time.perf_counter() - t0
    cpu1 = _cpu_busy()
    procs1 = _cpu_ticks_by_pid()
    cores = None
    if cpu0 is not None and cpu1 is not None and cpu1[1] > cpu0[1]:
        cores = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1]) * (os.cpu_count() or 1)
    return {
        "wall": wall,
        "done": [s - t0 for s in stamps],
        "file_seconds": [f.seconds for f in report.files if f.status == "ok" and f.seconds is not None],
        "ok": report.ok,
        "failed": report.failed,
        "threads_per_worker": report.threads_per_worker,
        "cores_busy": cores,
        "foreign_cpu_s": _foreign_cpu_s(procs0, procs1) if procs0 else None,
        "niced_cpu_s": _foreign_cpu_s(procs0, procs1, niced=True) if procs0 else None,
    }


def run_child(job_file: Path) -> dict[str, Any]:
    """Run :func:`child` in a new interpreter and return its result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps({"job_file": str(job_file)})],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def write_job(
    folder: Path, name: str, inputs: list[str], out: Path, workers: int, args: argparse.Namespace, operation: str
) -> Path:
    """A TOML job file (plus ``[runtime]`` when threads are forced)."""
    lines = [
        "[job]",
        f"inputs = {json.dumps(inputs)}",
        f"output_dir = {json.dumps(str(out))}",
        f'operation = "{operation}"',
        f"workers = {workers}",
        'executor = "local"',
        "overwrite = true",
    ]
    if operation != "decompress":
        lines += [f"quality = {args.quality}", f"model = {json.dumps(args.model)}"]
    if args.threads:
        lines += ["", "[runtime]", f"intra_op_threads = {args.threads}"]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def steady_rate(done: list[float], workers: int) -> float | None:
    """Files/s between the moment every worker has finished one file and the end of the job."""
    t = sorted(done)
    w = min(workers, len(t))
    if len(t) - w < 1 or t[-1] <= t[w - 1]:
        return None
    return (len(t) - w) / (t[-1] - t[w - 1])


def summarize(runs: list[dict[str, Any]], workers: int, n: int) -> dict[str, Any]:
    """Medians over the runs of one worker count (see the module docstring for each field)."""
    walls = [r["wall"] for r in runs]
    steadies = [s for s in (steady_rate(r["done"], workers) for r in runs) if s is not None]
    cores = [r["cores_busy"] for r in runs if r["cores_busy"] is not None]
    foreign = [foreign_share(r) for r in runs]
    wall = statistics.median(walls)
    return {
        "workers": workers,
        "threads_per_worker": runs[0]["threads_per_worker"],
        "runs": len(runs),
        "wall_s": wall,
        "wall_s_all": walls,
        "images_per_s": n / wall,
        "steady_images_per_s": statistics.median(steadies) if steadies else None,
        "first_file_s": statistics.median(sorted(r["done"])[0] for r in runs),
        "file_s": statistics.median(s for r in runs for s in r["file_seconds"]),
        "cores_busy": statistics.median(cores) if cores else None,
        "foreign_cpu_frac_max": max(foreign) if foreign else None,
        "niced_cpu_frac_max": max(foreign_share(r, "niced_cpu_s") for r in runs),
    }


def foreign_share(res: dict[str, Any], key: str = "foreign_cpu_s") -> float:
    """Share of the machine that processes outside the benchmark took during a run (0 where unknown)."""
    other = res.get(key)
    return float(other) / (res["wall"] * (os.cpu_count() or 1)) if other else 0.0


def bench(operation: str, inputs: list[str], n: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved runs of one job with every worker count; medians and ratios to the first count.

    A run during which other processes took more than ``--max-other`` of the machine is done again
    (``--retries`` times at most, then kept and counted in ``disturbed``).
    """
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    disturbed = dict.fromkeys(args.workers, 0)
    jobs = {
        w: write_job(tmp, f"{operation}-{w}", inputs, tmp / f"out-{operation}-{w}", w, args, operation)
        for w in args.workers
    }
    for rep in range(args.repeats):
        order = args.workers if rep % 2 == 0 else list(reversed(args.workers))
        for w in order:
            for attempt in range(args.retries + 1):
                wait_quiet(args.wait_quiet, args.max_other)
                res = run_child(jobs[w])
                if res["ok"] != n or res["failed"]:
                    raise RuntimeError(f"{operation} job with {w} workers: {res['ok']}/{n} ok, {res['failed']} failed")
                share = foreign_share(res)
                note = f", other processes took {share:.0%} of the machine" if share >= 0.005 else ""
                print(f"  {operation} rep {rep + 1} workers={w}: {res['wall']:.2f} s{note}", flush=True)
                if share <= args.max_other:
                    break
                if attempt == args.retries:
                    disturbed[w] += 1
                else:
                    print("    (disturbed: run again)", flush=True)
            runs[w].append(res)
    rows = [{**summarize(runs[w], w, n), "disturbed": disturbed[w]} for w in args.workers]
    base = rows[0]
    for row in rows:
        row["ratio_images_per_s"] = row["images_per_s"] / base["images_per_s"]
        if row["steady_images_per_s"] and base["steady_images_per_s"]:
            row["ratio_steady"] = row["steady_images_per_s"] / base["steady_images_per_s"]
        else:
            row["ratio_steady"] = None
    return {"operation": operation, "rows": rows}


def print_table(result: dict[str, Any], n: int) -> None:
    """Medians per worker count; ``other``: worst share of the machine that other processes took."""
    print(f"\n{result['operation']} ({n} images)")
    print(
        f"{'workers':>7} {'thr/w':>5} {'wall s':>7} {'img/s':>6} {'steady':>7} {'1st s':>6} "
        f"{'file s':>7} {'cores':>5} {'other':>5} {'ratio':>6} {'ratio ss':>8}"
    )
    for r in result["rows"]:
        steady = f"{r['steady_images_per_s']:.2f}" if r["steady_images_per_s"] else "-"
        cores = f"{r['cores_busy']:.2f}" if r["cores_busy"] is not None else "-"
        rss = f"{r['ratio_steady']:.2f}x" if r["ratio_steady"] else "-"
        other = f"{r['foreign_cpu_frac_max']:.0%}" if r["foreign_cpu_frac_max"] is not None else "-"
        print(
            f"{r['workers']:>7} {r['threads_per_worker']:>5} {r['wall_s']:>7.2f} {r['images_per_s']:>6.2f} "
            f"{steady:>7} {r['first_file_s']:>6.2f} {r['file_s']:>7.3f} {cores:>5} {other:>5} "
            f"{r['ratio_images_per_s']:>5.2f}x {rss:>8}"
        )
        if r["disturbed"]:
            print(f"        ({r['disturbed']} run(s) with {r['workers']} workers stayed disturbed by other processes)")
    niced = max(r["niced_cpu_frac_max"] for r in result["rows"])
    if niced > 0.1:
        print(
            f"warning: niced background processes took up to {niced:.0%} of the machine during a run. With the "
            "kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled = 1) nice only ranks "
            "processes of one session, so a niced job of another session still gets its full share. As root, "
            "run this script in its own session ranked above it, e.g.\n"
            "    setsid sh -c 'echo -10 > /proc/self/autogroup; exec python benchmarks/bench_batch_workers.py'"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=KODAK)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality", type=float, default=40)
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=0, help="[runtime] intra_op_threads (0: the job splits cores)")
    parser.add_argument("--decompress", action="store_true", help="also time a decompress job")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument(
        "--max-other", type=float, default=0.05, help="redo a run when other processes took more of the machine"
    )
    parser.add_argument("--retries", type=int, default=2, help="redos of a disturbed run at most")
    parser.add_argument(
        "--wait-quiet", type=float, default=30.0, help="seconds to wait at most for a quiet machine before a run"
    )
    parser.add_argument("--json", default="benchmarks/results/batch_workers.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    files = sorted(args.data.glob("*.png"))[: args.limit or None]
    if not files:
        print(f"skipped: no PNG images in {args.data} (the Kodak set lives in ../shared/data/kodak)")
        return 0
    n = len(files)
    print(f"{n} images from {args.data}, workers {args.workers}, {args.repeats} repeats, {os.cpu_count()} CPUs")
    results = []
    with tempfile.TemporaryDirectory(prefix="vaerans-bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        inputs = [str(f.resolve()) for f in files]
        results.append(bench("compress", inputs, n, tmp, args))
        if args.decompress:
            streams = tmp / "streams"
            make = write_job(tmp, "make-streams", inputs, streams, max(args.workers), args, "compress")
            run_child(make)
            vae = sorted(str(p) for p in streams.glob("*.vae"))
            results.append(bench("decompress", vae, len(vae), tmp, args))
    for res in results:
        print_table(res, n)
    write_json(
        args.json,
        {
            "data": str(args.data),
            "images": n,
            "cpus": os.cpu_count(),
            "repeats": args.repeats,
            "quality": args.quality,
            "model": args.model,
            "threads": args.threads,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
