"""``operation = "compress-sequence"``: each sequence of a job's inputs becomes one stream.

A video file is one sequence; the image files of one folder, in name order, are another (so
``inputs = ["clips/*/*.png", "videos/*.mp4"]`` codes every clip folder and every video). A
folder's output is named after the folder (``clips/foreman/`` -> ``OUT/foreman.vae``). Workers
read the frames themselves, one at a time (the local executor, or Dask workers that see the same
files); the stream comes back as bytes.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from vaerans_ecs.batch.inputs import InputFile
from vaerans_ecs.config import Config

__all__ = ["OPERATION", "encode_sequence", "group_sequences", "source_stat"]

OPERATION = "compress-sequence"


def group_sequences(found: list[InputFile]) -> tuple[list[InputFile], dict[Path, tuple[str, ...]]]:
    """Sequence inputs (video files, and one folder per group of image files) and each folder's frames."""
    from vaerans_ecs.sequence.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    out: list[InputFile] = []
    frames: dict[Path, list[str]] = {}
    for inp in found:
        suffix = inp.path.suffix.lower()
        if inp.error is not None or suffix in VIDEO_SUFFIXES:
            out.append(inp)
        elif suffix in IMAGE_SUFFIXES:
            folder = inp.path.parent
            if folder not in frames:
                frames[folder] = []
                out.append(InputFile(folder, inp.base))
            frames[folder].append(str(inp.path))
        else:
            out.append(replace(inp, error="neither a video file nor an image frame"))
    return out, {folder: tuple(sorted(names)) for folder, names in frames.items()}


def source_stat(path: Path, frames: tuple[str, ...] = ()) -> tuple[int, int]:
    """(bytes, newest mtime in ns) of a sequence source: the file, or the frames of a folder."""
    if not frames:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    stats = [os.stat(f) for f in frames]
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def encode_sequence(name: str, frames: tuple[str, ...], settings: dict[str, Any],
                    config: Config) -> tuple[bytes, int, int, int]:
    """The stream of one sequence source, with its frame width, height and count."""
    from vaerans_ecs.sequence import SequenceWriter
    from vaerans_ecs.sequence.frames import FrameSource, frame_name_pattern, open_frames

    if frames:
        src = FrameSource(Path("."), None, list(frames), len(frames))
        pattern = frame_name_pattern(Path(f).name for f in frames)
    else:
        src = open_frames(name)
        pattern = src.name_pattern
    fps = src.fps
    buf = io.BytesIO()
    with SequenceWriter(buf, fps=(fps.numerator, fps.denominator) if fps else None, names=pattern, config=config,
                        **settings) as writer:
        for frame in src:
            writer.write(frame)
    data = buf.getvalue()
    from vaerans_ecs.sequence import inspect_sequence

    info = inspect_sequence(data, config=config)
    return data, info.header.width, info.header.height, info.frames
