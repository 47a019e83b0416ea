"""The evaluation loop: every image x codec x setting, with bytes, quality metrics and timings.

Images are read by :func:`vaerans_ecs.imaging.load_source` and coded in their own layout (gray
HxWx1, palette as RGB, RGBA); distortion is measured over that layout. For each image (sorted by
file name) and each available codec, every setting of the codec's grid (lossy codecs: quality;
exact codecs: their one bound) is encoded ``repeats`` times (the bytes must not change) and decoded
``repeats`` times; encode/decode wall and CPU seconds and per-stage seconds are medians over the
repeats. Before its first measured point each codec runs once untimed on the first image (loading
ONNX sessions, encoder libraries). Distortion: PSNR over every coded channel, PSNR-Y (BT.601 luma
of RGB; the gray channel itself), MS-SSIM (:mod:`vaerans_ecs.systems.metrics`), and the largest
absolute error.

Exact codecs (``Codec.bound`` set: lossless or near-lossless) are checked on every image: a
decoded pixel outside the bound, a failed encode or decode, a wrong shape or non-deterministic
bytes become an entry of the payload's ``failures`` (printed at once, listed first in the
summary, exit status 1 from the CLI), never a silent number.

Results come out in a deterministic order: codec (in the order given), setting (grid order),
image (name order).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval.codecs import Codec, parse_codec
from vaerans_ecs.imaging import SourceImage
from vaerans_ecs.systems.metrics import ms_ssim, ms_ssim_db, psnr, psnr_y

__all__ = [
    "DEFAULT_BD_RANGE",
    "IMAGE_SUFFIXES",
    "EvalConfig",
    "PointResult",
    "Progress",
    "load_images",
    "load_sources",
    "measure_point",
    "run_eval",
]

IMAGE_SUFFIXES = (".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
U8Image = npt.NDArray[np.uint8]
#: PSNR range (dB) of the extra BD-rate column: the rates that matter at high quality.
DEFAULT_BD_RANGE: tuple[float, float] = (32.0, 40.0)


@dataclass
class EvalConfig:
    """What to evaluate. ``qualities`` maps a codec label or family to its grid ('' = every codec)."""

    data: Path
    codecs: list[str]
    out: Path
    limit: int | None = None
    qualities: dict[str, list[float]] = field(default_factory=dict)
    repeats: int = 1
    macs_size: int = 512
    progress: bool = True
    warmup: bool = True
    bd_range: tuple[float, float] | None = DEFAULT_BD_RANGE


@dataclass
class PointResult:
    """One image coded at one setting by one codec."""

    image: str
    width: int
    height: int
    codec: str
    family: str
    quality: float
    bytes: int
    bpp: float
    psnr: float
    psnr_y: float
    ms_ssim: float
    ms_ssim_db: float
    encode_s: float
    decode_s: float
    channels: int = 3
    mode: str = "RGB"
    #: the codec's promised l-infinity bound (0 lossless), None for lossy codecs
    bound: int | None = None
    max_abs_error: int = 0
    encode_cpu_s: float = 0.0
    decode_cpu_s: float = 0.0
    encode_stages: dict[str, float] = field(default_factory=dict)
    decode_stages: dict[str, float] = field(default_factory=dict)

    @property
    def bound_held(self) -> bool | None:
        """Whether every decoded sample is within the bound (None for lossy codecs)."""
        return None if self.bound is None else self.max_abs_error <= self.bound

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready once non-finite floats are handled)."""
        return {**asdict(self), "bound_held": self.bound_held}


