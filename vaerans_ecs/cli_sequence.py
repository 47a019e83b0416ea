"""``vaerans compress --sequence``, and ``decompress`` / ``info`` of sequence streams.

``compress --sequence IN...`` codes one sequence: IN is a folder of frames, a glob pattern
(``'clip/*.png'``), a video file (needs the ``video`` extra, PyAV) or several image files in
order; the stream goes to ``-o OUT``, or next to the source with a ``.vae`` suffix. ``decompress``
of a sequence stream writes a folder of PNG frames named as the source's were (recorded in the
stream; ``frame_0000.png`` ... otherwise): ``-o DIR``, or IN's name + ``.frames``; ``-o OUT.mkv``
writes a lossless FFV1 video instead. ``info`` lists the GOPs and the bytes of every frame.
The same guards as for images: outputs never replace an input, nor an existing file without
``--force``; streams are written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from vaerans_ecs.cli_files import EXIT_FAILED, EXIT_OK, CommandFailure, Reporter, UsageError, same_file
from vaerans_ecs.errors import VaeransError

__all__ = [
    "add_compress_arguments",
    "compress_command",
    "decompress_command",
    "decompress_sequences",
    "describe",
    "is_sequence_file",
    "print_description",
]


def _fps(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a frame rate like 25 or 30000/1001, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the frame rate must be positive, got {text!r}")
    return value


def _gop(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of frames, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--gop must be >= 1, got {value}")
    return value


def add_compress_arguments(p: argparse.ArgumentParser) -> None:
    """The sequence options of ``vaerans compress``."""
    g = p.add_argument_group("sequences")
    g.add_argument("--sequence", action="store_true",
                   help="code the inputs as one sequence: a folder, a pattern ('clip/*.png'), a video file, "
                        "or several frames in order")
    g.add_argument("--gop", type=_gop, default=None, metavar="N", help="with --sequence: a keyframe at least every N")
    g.add_argument("--fps", type=_fps, default=None, metavar="R", help="with --sequence: frame rate to record")


def is_sequence_file(path: str) -> bool:
    """True when the file starts like a sequence stream (stdin and unreadable files: False)."""
    if path == "-":
        return False
    from vaerans_ecs.sequence import is_sequence

    try:
        with open(path, "rb") as fh:
            return is_sequence(fh.read(6))
    except OSError:
        return False


def _source(inputs: list[str]) -> tuple[Any, Path]:
    """Frames to code (a FrameSource or a list of image paths) and the path naming the output."""
    from vaerans_ecs.sequence.frames import FrameSource, open_frames

    if "-" in inputs:
        raise UsageError("vaerans compress --sequence: frames are read from files, not stdin")
    if len(inputs) == 1:
        src = open_frames(inputs[0])
        path = Path(inputs[0])
        if not path.exists():  # a pattern: name the stream after its folder
            path = Path(inputs[0]).parent
        return src, path
    paths = [Path(p) for p in inputs]
    return FrameSource(Path("."), None, [str(p) for p in paths], len(paths)), paths[0].parent


def compress_command(args: argparse.Namespace) -> int:
    """``vaerans compress --sequence``: one stream from all inputs."""
    from vaerans_ecs.sequence import DEFAULT_GOP, SequenceWriter

    try:
        src, named = _source(args.inputs)
    except VaeransError as exc:
        print(f"error: {args.inputs[0]}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output == "-":
        raise UsageError("vaerans compress --sequence: -o - is not supported (streams go to a file)")
    if args.output:
        out = Path(args.output)
    else:
        stem = named.stem if named.is_file() else (named.resolve().name or "sequence")
        folder = Path(args.out_dir) if args.out_dir else (named.parent if named.is_file() else named.resolve().parent)
        out = folder / f"{stem}.vae"
    _guard(out, [Path(p) for p in args.inputs], args.force)
    fps = args.fps or src.fps
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with SequenceWriter(tmp, quality=args.quality, target_bpp=args.target_bpp, lossless=args.lossless,
                            max_error=args.max_error or 0, gop=args.gop or DEFAULT_GOP, model=args.model,
                            fps=(fps.numerator, fps.denominator) if fps else None,
                            names=src.name_pattern) as writer:
            for frame in src:
                writer.write(frame)
        if out.exists() and not args.force:
            raise CommandFailure(f"{out} appeared meanwhile; not replaced (choose another -o)")
        os.replace(tmp, out)
    except (VaeransError, CommandFailure, OSError) as exc:
        tmp.unlink(missing_ok=True)
        print(f"error: {args.inputs[0] if len(args.inputs) == 1 else named}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    size = out.stat().st_size
    print(f"{out}: {writer.frames} frames, {len(writer.keyframes)} keyframe(s), {size} bytes")
    return EXIT_OK


def _guard(out: Path, inputs: list[Path], force: bool) -> None:
    for src in inputs:
        if same_file(out, src):
            raise CommandFailure(f"{out} is an input; choose another -o")
    if out.is_dir():
        raise CommandFailure(f"{out} is a folder; give a file name with -o")
    if not out.parent.is_dir():
        raise CommandFailure(f"folder {out.parent} does not exist")
    if out.exists() and not force:
        raise CommandFailure(f"{out} exists; choose another -o (or --force to replace it)")


def decompress_command(args: argparse.Namespace, name: str, report: Reporter) -> None:
    """Decode one sequence stream to a frame folder (or an FFV1 .mkv with ``-o OUT.mkv``)."""
    from vaerans_ecs.sequence import SequenceReader
    from vaerans_ecs.sequence.frames import DEFAULT_NAME, write_frames

    path = Path(name)
    if args.output and len(args.inputs) == 1:
        out = Path(args.output)
    else:
        out = (Path(args.out_dir) if args.out_dir else path.parent) / f"{path.name}.frames"
    try:
        if same_file(out, path):
            raise CommandFailure(f"{out} is the input; choose another -o")
        if out.suffix.lower() != ".mkv" and out.exists() and not out.is_dir():
            raise CommandFailure(f"{out} exists and is not a folder")
        with SequenceReader(path) as reader:
            h = reader.header
            fps = Fraction(h.fps_num, h.fps_den) if h.fps_num and h.fps_den else None
            written = write_frames(reader, out, pattern=reader.names or DEFAULT_NAME, fps=fps, overwrite=args.force)
        what = out if out.suffix.lower() == ".mkv" else f"{out}/ ({len(written)} frames)"
        print(f"{name}: {h.width}x{h.height} -> {what}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        report.error(name, exc)


def decompress_sequences(args: argparse.Namespace) -> int | None:
    """``vaerans decompress`` of sequence streams (None when no input is one)."""
    seqs = [name for name in args.inputs if is_sequence_file(name)]
    if not seqs:
        return None
    if len(seqs) != len(args.inputs):
        raise UsageError("vaerans decompress: give sequence streams and image streams in separate calls")
    report = Reporter(args.verbose)
    for name in seqs:
        decompress_command(args, name, report)
    return report.status


def describe(path: str) -> dict[str, Any]:
    """What ``vaerans info`` says about a sequence stream: size, mode, GOPs, per-frame bytes."""
    from vaerans_ecs.sequence import inspect_sequence

    info = inspect_sequence(path)
    h = info.header
    return {
        "file": path, "kind": "sequence", "width": h.width, "height": h.height, "frames": info.frames,
        "mode": h.mode.name.lower(), "max_error": h.max_error, "gop_limit": h.gop,
        "fps": f"{h.fps_num}/{h.fps_den}" if h.fps_den else None, "total_bytes": info.total_bytes,
        "bpp": info.bpp, "gops": [{"first": a, "frames": n} for a, n in info.gops],
        "frame_bytes": list(info.frame_bytes), "keyframes": [k for k, key in enumerate(info.keyframes) if key],
        "stages": list(info.stages),
    }


def print_description(d: dict[str, Any]) -> None:
    """The text form of :func:`describe`."""
    print(d["file"])
    print(f"  sequence  {d['frames']} frames of {d['width']} x {d['height']}, {d['mode']}"
          + (f" (max_error {d['max_error']})" if d["max_error"] else "") + (f", {d['fps']} fps" if d["fps"] else ""))
    print(f"  size      {d['total_bytes']} bytes, {d['bpp']:.4f} bpp")
    print("  stages    " + " | ".join(s["stage"] for s in d["stages"]))
    for gop in d["gops"]:
        sizes = d["frame_bytes"][gop["first"]: gop["first"] + gop["frames"]]
        mean = f" (mean {sum(sizes[1:]) / (len(sizes) - 1):.0f})" if len(sizes) > 1 else ""
        print(f"  GOP       frames {gop['first']}..{gop['first'] + gop['frames'] - 1}: keyframe {sizes[0]} B, "
              f"inter {sum(sizes[1:])} B{mean}")
    print("  frames    " + " ".join(str(b) for b in d["frame_bytes"]))
