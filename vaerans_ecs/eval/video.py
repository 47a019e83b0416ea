"""``vaerans eval --video DIR``: sequence coding against all-intra coding and real video codecs.

Every clip (a folder of frames, or a video file) is coded at every setting of every codec:

``vaerans-seq``
    :func:`vaerans_ecs.sequence.compress_sequence` at ``quality`` (options: ``:gop=N``,
    ``:model=M``, ``:keyframes=intra``), decoded with :func:`~vaerans_ecs.sequence.decompress_sequence`;
``vaerans``
    all-intra: :func:`vaerans_ecs.compress` of every frame at the same ``quality``;
``x264`` / ``x265`` / ``svtav1``
    FFmpeg's encoders through PyAV, 4:2:0, preset medium (x264, x265) or 8 (SVT-AV1), one CRF
    per setting (``:preset=P`` overrides), decoded by FFmpeg and converted back to RGB.

Quality is the mean over frames of the RGB PSNR; rate is the bits of the whole stream per pixel
per frame. ``summary.md`` holds the points, the BD-rate (PSNR) of every codec against all-intra
``vaerans`` and against ``x264`` per clip and averaged, and encode / decode frames per second;
``results.json`` and ``results.csv`` hold every point; ``rd_<clip>.png`` plots each clip.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval.bdrate import bd_rate

__all__ = ["DEFAULT_GRIDS", "VIDEO_CODECS", "Clip", "Point", "load_clips", "main", "psnr", "run_video_eval"]

U8 = NDArray[np.uint8]
#: Settings swept per codec family (quality for ours, CRF for the others).
DEFAULT_GRIDS: dict[str, list[float]] = {
    "vaerans-seq": [20, 40, 60, 75, 90, 100],
    "vaerans": [40, 60, 80, 100],
    "x264": [23, 28, 33],
    "x265": [23, 28, 33],
    "svtav1": [35, 45, 55],
}
#: FFmpeg encoder, decoder and default preset of each anchor.
VIDEO_CODECS: dict[str, tuple[str, str, str]] = {
    "x264": ("libx264", "h264", "medium"),
    "x265": ("libx265", "hevc", "medium"),
    "svtav1": ("libsvtav1", "libdav1d", "8"),
}


@dataclass
class Clip:
    """A clip held in memory (evaluation clips are short)."""

    name: str
    frames: list[U8]
    fps: Fraction = Fraction(25)

    @property
    def pixels(self) -> int:
        """Pixels of all frames."""
        h, w = self.frames[0].shape[:2]
        return int(h * w * len(self.frames))


@dataclass
class Point:
    """One coded setting of one codec on one clip."""

    clip: str
    codec: str
    setting: float
    bytes: int
    bpp: float
    psnr: float
    psnr_frames: list[float] = field(default_factory=list)
    encode_s: float = 0.0
    decode_s: float = 0.0
    frames: int = 0
    keyframes: int = 0


def psnr(a: U8, b: U8) -> float:
    """RGB PSNR of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def load_clips(root: Path, limit: int | None = None) -> list[Clip]:
    """Every clip under ``root``: sub-folders of frames and video files (or ``root`` itself, one clip)."""
    from vaerans_ecs.sequence.frames import VIDEO_SUFFIXES, open_frames

    if root.is_file() or any(p.is_file() and p.suffix.lower() in (".png", ".ppm") for p in root.iterdir()):
        items = [root]
    else:
        items = sorted(p for p in root.iterdir() if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES)
    clips = []
    for item in items:
        src = open_frames(item)
        frames = [f for f, _ in zip(src, range(limit or 1 << 30), strict=False)]
        if frames:
            clips.append(Clip(item.stem if item.is_file() else item.name, frames, src.fps or Fraction(25)))
    if not clips:
        raise VaeransError(f"{root}: no clips (folders of frames or video files)")
    return clips


def _options(spec: str) -> tuple[str, dict[str, str]]:
    family, *rest = spec.split(":")
    opts = dict(item.split("=", 1) for item in rest if "=" in item)
    return family.strip().lower(), opts


def _run_seq(clip: Clip, q: float, opts: dict[str, str]) -> Point:
    from vaerans_ecs.sequence import SequenceWriter, decompress_sequence

    t0 = time.perf_counter()
    writer = SequenceWriter(quality=q, gop=int(opts.get("gop", 64)), model=opts.get("model", "default"),
                            keyframes=opts.get("keyframes", "image"), fps=(clip.fps.numerator, clip.fps.denominator))
    with writer:
        for frame in clip.frames:
            writer.write(frame)
    data = writer.getvalue()
    t1 = time.perf_counter()
    out = list(decompress_sequence(data))
    t2 = time.perf_counter()
    ps = [psnr(a, b) for a, b in zip(clip.frames, out, strict=True)]
    return Point(clip.name, "", q, len(data), len(data) * 8 / clip.pixels, statistics.fmean(ps), ps,
                 t1 - t0, t2 - t1, len(out), len(writer.keyframes))