class Progress:
    """A dependency-free progress bar on a stream (stderr by default).

    On a terminal it redraws one line; otherwise it prints a line at every 10 % step.
    """

    def __init__(self, total: int, stream: IO[str] | None = None, enabled: bool = True, width: int = 28) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.t0 = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def step(self, text: str = "") -> None:
        """Count one unit of work done; ``text`` says what."""
        self.done += 1
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / frac * (1.0 - frac) if frac > 0 else 0.0
        fill = round(frac * self.width)
        line = (
            f"[{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} {frac:4.0%} "
            f"{_clock(elapsed)} elapsed, ETA {_clock(eta)}  {text}"
        )
        if self._tty:
            self.stream.write("\r" + line[:150].ljust(150))
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _image_files(data: Path, limit: int | None) -> list[Path]:
    folder = Path(data)
    if not folder.is_dir():
        raise VaeransError(f"data folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[: max(limit, 0)]
    if not files:
        raise VaeransError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def load_images(data: Path, limit: int | None = None) -> list[tuple[str, U8Image]]:
    """Images of ``data`` (by suffix, sorted by name, the first ``limit``) as HxWx3 uint8 (the lossy RGB rules)."""
    from PIL import Image

    from vaerans_ecs.imaging import to_rgb_uint8

    out = []
    for path in _image_files(data, limit):
        with Image.open(path) as im:
            out.append((path.name, to_rgb_uint8(im)))
    return out


def load_sources(
    data: Path, limit: int | None = None, log: Callable[[str], None] | None = None
) -> list[tuple[str, SourceImage]]:
    """Images of ``data`` as :class:`SourceImage` in their own modes (16-bit ones skipped, said through ``log``)."""
    from vaerans_ecs.imaging import load_source

    out = []
    for path in _image_files(data, limit):
        src = load_source(path)
        if src.bit_depth != 8:
            if log is not None:
                log(f"skipping {path.name}: {src.bit_depth}-bit (the harness measures 8-bit images)")
            continue
        out.append((path.name, src))
    if not out:
        raise VaeransError(f"no 8-bit images in {data}")
    return out


def settings_for(codec: Codec, qualities: Mapping[str, Sequence[float]]) -> list[float]:
    """The codec's grid: exact codecs their bound; else by label, then family, then '' (all), then its default."""
    if codec.fixed:
        return [float(q) for q in codec.default_settings()]
    for key in (codec.label, codec.family, ""):
        if key in qualities:
            return [float(q) for q in qualities[key]]
    return [float(q) for q in codec.default_settings()]


def _median_stages(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r))
    return {n: statistics.median(r.get(n, 0.0) for r in runs) for n in names}


def _timed(fn: Callable[[], tuple[Any, dict[str, float]]]) -> tuple[Any, float, float, dict[str, float]]:
    t0, c0 = time.perf_counter(), time.process_time()
    value, stages = fn()
    return value, time.perf_counter() - t0, time.process_time() - c0, stages


def _psnr_y(a: U8Image, b: U8Image) -> float:
    """Luma PSNR of RGB(A); for gray layouts the gray channel's PSNR."""
    if a.shape[2] >= 3:
        return psnr_y(a[:, :, :3], b[:, :, :3])
    return psnr(a[:, :, 0], b[:, :, 0])


def measure_point(codec: Codec, name: str, src: SourceImage | U8Image, quality: float, repeats: int) -> PointResult:
    """Encode/decode ``src`` ``repeats`` times at ``quality`` and measure it against the source's pixels."""
    from vaerans_ecs.eval.base import as_source

    source = as_source(src)
    img: U8Image = source.pixels
    h, w, channels = img.shape
    enc: list[tuple[float, float]] = []
    dec: list[tuple[float, float]] = []
    enc_stages: list[dict[str, float]] = []
    dec_stages: list[dict[str, float]] = []
    data: bytes | None = None
    recon: U8Image | None = None
    for _ in range(max(repeats, 1)):
        out, secs, cpu, stages = _timed(lambda: codec.encode(source, quality))
        if data is not None and out != data:
            raise VaeransError(f"{codec.label} at quality {quality:g}: encoding {name} is not deterministic")
        data = out
        enc.append((secs, cpu))
        enc_stages.append(stages)
    assert data is not None
    for _ in range(max(repeats, 1)):
        recon, secs, cpu, stages = _timed(lambda: codec.decode(data, channels))
        dec.append((secs, cpu))
        dec_stages.append(stages)
    assert recon is not None
    if recon.ndim == 2:
        recon = recon[:, :, None]
    if recon.shape != img.shape or recon.dtype != np.uint8:
        raise VaeransError(f"{codec.label}: decoded {name} is {recon.dtype} {recon.shape}, expected uint8 {img.shape}")
    ms = ms_ssim(img, recon)
    return PointResult(
        image=name,
        width=w,
        height=h,
        codec=codec.label,
        family=codec.family,
        quality=quality,
        bytes=len(data),
        bpp=len(data) * 8.0 / (h * w),
        psnr=psnr(img, recon),
        psnr_y=_psnr_y(img, recon),
        ms_ssim=ms,
        ms_ssim_db=ms_ssim_db(ms),
        encode_s=statistics.median(t for t, _ in enc),
        decode_s=statistics.median(t for t, _ in dec),
        channels=channels,
        mode=source.mode,
        bound=codec.bound,
        max_abs_error=int(np.max(np.abs(img.astype(np.int16) - recon.astype(np.int16)))),
        encode_cpu_s=statistics.median(c for _, c in enc),
        decode_cpu_s=statistics.median(c for _, c in dec),
        encode_stages=_median_stages(enc_stages),
        decode_stages=_median_stages(dec_stages),
    )


