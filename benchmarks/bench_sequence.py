"""Sequence coding speed, rate and memory on a real clip (default foreman CIF, 48 frames).

Encodes the clip with :class:`vaerans_ecs.sequence.SequenceWriter` and decodes it with
:class:`~vaerans_ecs.sequence.SequenceReader`, ``--repeats`` times, timing every frame in wall
time and in this process's CPU time (the machine is shared: CPU time is what the frame costs
when the cores are not contended, wall time what it took now). Reports frames/s from the median
frame times (all frames, and inter frames only), per-stage milliseconds per frame, the rate and
PSNR, and the load average before and after. ``--memory N1,N2`` also compares the peak traced
memory (tracemalloc) of encoding and decoding N1 and N2 frames (the clip looped back and forth)::

    python benchmarks/bench_sequence.py [--clip foreman_cif] [--frames 48] [--quality 75] [--repeats 3]
        [--memory 30,300] [--json benchmarks/results/sequence.json]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from _util import REPO, write_json
from numpy.typing import NDArray

from vaerans_ecs.sequence import SequenceReader, SequenceWriter
from vaerans_ecs.sequence.frames import open_frames

VIDEO = REPO.parent / "shared" / "data" / "video"
U8 = NDArray[np.uint8]


def load(clip: str, n: int) -> list[U8]:
    src = open_frames(VIDEO / clip)
    return [f for f, _ in zip(src, range(n), strict=False)]


def looped(frames: list[U8], n: int) -> Iterator[U8]:
    """``n`` frames: the clip forwards, backwards, forwards... (no cut, steady motion)."""
    period = 2 * len(frames) - 2
    for k in range(n):
        i = k % period
        yield frames[i if i < len(frames) else period - i]


def encode(frames: list[U8], quality: float, gop: int) -> tuple[bytes, list[tuple[float, float]], SequenceWriter]:
    times = []
    writer = SequenceWriter(quality=quality, gop=gop)
    for frame in frames:
        w0, c0 = time.perf_counter(), time.process_time()
        writer.write(frame)
        times.append((time.perf_counter() - w0, time.process_time() - c0))
    writer.close()
    return writer.getvalue(), times, writer


def decode(data: bytes) -> tuple[list[U8], list[tuple[float, float]], SequenceReader]:
    reader = SequenceReader(data)
    frames, times = [], []
    it = iter(reader)
    while True:
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            frame = next(it)
        except StopIteration:
            break
        times.append((time.perf_counter() - w0, time.process_time() - c0))
        frames.append(frame)
    return frames, times, reader


def fps(runs: list[list[float]]) -> float:
    """Frames per second of the median run (frames / that run's total seconds).

    Per-frame medians would mislead: with B-frames a write() that only buffers a frame costs
    nothing and the next one codes two, and the reader decodes an anchor before the B-frame
    it shows first.
    """
    return statistics.median(len(r) / sum(r) for r in runs)


def memory(frames: list[U8], counts: list[int], quality: float) -> dict[str, dict[int, int]]:
    class Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            return len(b)

    out: dict[str, dict[int, int]] = {"encode": {}, "decode": {}}
    streams = {}
    for n in counts:  # untraced warm-up (caches fill), keeping the streams for decoding
        buf = io.BytesIO()
        with SequenceWriter(buf, quality=quality, gop=1 << 20) as w:
            for f in looped(frames, n):
                w.write(f)
        streams[n] = buf.getvalue()
    for n in counts:
        tracemalloc.start()
        with SequenceWriter(Sink(), quality=quality, gop=1 << 20) as w:
            for f in looped(frames, n):
                w.write(f)
        out["encode"][n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        path = Path(f"/tmp/bench_sequence_{os.getpid()}_{n}.vaes")
        path.write_bytes(streams[n])
        tracemalloc.start()
        for _ in SequenceReader(path):
            pass
        out["decode"][n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        path.unlink()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", default="foreman_cif")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--quality", type=float, default=75.0)
    p.add_argument("--gop", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory", default=None, help="N1,N2: compare peak memory for N1 and N2 frames")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not (VIDEO / args.clip).exists():
        print(f"skipped: {VIDEO / args.clip} is absent")
        return 0
    frames = load(args.clip, args.frames)
    h, w = frames[0].shape[:2]
    load_before = os.getloadavg()
    encode(frames[:3], args.quality, args.gop)  # warm-up: model sessions, caches
    enc_t: list[list[tuple[float, float]]] = []
    dec_t: list[list[tuple[float, float]]] = []
    stages: dict[str, float] = {}
    dstages: dict[str, float] = {}
    for _ in range(args.repeats):
        data, t, writer = encode(frames, args.quality, args.gop)
        out, td, reader = decode(data)
        enc_t.append(t)
        dec_t.append(td)
        for k, v in writer.timings.items():
            stages[k] = stages.get(k, 0.0) + v
        for k, v in reader.timings.items():
            dstages[k] = dstages.get(k, 0.0) + v
    keys = set(writer.keyframes)
    n_all = args.repeats * len(frames)
    psnr = statistics.fmean(10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2))
                            for a, b in zip(frames, out, strict=True))
    result = {
        "clip": args.clip, "frames": len(frames), "size": [w, h], "quality": args.quality,
        "bpp": len(data) * 8 / (len(frames) * h * w), "psnr": psnr, "keyframes": sorted(keys),
        "encode_fps_wall": fps([[t[0] for t in run] for run in enc_t]),
        "encode_fps_cpu": fps([[t[1] for t in run] for run in enc_t]),
        "decode_fps_wall": fps([[t[0] for t in run] for run in dec_t]),
        "decode_fps_cpu": fps([[t[1] for t in run] for run in dec_t]),
        # without the keyframe (frame 0: the image codec, then the first anchor)
        "inter_encode_fps_cpu": fps([[t[1] for t in run[1:]] for run in enc_t]),
        "inter_decode_fps_cpu": fps([[t[1] for t in run[1:]] for run in dec_t]),
        "encode_stage_ms": {k: 1000 * v / n_all for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
        "decode_stage_ms": {k: 1000 * v / n_all for k, v in sorted(dstages.items(), key=lambda kv: -kv[1])},
        "load_before": load_before, "load_after": os.getloadavg(), "cpus": os.cpu_count(),
    }
    print(f"{args.clip} {w}x{h}, {len(frames)} frames, quality {args.quality:g}: {result['bpp']:.4f} bpp, "
          f"{psnr:.2f} dB, keyframes {sorted(keys)}")
    print(f"encode: {result['encode_fps_wall']:.1f} frames/s wall, {result['encode_fps_cpu']:.1f} CPU "
          f"(inter frames {result['inter_encode_fps_cpu']:.1f} CPU)")
    print(f"decode: {result['decode_fps_wall']:.1f} frames/s wall, {result['decode_fps_cpu']:.1f} CPU "
          f"(inter frames {result['inter_decode_fps_cpu']:.1f} CPU)")
    print("encode ms/frame by stage:", {k: round(v, 1) for k, v in result["encode_stage_ms"].items()})
    print("decode ms/frame by stage:", {k: round(v, 1) for k, v in result["decode_stage_ms"].items()})
    print(f"load average before {load_before}, after {result['load_after']} ({os.cpu_count()} CPUs)")
    if args.memory:
        counts = [int(v) for v in args.memory.split(",")]
        mem = memory(frames, counts, args.quality)
        result["memory_peak_bytes"] = mem
        for what, peaks in mem.items():
            base = peaks[counts[0]]
            print(f"{what} peak traced memory: " + ", ".join(
                f"{n} frames {v / 2**20:.1f} MiB ({v / base - 1:+.1%})" for n, v in peaks.items()))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