def _run_intra(clip: Clip, q: float, opts: dict[str, str]) -> Point:
    from vaerans_ecs import compress, decompress

    t0 = time.perf_counter()
    streams = [compress(f, quality=q, model=opts.get("model", "default")) for f in clip.frames]
    t1 = time.perf_counter()
    out = [decompress(s) for s in streams]
    t2 = time.perf_counter()
    ps = [psnr(a, b) for a, b in zip(clip.frames, out, strict=True)]
    size = sum(len(s) for s in streams)
    return Point(clip.name, "", q, size, size * 8 / clip.pixels, statistics.fmean(ps), ps, t1 - t0, t2 - t1,
                 len(out), len(out))


def _run_av(family: str) -> Callable[[Clip, float, dict[str, str]], Point]:
    encoder, decoder, preset = VIDEO_CODECS[family]

    def run(clip: Clip, crf: float, opts: dict[str, str]) -> Point:
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration on stderr otherwise
        h, w = clip.frames[0].shape[:2]
        t0 = time.perf_counter()
        enc: Any = av.CodecContext.create(encoder, "w")
        enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
        enc.time_base = 1 / clip.fps
        enc.framerate = clip.fps
        options = {"crf": str(int(crf)), "preset": opts.get("preset", preset)}
        if family == "x265":
            options["x265-params"] = "log-level=error"
        enc.options = options
        packets = []
        for k, frame in enumerate(clip.frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            vf.pts = k
            packets += [bytes(p) for p in enc.encode(vf)]
        packets += [bytes(p) for p in enc.encode(None)]
        t1 = time.perf_counter()
        dec: Any = av.CodecContext.create(decoder, "r")
        out: list[U8] = []
        for data in packets:
            for vf in dec.decode(av.Packet(data)):
                out.append(vf.to_ndarray(format="rgb24"))
        for vf in dec.decode(None):
            out.append(vf.to_ndarray(format="rgb24"))
        t2 = time.perf_counter()
        if len(out) != len(clip.frames):
            raise VaeransError(f"{family} decoded {len(out)} of {len(clip.frames)} frames")
        ps = [psnr(a, b) for a, b in zip(clip.frames, out, strict=True)]
        size = sum(len(p) for p in packets)
        return Point(clip.name, "", crf, size, size * 8 / clip.pixels, statistics.fmean(ps), ps, t1 - t0, t2 - t1,
                     len(out), 0)

    return run


RUNNERS: dict[str, Callable[[Clip, float, dict[str, str]], Point]] = {
    "vaerans-seq": _run_seq,
    "vaerans": _run_intra,
    **{name: _run_av(name) for name in VIDEO_CODECS},
}


def run_video_eval(clips: Sequence[Clip], codecs: Sequence[str], grids: dict[str, list[float]],
                   log: Callable[[str], None] = print) -> list[Point]:
    """Code every clip with every codec at every setting of its grid (a codec that fails is reported)."""
    points: list[Point] = []
    for spec in codecs:
        family, opts = _options(spec)
        if family not in RUNNERS:
            raise VaeransError(f"unknown video codec {spec!r}; known: {', '.join(RUNNERS)}")
        grid = grids.get(spec, grids.get(family, DEFAULT_GRIDS[family]))
        for clip in clips:
            for setting in grid:
                try:
                    point = RUNNERS[family](clip, setting, opts)
                except (VaeransError, ImportError, OSError, ValueError) as exc:
                    log(f"{spec} on {clip.name} at {setting:g}: failed ({exc})")
                    continue
                point.codec = spec
                points.append(point)
                log(f"{spec:>14} {clip.name:>14} {setting:>5g}: {point.bpp:.4f} bpp {point.psnr:6.2f} dB "
                    f"enc {point.frames / point.encode_s:6.1f} fps dec {point.frames / point.decode_s:6.1f} fps")
    return points


def _curve(points: Sequence[Point], codec: str, clip: str) -> tuple[list[float], list[float]]:
    sel = sorted((p.bpp, p.psnr) for p in points if p.codec == codec and p.clip == clip)
    return [r for r, _ in sel], [q for _, q in sel]


def bd_rates(points: Sequence[Point], anchor: str) -> dict[str, dict[str, float]]:
    """BD-rate (PSNR, %) of every codec against ``anchor`` per clip, plus ``"mean"`` over clips."""
    clips = list(dict.fromkeys(p.clip for p in points))
    out: dict[str, dict[str, float]] = {}
    for codec in dict.fromkeys(p.codec for p in points):
        row = {clip: bd_rate(*_curve(points, anchor, clip), *_curve(points, codec, clip)) for clip in clips}
        finite = [v for v in row.values() if math.isfinite(v)]
        row["mean"] = statistics.fmean(finite) if len(finite) == len(clips) else math.nan
        out[codec] = row
    return out


def speed(points: Sequence[Point]) -> dict[str, tuple[float, float]]:
    """Encode and decode frames/s of every codec (medians over its points)."""
    out = {}
    for codec in dict.fromkeys(p.codec for p in points):
        sel = [p for p in points if p.codec == codec]
        out[codec] = (statistics.median(p.frames / p.encode_s for p in sel),
                      statistics.median(p.frames / p.decode_s for p in sel))
    return out


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.1f} %"