def _model_costs(codecs: Iterable[Codec], size: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    from vaerans_ecs.eval.macs import model_macs_per_pixel

    seen: dict[str, dict[str, Any]] = {}
    for codec in codecs:
        for spec in codec.models():
            if spec.name in seen:
                continue
            try:
                seen[spec.name] = model_macs_per_pixel(spec, (size, size))
            except (VaeransError, OSError) as exc:
                log(f"MACs of model {spec.name!r} not counted: {exc}")
                seen[spec.name] = {"model": spec.name, "size": [size, size], "error": str(exc)}
    return list(seen.values())


def _failure(codec: Codec, name: str, quality: float, what: str) -> dict[str, Any]:
    return {"codec": codec.label, "image": name, "quality": quality, "bound": codec.bound, "what": what}


def run_eval(cfg: EvalConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the evaluation; returns the results payload (see :mod:`vaerans_ecs.eval.report`)."""
    say = log or (lambda msg: print(msg, file=sys.stderr))
    t_start = time.perf_counter()
    load_start = _load_avg()
    codecs: list[Codec] = []
    labels: set[str] = set()
    for spec in cfg.codecs:
        codec = parse_codec(spec)
        if codec.label in labels:
            raise VaeransError(f"codec {codec.label!r} given twice")
        labels.add(codec.label)
        codecs.append(codec)
    images = load_sources(cfg.data, cfg.limit, say)
    info: list[dict[str, Any]] = []
    active: list[tuple[Codec, list[float]]] = []
    for codec in codecs:
        reason = codec.unavailable()
        grid = settings_for(codec, cfg.qualities)
        entry: dict[str, Any] = {"label": codec.label, "family": codec.family, "qualities": grid, "bound": codec.bound}
        if reason is not None:
            say(f"skipping codec {codec.label}: {reason}")
            entry.update(available=False, reason=reason)
        else:
            entry.update(available=True, description=codec.describe())
            active.append((codec, grid))
        info.append(entry)
    progress = Progress(len(images) * sum(len(g) for _, g in active), enabled=cfg.progress)
    per_codec: dict[str, list[PointResult]] = {c.label: [] for c, _ in active}
    failures: list[dict[str, Any]] = []
    warm: set[str] = set()
    for name, src in images:
        for codec, grid in active:
            if cfg.warmup and codec.label not in warm and grid:
                warm.add(codec.label)
                try:
                    data, _ = codec.encode(src, grid[0])
                    codec.decode(data, src.pixels.shape[2])
                except Exception:
                    pass
            for q in grid:
                try:
                    point = measure_point(codec, name, src, q, cfg.repeats)
                except Exception as exc:
                    failures.append(_failure(codec, name, q, f"{type(exc).__name__}: {exc}"))
                    say(f"FAILURE: {codec.label} q={q:g} on {name}: {type(exc).__name__}: {exc}")
                else:
                    per_codec[codec.label].append(point)
                    if point.bound_held is False:
                        what = f"max |error| {point.max_abs_error} > bound {point.bound}"
                        failures.append(_failure(codec, name, q, what))
                        say(f"FAILURE: {codec.label} on {name}: {what}")
                progress.step(f"{name} {codec.label} q={q:g}")
    progress.close()
    order = {name: i for i, (name, _) in enumerate(images)}
    results: list[PointResult] = []
    for codec, grid in active:
        rank = {q: i for i, q in enumerate(grid)}
        results += sorted(per_codec[codec.label], key=lambda r: (rank[r.quality], order[r.image]))
    models = _model_costs([c for c, _ in active], cfg.macs_size, say)
    elapsed = time.perf_counter() - t_start
    return {
        "meta": {**_meta(cfg, images, elapsed), "load_avg": load_start, "load_avg_end": _load_avg()},
        "codecs": info,
        "models": models,
        "failures": failures,
        "results": [r.to_dict() for r in results],
    }


def _meta(cfg: EvalConfig, images: Sequence[tuple[str, SourceImage]], elapsed: float) -> dict[str, Any]:
    import os
    import platform

    import PIL

    return {
        "data": str(cfg.data),
        "images": [n for n, _ in images],
        "modes": [s.mode for _, s in images],
        "pixels": [int(s.width * s.height) for _, s in images],
        "repeats": cfg.repeats,
        "warmup": cfg.warmup,
        "bd_range": list(cfg.bd_range) if cfg.bd_range is not None else None,
        "elapsed_s": elapsed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }


def _load_avg() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    import os

    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None
