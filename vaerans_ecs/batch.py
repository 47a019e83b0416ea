"""Batch jobs: many files compressed, decompressed or round-trip evaluated, on one machine or a Dask cluster.

A job is the ``[job]`` table of a TOML file (:class:`vaerans_ecs.config.JobConfig`, documented in
``examples/batch_job.toml``) run with ``vaerans batch JOB.toml`` or :func:`run_job`. The minimal job::

    [job]
    inputs = ["photos/*.png"]
    output_dir = "out"
    quality = 40
    workers = 2

How a job behaves:

* **Inputs** are globs (``**`` recurses) or the path of a text file listing one path or glob per
  line (``#`` comments); relative paths resolve against the file that names them. Each output
  keeps the input's path relative to the folder its pattern starts in (``photos/a/x.png`` from
  ``photos/**/*.png`` becomes ``out/a/x.vae``); two inputs mapping to one output is an error
  for the second one. An input is never overwritten, whatever ``overwrite`` says.
* **Work** runs in worker processes (``executor = "local"``: a process pool whose workers build
  their onnxruntime sessions once, with ``max(1, cores // workers)`` intra-op threads each unless
  ``[runtime] intra_op_threads`` is set) or on ``dask.distributed`` (``executor = "dask"``; see
  :mod:`vaerans_ecs.batch_dask`). The main process reads inputs and writes outputs, so Dask
  workers need the models but no access to the files. The split matters: on 2 cores (Kodak,
  ``benchmarks/bench_batch_workers.py``) 2 workers of 2 threads were no faster than 1 worker of 2
  threads, 2 workers of 1 thread ~1.15x faster in steady state (compress). A second worker gains
  little because the VAE is ~90 % of a file and 1 worker on 2 intra-op threads is already ~1.6x
  faster than on 1.
* **Outputs** are written atomically: a temporary file in the same folder, then ``os.replace``.
  An existing output that this job did not write is refused unless ``overwrite = true``.
* **Resume**: after each file, a record (output size and SHA-256, input size and mtime, job
  parameters) is appended to ``<output_dir>/.vaerans-manifest.jsonl`` in a single ``write`` and
  fsynced *before* the output is moved into place; the file is compacted (rewritten atomically)
  when a job starts. A job that is killed and started again skips every output whose record
  still matches (same parameters, same input, output of the recorded size and checksum) and
  does the rest.
* **Failures** of single files (unreadable, corrupt, unsupported mode, bad stream) are recorded
  and the job goes on; :attr:`JobReport.failed` tells the caller (``vaerans batch`` exits 1).
* **Report**: JSON (default ``<output_dir>/report.json``): per file status, bytes, bpp, seconds,
  error (and PSNR for ``roundtrip-eval``), plus totals; :meth:`JobReport.summary` is one line.

Testing hook: with the environment variable ``VAERANS_BATCH_KILL_AFTER=N`` the job's process
SIGKILLs itself right after its N-th output is in place (to test resuming).

Operations: ``compress`` (image -> ``.vae``), ``decompress`` (``.vae`` -> image in
``output_format``), ``roundtrip-eval`` (image -> ``.vae`` written, decoded again in memory, PSNR
against the input recorded). Images are read with Pillow (first frame, EXIF orientation applied)
and converted by the rules of :mod:`vaerans_ecs.imaging`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as _dt
import glob
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import numpy as np
import numpy.typing as npt

from vaerans_ecs.config import Config, JobConfig, get_config, load_config, parse_config, set_config
from vaerans_ecs.errors import BitstreamError, ConfigError, ImageInputError, VaeransError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "KILL_AFTER_ENV",
    "MANIFEST_NAME",
    "FileResult",
    "JobReport",
    "Progress",
    "ProgressBar",
    "image_from_bytes",
    "image_to_bytes",
    "load_job",
    "pillow_save_format",
    "psnr",
    "run_job",
    "write_atomic",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = ".vaerans-manifest.jsonl"
REPORT_NAME = "report.json"
TMP_SUFFIX = ".vaerans-tmp"
LOCK_NAME = ".vaerans-job.lock"
#: Test hook: the job process SIGKILLs itself after writing this many outputs (simulates a crash).
KILL_AFTER_ENV = "VAERANS_BATCH_KILL_AFTER"
_MANIFEST_VERSION = 1
_MAX_POOL_RESTARTS = 3

Status = Literal["ok", "skipped", "error", "cancelled"]


# -- file helpers (shared with the CLI and the Pillow plugin) ------------------------------------


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def _write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file next to ``path`` (fsynced); return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temporary file in the same folder, then ``os.replace``)."""
    target = Path(path)
    tmp = _write_temp(target, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def image_from_bytes(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode an image file's bytes with Pillow (first frame, EXIF orientation applied) to HxWx3 uint8.

    Raises :class:`ImageInputError` for anything Pillow cannot read or the codec does not accept.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    from vaerans_ecs.imaging import to_rgb_uint8

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            return to_rgb_uint8(upright if upright is not None else img)
    except ImageInputError:
        raise
    except UnidentifiedImageError:
        raise ImageInputError("not an image file Pillow can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"refused by Pillow's decompression-bomb check: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        raise ImageInputError(f"cannot decode image: {exc}") from None


def pillow_save_format(name_or_ext: str) -> tuple[str, str]:
    """``(Pillow format, file extension)`` for a format name or extension (``"png"``, ``".jpg"``, ``"JPEG"``).

    Raises :class:`VaeransError` when Pillow cannot write that format.
    """
    from PIL import Image

    Image.init()
    key = name_or_ext.strip().lower().lstrip(".")
    exts = Image.registered_extensions()
    fmt = exts.get("." + key)
    ext = "." + key
    if fmt is None:
        by_name = {f.lower(): f for f in Image.SAVE}
        fmt = by_name.get(key)
        ext = next((e for e, f in sorted(exts.items()) if f == fmt and f"{e[1:]}" == key), "")
        if fmt is not None and not ext:
            ext = next((e for e, f in sorted(exts.items()) if f == fmt), "." + key)
    if fmt is None or fmt not in Image.SAVE:
        writable = sorted({e for e, f in exts.items() if f in Image.SAVE})
        raise VaeransError(f"Pillow cannot write format {name_or_ext!r}; writable extensions: {' '.join(writable)}")
    return fmt, ext


def image_to_bytes(img: npt.NDArray[np.uint8], fmt: str) -> bytes:
    """Encode an HxWx3 uint8 image with Pillow as ``fmt`` (a format name or extension)."""
    from PIL import Image

    pil_format, _ = pillow_save_format(fmt)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format=pil_format)
    return buf.getvalue()


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float | None:
    """PSNR in dB of two uint8 images of the same shape (None when they are identical)."""
    if a.shape != b.shape:
        raise VaeransError(f"PSNR of images of different shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return None if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# -- loading a job -------------------------------------------------------------------------------


def load_job(path: str | os.PathLike[str], *, base: Config | None = None) -> tuple[JobConfig, Config]:
    """Read a job file: its ``[job]`` table and the configuration to run it with.

    Other tables in the file (``[codec]``, ``[runtime]``, ``[arena]``, ``[models.NAME]``) override
    the same keys of ``base`` (default: the process configuration) for this job only. Raises
    :class:`ConfigError` naming the file and key on any problem.
    """
    file = Path(path)
    try:
        with open(file, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read job file {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    if "job" not in raw:
        raise ConfigError(f"{file}: no [job] table (see examples/batch_job.toml)")
    if set(raw) == {"job"}:
        parsed = load_config(file)
        assert parsed.job is not None
        return parsed.job, base if base is not None else get_config()
    ambient = base if base is not None else get_config()
    merged: dict[str, Any] = ambient.model_dump(exclude={"source", "job"})
    for key, value in raw.items():
        if key == "models" and isinstance(value, dict):
            merged["models"] = {**merged["models"], **value}
        elif key in ("arena", "runtime", "codec") and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    cfg = parse_config(merged, file.resolve())
    assert cfg.job is not None
    return cfg.job, cfg


# -- planning ------------------------------------------------------------------------------------


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _pattern_base(pattern: str) -> Path:
    """The folder a glob starts in (outputs keep paths relative to it)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


@dataclass
class _Input:
    path: Path
    base: Path
    error: str | None = None


def _expand_inputs(inputs: list[str] | str) -> tuple[list[_Input], list[str]]:
    """Input files (with the folder their relative output path starts from) and patterns that matched nothing."""
    found: list[_Input] = []
    unmatched: list[str] = []
    if isinstance(inputs, str):
        listing = Path(inputs)
        if listing.is_file():
            lines = []
            try:
                text = listing.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the input list {listing}: {exc}") from None
            for line in text.splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    lines.append(str(listing.parent / Path(line).expanduser()))
            patterns = lines
            literal_base: Path | None = None
            plain = [Path(p) for p in lines if not _has_magic(p)]
            if plain:
                literal_base = Path(os.path.commonpath([str(p.parent) for p in plain]))
        elif _has_magic(inputs):
            patterns, literal_base = [inputs], None
        else:
            raise ConfigError(f"job inputs: {inputs} is neither a list file nor a glob")
    else:
        patterns, literal_base = list(inputs), None
    for pattern in patterns:
        if _has_magic(pattern):
            base = _pattern_base(pattern)
            matches = sorted(glob.glob(pattern, recursive=True))
            files = [Path(m) for m in matches if not Path(m).is_dir()]
            if not files:
                unmatched.append(pattern)
            found.extend(_Input(f, base) for f in files)
        else:
            path = Path(pattern)
            base = literal_base if literal_base is not None else path.parent
            if path.is_dir():
                found.append(_Input(path, base, "is a directory (use a glob such as DIR/*.png)"))
            elif not path.exists():
                found.append(_Input(path, base, "no such file"))
            else:
                found.append(_Input(path, base))
    return found, unmatched


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # pragma: no cover - broken symlink loops and the like
        return path.absolute()


@dataclass
class _Item:
    index: int
    input: Path
    output: Path | None
    error: str | None = None


def _plan(job: JobConfig, ext: str, report_path: Path, earlier: set[Path]) -> tuple[list[_Item], list[str]]:
    """Inputs and their outputs. ``earlier``: outputs the manifest says this job wrote before."""
    found, unmatched = _expand_inputs(job.inputs)
    out_dir = _resolved(Path(job.output_dir))
    excluded = {_resolved(out_dir / MANIFEST_NAME), _resolved(report_path), _resolved(out_dir / LOCK_NAME)}
    seen: set[Path] = set()
    planned: list[tuple[_Input, Path, Path]] = []
    for inp in found:
        src = _resolved(inp.path)
        if src in seen or src in excluded or inp.path.name.endswith(TMP_SUFFIX):
            continue
        seen.add(src)
        try:
            rel = src.relative_to(_resolved(inp.base))
        except ValueError:
            rel = Path(inp.path.name)
        planned.append((inp, src, out_dir / rel.with_suffix(ext)))
    # A file this job wrote earlier, that another input produces again, is an output, not an input.
    producers: dict[Path, set[Path]] = {}
    for inp, src, out in planned:
        if inp.error is None:
            producers.setdefault(_resolved(out), set()).add(src)
    kept = [
        (inp, src, out) for inp, src, out in planned if not (src in earlier and producers.get(src, set()) - {src})
    ]
    sources = {src for _, src, _ in kept}
    items: list[_Item] = []
    claimed: dict[Path, Path] = {}
    for inp, _, out in kept:
        item = _Item(len(items), inp.path, out, inp.error)
        key = _resolved(out)
        if item.error is None:
            if key in sources:
                item.error = f"its output {out} would overwrite an input file"
            elif key in claimed:
                item.error = f"its output {out} is also the output of {claimed[key]}; rename one of them"
            else:
                claimed[key] = inp.path
        items.append(item)
    return items, unmatched


# -- results and reports -------------------------------------------------------------------------


@dataclass
class FileResult:
    """What happened to one input of a job."""

    input: str
    output: str | None
    status: Status
    bytes_in: int | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    bpp: float | None = None
    psnr: float | None = None
    seconds: float | None = None
    error: str | None = None
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.traceback is None:
            out.pop("traceback")
        return out


@dataclass
class JobReport:
    """Everything a job did; written as JSON to ``report_path``."""

    operation: str
    output_dir: str
    report_path: str
    executor: str
    workers: int
    threads_per_worker: int
    parameters: dict[str, Any]
    started: str
    seconds: float = 0.0
    files: list[FileResult] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    interrupted: bool = False

    def _count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> int:
        return self._count("ok")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("error")

    @property
    def cancelled(self) -> int:
        return self._count("cancelled")

    def totals(self) -> dict[str, Any]:
        done = [f for f in self.files if f.status in ("ok", "skipped")]
        processed = [f for f in self.files if f.status == "ok"]
        pixels = sum((f.width or 0) * (f.height or 0) for f in done)
        bits_of = "bytes_in" if self.operation == "decompress" else "bytes"
        stream_bytes = sum(getattr(f, bits_of) or 0 for f in done)
        psnrs = [f.psnr for f in done if f.psnr is not None]
        return {
            "files": len(self.files),
            "ok": self.ok,
            "skipped": self.skipped,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "bytes_in": sum(f.bytes_in or 0 for f in done),
            "bytes_out": sum(f.bytes or 0 for f in done),
            "pixels": pixels,
            "bpp": stream_bytes * 8 / pixels if pixels else None,
            "mean_psnr": sum(psnrs) / len(psnrs) if psnrs else None,
            "files_per_second": len(processed) / self.seconds if self.seconds > 0 and processed else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "output_dir": self.output_dir,
            "executor": self.executor,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "parameters": self.parameters,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "totals": self.totals(),
            "unmatched_patterns": self.unmatched,
            "files": [f.to_dict() for f in self.files],
        }

    def summary(self) -> str:
        """One line: counts, sizes, rate, throughput, where the report is."""
        t = self.totals()
        parts = [f"{t['files']} files: {t['ok']} ok, {t['skipped']} skipped, {t['failed']} failed"]
        if t["cancelled"]:
            parts[0] += f", {t['cancelled']} not done"
        if t["bytes_in"] or t["bytes_out"]:
            parts.append(f"{_human(t['bytes_in'])} -> {_human(t['bytes_out'])}")
        if t["bpp"] is not None:
            parts.append(f"{t['bpp']:.3f} bpp")
        if t["mean_psnr"] is not None:
            parts.append(f"mean PSNR {t['mean_psnr']:.2f} dB")
        rate = f" ({t['files_per_second']:.2f} files/s)" if t["files_per_second"] else ""
        parts.append(f"{self.seconds:.1f} s{rate}")
        parts.append(f"report {self.report_path}")
        return "; ".join(parts)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


# -- progress ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a job stands (passed to the ``on_progress`` callback of :func:`run_job`)."""

    done: int
    total: int
    ok: int
    skipped: int
    failed: int
    elapsed: float
    rate: float | None
    eta: float | None
    last: str = ""


def _fmt_duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """A text progress bar with rate and ETA for ``stream`` (stderr): redrawn in place on a
    terminal, else a plain line at most every ``interval`` seconds (and at the end)."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 28, interval: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_emit = 0.0
        self._open = False

    def line(self, p: Progress) -> str:
        frac = p.done / p.total if p.total else 1.0
        filled = min(self.width, round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = f"{p.rate:.2f} files/s" if p.rate else "-- files/s"
        eta = f"ETA {_fmt_duration(p.eta)}" if p.eta is not None and p.done < p.total else ""
        fail = f" {p.failed} failed" if p.failed else ""
        return (
            f"[{bar}] {p.done}/{p.total} {frac * 100:3.0f}% {rate} "
            f"{_fmt_duration(p.elapsed)} {eta}{fail}".rstrip()
        )

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.done >= p.total
        if self.tty:
            if not final and now - self._last_emit < 0.1:
                return
            self.stream.write("\r\x1b[2K" + self.line(p))
            self._open = True
            if final:
                self.stream.write("\n")
                self._open = False
        else:
            if not final and now - self._last_emit < self.interval:
                return
            self.stream.write(self.line(p) + "\n")
        self._last_emit = now
        self.stream.flush()

    def close(self) -> None:
        """End a bar left open (interrupted job)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


# -- what workers run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs before its first task (sent once per worker)."""

    token: str
    config: Config
    models: tuple[Any, ...]  # ModelSpecs registered in the job's process
    warm: tuple[str, ...]  # model names whose sessions are built up front
    decoders: bool  # also build decoder sessions
    job_pid: int = 0  # the job's process (local workers exit when it dies)


@dataclass(frozen=True)
class Task:
    """One file's work: the input bytes travel with it, the output bytes come back."""

    index: int
    name: str
    data: bytes
    operation: str
    quality: float | None
    target_bpp: float | None
    model: str
    output_format: str


@dataclass(frozen=True)
class TaskResult:
    """What a worker sends back; ``output`` is None when the file failed."""

    index: int
    output: bytes | None
    width: int = 0
    height: int = 0
    psnr: float | None = None
    seconds: float = 0.0
    error: str | None = None
    traceback: str | None = None


_worker_token: str | None = None
_worker_lock = threading.Lock()


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process took the pid
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc: trust kill()
        return True
    return state not in ("Z", "X", "x")


def _watch_job(pid: int) -> None:
    """Exit when the job's process dies, so a killed job leaves no orphan workers behind.

    (Forkserver workers are children of the fork server, which lives as long as they do, so the
    parent pid alone does not tell.)
    """

    if not pid or sys.platform == "win32":  # os.kill(pid, 0) would terminate it on Windows
        return

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if not _process_alive(pid):
                os._exit(1)

    threading.Thread(target=watch, name="vaerans-job-watch", daemon=True).start()


def init_worker(setup: WorkerSetup, *, pool_worker: bool = True) -> None:
    """Install ``setup`` in this process: configuration, models, and the onnxruntime sessions.

    Everything a file needs that does not depend on the file is done here, once per worker, so
    that per-file work (and the per-file ``seconds`` of the report) is the file's own:

    * the sessions of the ``warm`` models are built with the job's intra-op thread count;
    * the codec modules are imported (else the first file of every worker pays ~1 s of imports);
    * in a pool worker (a process that lives for one job), the resolved specs of the ``warm`` models
      are registered, so the several ``get_model`` calls of every file hit the registry instead of
      scanning the model folders and re-reading the spec (~1.5 ms each). Not in Dask workers,
      which outlive the job: a pinned spec would shadow a later job's ``[models.NAME]``.
    """
    global _worker_token
    import vaerans_ecs.api  # noqa: F401  (import cost paid here, not by the first file)
    from vaerans_ecs.models import get_model, register_model
    from vaerans_ecs.runtime import get_session

    if pool_worker:
        with contextlib.suppress(ValueError):  # not the main thread: Ctrl-C is the job's to handle
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        _watch_job(setup.job_pid)
    set_config(setup.config)
    for spec in setup.models:
        register_model(spec, replace_existing=True)
    threads = setup.config.runtime.intra_op_threads
    for name in setup.warm:
        try:
            spec = get_model(name)
            get_session(spec.encoder, None, threads)
            if setup.decoders:
                get_session(spec.decoder, None, threads)
            if pool_worker and spec.name == name:
                register_model(spec, replace_existing=True)
        except VaeransError as exc:  # the tasks will report it, file by file
            log.warning("worker cannot prepare model %r: %s", name, exc)
    with contextlib.suppress(ImportError):
        from PIL import Image

        Image.init()  # registers every format plugin once, instead of on the first file
    _worker_token = setup.token


def run_task(task: Task) -> TaskResult:
    """Do one file's work (in a worker); never raises for a bad file."""
    from vaerans_ecs import api

    start = time.perf_counter()
    try:
        if task.operation == "decompress":
            try:
                image = api.decompress(task.data)
            except BitstreamError as exc:
                raise BitstreamError(f"not a valid vaerans stream: {exc}") from None
            out = image_to_bytes(image, task.output_format)
            h, w = image.shape[:2]
            score = None
        else:
            image = image_from_bytes(task.data)
            h, w = image.shape[:2]
            out = api.compress(image, task.quality, task.model, target_bpp=task.target_bpp)
            score = psnr(image, api.decompress(out)) if task.operation == "roundtrip-eval" else None
    except Exception as exc:
        message = str(exc) if isinstance(exc, VaeransError) else f"{type(exc).__name__}: {exc}"
        return TaskResult(
            task.index, None, seconds=time.perf_counter() - start, error=message, traceback=traceback.format_exc()
        )
    return TaskResult(task.index, out, w, h, score, time.perf_counter() - start)


def run_task_with(setup: WorkerSetup, task: Task) -> TaskResult:
    """``run_task`` that first installs ``setup`` when this process has not got it (Dask workers)."""
    if _worker_token != setup.token:
        with _worker_lock:
            if _worker_token != setup.token:
                init_worker(setup, pool_worker=False)
    return run_task(task)


# -- executors -----------------------------------------------------------------------------------


class Runner(Protocol):
    """What the job loop needs from an executor (a process pool or a Dask client)."""

    in_flight: int

    def submit(self, task: Task) -> Any: ...

    def wait_any(self, futures: Collection[Any]) -> Collection[Any]: ...

    def result(self, future: Any) -> TaskResult: ...

    def restart(self) -> bool: ...

    def close(self, cancel: bool) -> None: ...


class _LocalRunner:
    def __init__(self, setup: WorkerSetup, workers: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._setup = setup
        self._workers = workers
        self._restarts = 0
        self.in_flight = 2 * workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers, mp_context=self._ctx, initializer=init_worker, initargs=(self._setup,)
        )

    def submit(self, task: Task) -> Future[TaskResult]:
        return self._pool.submit(run_task, task)

    def wait_any(self, futures: Collection[Any]) -> Collection[Any]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return done

    def result(self, future: Any) -> TaskResult:
        res: TaskResult = future.result()
        return res

    def restart(self) -> bool:
        if self._restarts >= _MAX_POOL_RESTARTS:
            return False
        self._restarts += 1
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        return True

    def close(self, cancel: bool) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


# -- the manifest --------------------------------------------------------------------------------


class _Manifest:
    """Append-only JSON-lines journal of finished outputs (last record per output wins)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._fd: int | None = None

    def load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        for line in raw.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn or foreign line: that output is simply redone
            if isinstance(entry, dict) and entry.get("v") == _MANIFEST_VERSION and isinstance(entry.get("output"), str):
                self.entries[entry["output"]] = entry

    def compact(self) -> None:
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in self.entries.values())
        write_atomic(self.path, text.encode())

    def record(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.entries[entry["output"]] = entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def _job_lock(out_dir: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VaeransError(f"another job is writing to {out_dir} right now") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _using_config(cfg: Config) -> Iterator[None]:
    try:
        previous: Config | None = get_config()
    except ConfigError:
        previous = None
    set_config(cfg)
    try:
        yield
    finally:
        set_config(previous)


def _clean_temps(folders: set[Path]) -> None:
    for folder in folders:
        if not folder.is_dir():
            continue
        for stale in folder.glob(f".*{TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                stale.unlink()


# -- running a job -------------------------------------------------------------------------------


def _stat_input(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def run_job(
    job: JobConfig,
    *,
    config: Config | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    restart: bool = False,
) -> JobReport:
    """Run a batch job and return its report (also written to ``job.report``, default ``<output_dir>/report.json``).

    ``config`` is the configuration for the codec (default: the process configuration; see
    :func:`load_job`). ``on_progress`` is called after every file. ``restart=True`` ignores the
    manifest of earlier runs (existing outputs then need ``overwrite``). Errors of single files
    are in the report; errors of the job itself (bad model, unwritable output folder, output
    format Pillow cannot write) raise :class:`VaeransError`. On ``KeyboardInterrupt`` the running
    files finish, the report is written (``interrupted``) and the interrupt is re-raised.

    Local workers are started with the ``forkserver`` method (``spawn`` where there is none), so a
    script calling this must keep its top-level code under ``if __name__ == "__main__":``.
    """
    cfg = config if config is not None else get_config()
    with _using_config(cfg):
        return _run_job(job, cfg, on_progress, restart)


def _job_parameters(job: JobConfig, cfg: Config) -> tuple[dict[str, Any], str, str]:
    """Parameters that decide the output bytes, the resolved model name, and the output extension."""
    from vaerans_ecs import __version__
    from vaerans_ecs.models import choose_model

    if job.operation == "decompress":
        fmt, ext = pillow_save_format(job.output_format)
        return {"operation": job.operation, "output_format": fmt, "version": __version__}, "", ext
    quality = None if job.target_bpp is not None else (job.quality or cfg.codec.quality)
    spec, _ = choose_model(job.model or "default", quality=quality, target_bpp=job.target_bpp)
    params: dict[str, Any] = {
        "operation": job.operation,
        "version": __version__,
        "model": spec.name,
        "fingerprint": spec.fingerprint,
        "quality": quality,
        "target_bpp": job.target_bpp,
        "wavelet": cfg.codec.wavelet,
        "levels": cfg.codec.levels,
        "coder": cfg.codec.coder,
    }
    return params, spec.name, ".vae"


def _run_job(
    job: JobConfig, cfg: Config, on_progress: Callable[[Progress], None] | None, restart: bool
) -> JobReport:
    from vaerans_ecs.models import get_model, model_names

    params, model_name, ext = _job_parameters(job, cfg)
    params_key = _sha256(json.dumps(params, sort_keys=True).encode())[:16]
    out_dir = _resolved(Path(job.output_dir))
    report_path = _resolved(Path(job.report)) if job.report is not None else out_dir / REPORT_NAME
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VaeransError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    workers = job.workers
    threads = cfg.runtime.intra_op_threads
    worker_cfg = cfg
    if threads == 0 and (job.executor == "local" or job.scheduler is None):
        threads = max(1, _available_cores() // workers)
        worker_cfg = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"intra_op_threads": threads})})

    report = JobReport(
        operation=job.operation,
        output_dir=str(out_dir),
        report_path=str(report_path),
        executor=job.executor,
        workers=workers,
        threads_per_worker=threads,
        parameters=params,
        started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    items: list[_Item] = []
    results: dict[int, FileResult] = {}
    start = time.monotonic()
    done_now = 0
    written = 0

    def progress(last: str) -> None:
        if on_progress is None:
            return
        finished = list(results.values())
        ok = sum(1 for r in finished if r.status == "ok")
        elapsed = time.monotonic() - start
        rate = done_now / elapsed if done_now and elapsed > 0 else None
        remaining = len(items) - len(finished)
        eta = remaining / rate if rate else None
        on_progress(
            Progress(
                len(finished), len(items), ok, sum(1 for r in finished if r.status == "skipped"),
                sum(1 for r in finished if r.status == "error"), elapsed, rate, eta, last,
            )
        )

    def fail(item: _Item, message: str, tb: str | None = None, size: int | None = None) -> None:
        results[item.index] = FileResult(
            str(item.input), str(item.output) if item.output else None, "error", bytes_in=size, error=message,
            traceback=tb,
        )

    with _job_lock(out_dir):
        manifest = _Manifest(out_dir / MANIFEST_NAME)
        if not restart:
            manifest.load()
        items, unmatched = _plan(job, ext, report_path, {_resolved(out_dir / rel) for rel in manifest.entries})
        report.unmatched = unmatched
        for pattern in unmatched:
            log.warning("job input %s matched no file", pattern)
        _clean_temps({item.output.parent for item in items if item.output is not None})
        todo: list[tuple[_Item, int, int]] = []
        for item in items:
            assert item.output is not None
            if item.error is not None:
                fail(item, item.error)
                continue
            try:
                size, mtime = _stat_input(item.input)
            except OSError as exc:
                fail(item, f"cannot read: {exc.strerror or exc}")
                continue
            rel = item.output.relative_to(out_dir).as_posix()
            entry = manifest.entries.get(rel)
            if entry is not None and _still_valid(entry, item, size, mtime, params_key):
                results[item.index] = FileResult(
                    str(item.input), str(item.output), "skipped", size, entry["size"], entry.get("width"),
                    entry.get("height"), entry.get("bpp"), entry.get("psnr"), entry.get("seconds"),
                )
                continue
            if item.output.exists() and entry is None and not job.overwrite:
                fail(item, f"output {item.output} exists (set overwrite = true to replace it)", size=size)
                continue
            todo.append((item, size, mtime))
        if not restart:
            manifest.entries = {k: v for k, v in manifest.entries.items() if (out_dir / k).exists()}
            manifest.compact()
        else:
            manifest.entries = {}
            manifest.compact()
        progress("")

        kill_after = int(os.environ.get(KILL_AFTER_ENV, "0") or 0)

        def finish(item: _Item, size: int, mtime: int, res: TaskResult) -> None:
            nonlocal done_now, written
            assert item.output is not None
            done_now += 1
            if res.output is None:
                fail(item, res.error or "failed", res.traceback, size)
                log.info("%s failed: %s", item.input, res.error)
                return
            pixels = max(1, res.width * res.height)
            stream_bytes = size if job.operation == "decompress" else len(res.output)
            bpp = stream_bytes * 8 / pixels
            tmp: Path | None = None
            try:
                tmp = _write_temp(item.output, res.output)
                manifest.record(
                    {
                        "v": _MANIFEST_VERSION,
                        "output": item.output.relative_to(out_dir).as_posix(),
                        "size": len(res.output),
                        "sha256": _sha256(res.output),
                        "input": str(_resolved(item.input)),
                        "input_size": size,
                        "input_mtime_ns": mtime,
                        "params": params_key,
                        "width": res.width,
                        "height": res.height,
                        "bpp": bpp,
                        "psnr": res.psnr,
                        "seconds": round(res.seconds, 4),
                    }
                )
                os.replace(tmp, item.output)
            except OSError as exc:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                fail(item, f"cannot write {item.output}: {exc.strerror or exc}", size=size)
                return
            results[item.index] = FileResult(
                str(item.input), str(item.output), "ok", size, len(res.output), res.width, res.height, bpp,
                res.psnr, round(res.seconds, 4),
            )
            written += 1
            if kill_after and written >= kill_after:
                _die()

        registered = tuple(get_model(n) for n, s in model_names().items() if s == "registered")
        setup = WorkerSetup(
            token=uuid.uuid4().hex,
            config=worker_cfg,
            models=registered,
            warm=(model_name,) if model_name else (),
            decoders=job.operation == "roundtrip-eval",
            job_pid=os.getpid(),
        )
        fmt = str(params.get("output_format", ""))
        try:
            if todo:
                runner = _make_runner(job, setup, workers)
                try:
                    # workers get the requested name: "default" picks its model (and step) per request
                    _drive(runner, todo, job, job.model or "default", fmt, finish, fail, progress)
                except BaseException:
                    runner.close(cancel=True)
                    raise
                runner.close(cancel=False)
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            manifest.close()
            for item in items:
                if item.index not in results:
                    results[item.index] = FileResult(
                        str(item.input), str(item.output), "cancelled", error="the job was interrupted"
                    )
            report.seconds = time.monotonic() - start
            report.files = [results[i] for i in sorted(results)]
            _write_report(report, report_path)
    return report


def _still_valid(entry: dict[str, Any], item: _Item, size: int, mtime: int, params_key: str) -> bool:
    assert item.output is not None
    if (
        entry.get("params") != params_key
        or entry.get("input") != str(_resolved(item.input))
        or entry.get("input_size") != size
        or entry.get("input_mtime_ns") != mtime
    ):
        return False
    try:
        if item.output.stat().st_size != entry.get("size"):
            return False
        return _file_sha256(item.output) == entry.get("sha256")
    except OSError:
        return False


def _die() -> None:
    log.warning("%s reached: killing the job process (test hook)", KILL_AFTER_ENV)
    sys.stderr.flush()
    sig = getattr(signal, "SIGKILL", None)
    if sig is not None:
        os.kill(os.getpid(), sig)
    os._exit(137)  # pragma: no cover - platforms without SIGKILL


def _write_report(report: JobReport, path: Path) -> None:
    try:
        write_atomic(path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    except OSError as exc:
        log.error("cannot write the job report %s: %s", path, exc.strerror or exc)


def _make_runner(job: JobConfig, setup: WorkerSetup, workers: int) -> Runner:
    if job.executor == "dask":
        from vaerans_ecs.batch_dask import DaskRunner

        return DaskRunner(setup, workers, job.scheduler)
    return _LocalRunner(setup, workers)


_DIED = "a worker process died while this file was in flight (rerun the job to retry)"
_NO_START = (
    "the worker processes died before finishing any file; when run_job is called from a script, "
    "the script must guard its code with 'if __name__ == \"__main__\":' (worker processes import it)"
)


def _drive(
    runner: Runner,
    todo: Sequence[tuple[_Item, int, int]],
    job: JobConfig,
    model: str,
    fmt: str,
    finish: Callable[[_Item, int, int, TaskResult], None],
    fail: Callable[..., None],
    progress: Callable[[str], None],
) -> None:
    """Keep ``runner.in_flight`` tasks running; hand each result to ``finish`` as it arrives.

    When a local worker process dies (the pool is broken), the files in flight are reported as
    failed, the pool is restarted (a few times at most) and the rest goes on.
    """
    queue = collections.deque(todo)
    running: dict[Any, tuple[_Item, int, int]] = {}
    broken = False
    finished_any = False

    def submit_more() -> bool:
        """Fill the pipeline; False when the pool turned out to be broken."""
        while len(running) < runner.in_flight and queue:
            item, size, _ = queue[0]
            try:
                data = item.input.read_bytes()
            except OSError as exc:
                queue.popleft()
                fail(item, f"cannot read: {exc.strerror or exc}", size=size)
                progress(str(item.input))
                continue
            task = Task(item.index, str(item.input), data, job.operation, job.quality, job.target_bpp, model, fmt)
            try:
                future = runner.submit(task)
            except BrokenProcessPool:
                return False
            running[future] = queue.popleft()
        return True

    broken = not submit_more()
    while running or (broken and queue):
        for future in runner.wait_any(list(running)) if running else ():
            item, size, mtime = running.pop(future)
            try:
                res = runner.result(future)
            except BrokenProcessPool:
                broken = True
                fail(item, _DIED if finished_any else _NO_START, size=size)
            except Exception as exc:
                fail(item, f"the worker failed: {type(exc).__name__}: {exc}", traceback.format_exc(), size)
            else:
                finished_any = True
                finish(item, size, mtime, res)
            progress(str(item.input))
        if broken:
            if running:
                continue  # let every task of the dead pool report first
            if not runner.restart():
                while queue:
                    item, size, _ = queue.popleft()
                    fail(item, "not processed: worker processes kept dying", size=size)
                    progress(str(item.input))
                return
            log.warning("a worker process died; restarted the worker pool")
            broken = False
        broken = not submit_more()
