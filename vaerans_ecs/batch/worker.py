"""What a job's worker processes run: one-time setup (:func:`init_worker`) and one file per task.

A task carries the input's bytes and returns the output's bytes, so workers never touch the job's
files. Workers get the job's configuration explicitly (:class:`WorkerSetup`); a local pool worker
lives for one job only, so it also installs that configuration as its process default for the
parts of the codec that still read the process configuration. The job's own process never does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from vaerans_ecs.config import Config, get_config
from vaerans_ecs.errors import BitstreamError, VaeransError

__all__ = [
    "Task",
    "TaskResult",
    "WorkerSetup",
    "choose_job_model",
    "init_worker",
    "mp_context",
    "run_task",
    "run_task_with",
]

log = logging.getLogger(__name__)


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
    lossless: bool = False
    max_error: int | None = None
    output_quality: float | None = None
    #: compress-sequence of a folder: its frames in order (``name`` is the folder; ``data`` is empty)
    frames: tuple[str, ...] = ()


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
    frames: int = 1


_setup: WorkerSetup | None = None
_setup_lock = threading.Lock()


def mp_context() -> Any:
    """``forkserver`` where there is one, else ``spawn`` (never ``fork``: onnxruntime holds threads)."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


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
      scanning the model folders and re-reading the spec. Not in Dask workers, which outlive the
      job: a pinned spec would shadow a later job's ``[models.NAME]``.
    """
    global _setup
    from vaerans_ecs.models import get_model, register_model
    from vaerans_ecs.runtime import get_session

    if pool_worker:
        with contextlib.suppress(ValueError):  # not the main thread: Ctrl-C is the job's to handle
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        _watch_job(setup.job_pid)
    for spec in setup.models:
        register_model(spec, replace_existing=True)
    threads = setup.config.runtime.intra_op_threads
    for name in setup.warm:
        try:
            spec = get_model(name, config=setup.config)
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
    _setup = setup


def _work(task: Task) -> tuple[bytes, int, int, float | None]:
    from vaerans_ecs import api
    from vaerans_ecs.imaging import encode_image, load_source

    cfg = _setup.config if _setup is not None else get_config()
    if task.operation == "decompress":
        try:
            pixels = api.decompress(task.data, config=cfg)
            meta = api.stream_meta(api.inspect(task.data, config=cfg))
        except BitstreamError as exc:
            raise BitstreamError(f"not a valid vaerans stream: {exc}") from None
        h, w = pixels.shape[:2]
        return encode_image(pixels, meta, task.output_format, quality=task.output_quality), w, h, None
    source = load_source(task.data, max_pixels=cfg.runtime.max_pixels)
    h, w = source.height, source.width
    out = api.compress(
        source, task.quality, task.model, target_bpp=task.target_bpp, lossless=task.lossless,
        max_error=task.max_error, config=cfg,
    )
    if task.operation != "roundtrip-eval":
        return out, w, h, None
    from vaerans_ecs.encoder import to_8bit
    from vaerans_ecs.systems.metrics import psnr

    decoded = api.decompress(out, config=cfg).reshape(source.pixels.shape)
    exact = task.lossless or task.max_error is not None
    return out, w, h, psnr(source.pixels if exact else to_8bit(source.pixels), decoded)


def run_task(task: Task) -> TaskResult:
    """Do one file's work (in a worker); never raises for a bad file."""
    start = time.perf_counter()
    frames = 1
    try:
        if task.operation == "compress-sequence":
            from vaerans_ecs.batch.sequences import encode_sequence

            settings = {"quality": task.quality, "target_bpp": task.target_bpp, "lossless": task.lossless,
                        "max_error": task.max_error or 0, "model": task.model}
            cfg = _setup.config if _setup is not None else get_config()
            out, w, h, frames = encode_sequence(task.name, task.frames, settings, cfg)
            score = None
        else:
            out, w, h, score = _work(task)
    except Exception as exc:
        message = str(exc) if isinstance(exc, VaeransError) else f"{type(exc).__name__}: {exc}"
        return TaskResult(
            task.index, None, seconds=time.perf_counter() - start, error=message, traceback=traceback.format_exc()
        )
    return TaskResult(task.index, out, w, h, score, time.perf_counter() - start, frames=frames)


def run_task_with(setup: WorkerSetup, task: Task) -> TaskResult:
    """``run_task`` that first installs ``setup`` when this process has not got it (Dask workers)."""
    if _setup is None or _setup.token != setup.token:
        with _setup_lock:
            if _setup is None or _setup.token != setup.token:
                init_worker(setup, pool_worker=False)
    return run_task(task)


# -- which model a job runs ------------------------------------------------------------------------


def choose_job_model(name: str, quality: float | None, target_bpp: float | None, config: Config) -> tuple[str, str]:
    """``(model name, decoder fingerprint)`` that ``name`` means under ``config`` (this process's
    configuration is never touched)."""
    from vaerans_ecs.models import choose_model

    spec, _ = choose_model(name, quality=quality, target_bpp=target_bpp, config=config)
    return spec.name, spec.fingerprint
