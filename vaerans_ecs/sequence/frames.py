"""Frame sources and sinks: folders and patterns of images, video files (PyAV), PNG folders, FFV1.

:func:`frame_paths` lists a folder (its image files in name order) or a glob pattern;
:func:`read_frames` yields the frames of a folder, a pattern or a video file one at a time, with
the source's frame rate when it has one; :func:`write_frames` writes a folder of PNGs named like
the source (``frame_0000.png`` unless told otherwise) or a lossless FFV1 ``.mkv``. Video files
need the optional ``video`` extra (``pip install "vaerans_ecs[video]"``, PyAV).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import ImageInputError, VaeransError

__all__ = [
    "DEFAULT_NAME",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FrameSource",
    "frame_name_pattern",
    "frame_paths",
    "open_frames",
    "write_frames",
]

U8 = NDArray[np.uint8]
IMAGE_SUFFIXES = (".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".mpg", ".mpeg", ".264", ".h264", ".hevc", ".ivf")
#: How frames are named when the source gives no pattern.
DEFAULT_NAME = "frame_{:04d}.png"


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise VaeransError('video files need PyAV: pip install "vaerans_ecs[video]"') from None
    return av


def frame_paths(source: str | Path) -> list[Path]:
    """The image files of a folder (name order) or of a glob pattern (``frames/*.png``)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        files = sorted(Path(p) for p in glob.glob(str(source)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageInputError(f"{source}: no image frames found (a folder of images, or a pattern like 'dir/*.png')")
    return files


def frame_name_pattern(names: Iterable[str]) -> str:
    """A ``str.format`` pattern reproducing names like ``frame_0007.png`` (else :data:`DEFAULT_NAME`)."""
    first = next(iter(names), "")
    m = re.fullmatch(r"(.*?)(\d+)(\.[A-Za-z0-9]+)", first)
    if not m:
        return DEFAULT_NAME
    prefix, digits, _ = m.groups()
    return f"{prefix.replace('{', '{{').replace('}', '}}')}{{:0{len(digits)}d}}.png"


@dataclass
class FrameSource:
    """Frames of a folder, a pattern or a video file, read lazily; ``fps`` when the source has one."""

    path: Path
    fps: Fraction | None
    names: list[str]
    count: int | None
    _video: bool = False

    def __iter__(self) -> Iterator[U8]:
        if self._video:
            yield from _video_frames(self.path)
            return
        from vaerans_ecs.imaging import load_source, to_rgb_uint8

        for name in self.names:
            yield to_rgb_uint8(load_source(self.path / name if self.path.is_dir() else Path(name)))

    @property
    def name_pattern(self) -> str:
        """How decoded frames should be named to match the source."""
        return DEFAULT_NAME if self._video else frame_name_pattern(Path(n).name for n in self.names)


def open_frames(source: str | Path) -> FrameSource:
    """A :class:`FrameSource` for a folder, a glob pattern or a video file."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        av = _av()
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                count = stream.frames or None
        except (av.error.FFmpegError, IndexError) as exc:
            raise ImageInputError(f"{path}: cannot read video ({exc})") from None
        return FrameSource(path, Fraction(rate) if rate else None, [], count, True)
    files = frame_paths(source)
    if path.is_dir():
        return FrameSource(path, None, [f.name for f in files], len(files))
    return FrameSource(Path("."), None, [str(f) for f in files], len(files))


def _video_frames(path: Path) -> Iterator[U8]:
    av = _av()
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as exc:
        raise ImageInputError(f"{path}: cannot decode video ({exc})") from None


def write_frames(frames: Iterable[U8], out: str | Path, *, pattern: str = DEFAULT_NAME,
                 fps: Fraction | None = None, overwrite: bool = False) -> list[Path]:
    """Write frames to a folder of PNGs named by ``pattern``, or to a lossless FFV1 ``.mkv`` file.

    Existing files are replaced only with ``overwrite``. Returns the paths written.
    """
    dest = Path(out)
    if dest.suffix.lower() == ".mkv":
        if dest.exists() and not overwrite:
            raise VaeransError(f"{dest} exists (use --force to replace it)")
        return [_write_ffv1(frames, dest, fps or Fraction(25))]
    dest.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    written = []
    for k, frame in enumerate(frames):
        path = dest / pattern.format(k)
        if path.exists() and not overwrite:
            raise VaeransError(f"{path} exists (use --force to replace it)")
        tmp = path.with_name(path.name + ".part")
        Image.fromarray(frame).save(tmp, format="PNG")
        tmp.replace(path)
        written.append(path)
    return written


def _write_ffv1(frames: Iterable[U8], dest: Path, fps: Fraction) -> Path:
    av = _av()
    tmp = dest.with_name(dest.name + ".part")
    with av.open(str(tmp), "w", format="matroska") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("ffv1", rate=fps)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "bgr0"
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="bgr0")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    tmp.replace(dest)
    return dest