def summary(points: Sequence[Point], anchors: Sequence[str], meta: dict[str, Any]) -> str:
    """The markdown summary: points per clip, BD-rate tables, speed."""
    clips = list(dict.fromkeys(p.clip for p in points))
    lines = ["# Video evaluation", "", f"Machine: {meta['machine']}; load average at start {meta['load']}.", ""]
    lines += ["## Points (bpp / RGB PSNR dB)", "", "| codec | " + " | ".join(clips) + " |",
              "|---|" + "---|" * len(clips)]
    for codec in dict.fromkeys(p.codec for p in points):
        cells = []
        for clip in clips:
            r, q = _curve(points, codec, clip)
            cells.append(", ".join(f"{a:.3f}/{b:.1f}" for a, b in zip(r, q, strict=True)))
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    for anchor in anchors:
        if not any(p.codec == anchor for p in points):
            continue
        table = bd_rates(points, anchor)
        lines += ["", f"## BD-rate (PSNR) against {anchor}", "", "| codec | " + " | ".join(clips) + " | mean |",
                  "|---|" + "---|" * (len(clips) + 1)]
        for codec, row in table.items():
            if codec != anchor:
                lines.append(f"| {codec} | " + " | ".join(_fmt(row[c]) for c in [*clips, "mean"]) + " |")
    lines += ["", "## Speed (frames/s, median over settings)", "", "| codec | encode | decode |", "|---|---|---|"]
    for codec, (enc, dec) in speed(points).items():
        lines.append(f"| {codec} | {enc:.1f} | {dec:.1f} |")
    return "\n".join(lines) + "\n"


def _plot(points: Sequence[Point], clip: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for codec in dict.fromkeys(p.codec for p in points):
        r, q = _curve(points, codec, clip)
        if r:
            ax.plot(r, q, marker="o", label=codec)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel per frame")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_title(clip)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(points: Sequence[Point], out: Path, meta: dict[str, Any], plots: bool = True) -> list[Path]:
    """results.json, results.csv, summary.md and one RD plot per clip."""
    out.mkdir(parents=True, exist_ok=True)
    anchors = ["vaerans", "x264"]
    files = [out / "results.json", out / "results.csv", out / "summary.md"]
    payload = {"meta": meta, "points": [asdict(p) for p in points],
               "bd_rate": {a: bd_rates(points, a) for a in anchors if any(p.codec == a for p in points)},
               "speed": speed(points)}
    files[0].write_text(json.dumps(payload, indent=1, default=lambda v: None if v != v else v))
    with files[1].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip", "codec", "setting", "bytes", "bpp", "psnr", "frames", "keyframes", "encode_s",
                    "decode_s"])
        for p in points:
            w.writerow([p.clip, p.codec, p.setting, p.bytes, f"{p.bpp:.6f}", f"{p.psnr:.4f}", p.frames, p.keyframes,
                        f"{p.encode_s:.4f}", f"{p.decode_s:.4f}"])
    files[2].write_text(summary(points, anchors, meta))
    if plots:
        for clip in dict.fromkeys(p.clip for p in points):
            path = out / f"rd_{clip}.png"
            _plot(points, clip, path)
            files.append(path)
    return files


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--video`` options of ``vaerans eval``."""
    p.add_argument("--video", type=Path, default=None,
                   help="folder of clips (frame folders or video files): evaluate sequence coding instead of images")
    p.add_argument("--frames", type=int, default=None, help="with --video: use only the first N frames of each clip")


def main(args: argparse.Namespace) -> int:
    """Run the video evaluation from parsed ``vaerans eval`` arguments."""
    from vaerans_ecs.eval.cli import parse_qualities

    codecs = [c.strip() for c in (args.codecs if args.codecs != "vaerans,jpeg,webp,avif,jxl"
                                  else "vaerans-seq,vaerans,x264,x265,svtav1").split(",") if c.strip()]
    grids = {k: v for k, v in parse_qualities(args.qualities).items() if k}
    default = parse_qualities(args.qualities).get("")
    if default:
        grids.update({c: default for c in codecs if _options(c)[0] in ("vaerans-seq", "vaerans")})
    t0 = time.perf_counter()
    try:
        clips = load_clips(args.video, args.frames)
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        points = run_video_eval(clips, codecs, grids, log=(lambda s: None) if args.quiet else print)
        if not points:
            print("error: no codec could run", file=sys.stderr)
            return 2
        meta = {"clips": {c.name: [len(c.frames), *c.frames[0].shape[:2]] for c in clips}, "codecs": codecs,
                "machine": f"{os.cpu_count()} CPUs", "load": [round(v, 2) for v in load] if load else None,
                "seconds": round(time.perf_counter() - t0, 1)}
        files = write_outputs(points, args.out, meta, plots=not args.no_plots)
    except VaeransError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in files:
        print(f"wrote {path}")
    return 0
