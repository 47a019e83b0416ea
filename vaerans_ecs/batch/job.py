"""Running a job: :func:`load_job` reads a job file, :func:`run_job` runs it through a :class:`Job`.

Which files a job may replace: its own, never others. A file is the job's own when

* a valid journal record (:mod:`vaerans_ecs.batch.manifest`) holds its exact size and SHA-256, or
* its bytes are exactly what the job produces for that input now (then it is left untouched and
  recorded; the codec is deterministic, so a job whose journal was lost still recognises its outputs);
* for the report: it is a JSON report of a job writing to the same output folder.

Any other existing file is the user's: with ``overwrite = false`` it is left as it is and that
input fails. No file that is also an input is ever replaced, whatever ``overwrite`` says: the job
fails before any work when the report would replace an input or a user's file. Whether an output
may be replaced is decided again when it is published (no-clobber :func:`vaerans_ecs.fileio.publish`),
so a file that appeared meanwhile is never replaced without ``overwrite = true``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from vaerans_ecs.batch.inputs import expand_inputs, resolved
from vaerans_ecs.batch.lock import LOCK_NAME, lock_outputs
from vaerans_ecs.batch.manifest import Manifest, ManifestRecord
from vaerans_ecs.batch.plan import Item, plan_items
from vaerans_ecs.batch.progress import Progress
from vaerans_ecs.batch.report import REPORT_KEY, FileResult, JobReport
from vaerans_ecs.batch.runners import drive, make_runner
from vaerans_ecs.batch.sequences import OPERATION as SEQUENCE_OPERATION
from vaerans_ecs.batch.sequences import group_sequences, source_stat
from vaerans_ecs.batch.worker import Task, TaskResult, WorkerSetup, choose_job_model
from vaerans_ecs.config import Config, JobConfig, get_config
from vaerans_ecs.errors import ConfigError, VaeransError
from vaerans_ecs.fileio import TMP_SUFFIX, file_sha256, pillow_save_format, publish, write_temp

__all__ = ["KILL_AFTER_ENV", "REPORT_NAME", "Job", "job_parameters", "run_job"]

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"
#: Test hook: the job process SIGKILLs itself after publishing this many outputs (simulates a crash).
KILL_AFTER_ENV = "VAERANS_BATCH_KILL_AFTER"
#: A report file larger than this is not read to tell whether it is a job's report.
MAX_REPORT_READ = 256 << 20

#: How an output may be published: "new" (nothing there), "ours" (the job's, replace it), "replace"
#: (someone else's, overwrite = true), "same" (someone else's: keep it unless it is what we produce).
Mode = Literal["new", "ours", "replace", "same"]


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_parameters(job: JobConfig, cfg: Config) -> tuple[dict[str, Any], str, str]:
    """Parameters that decide the output bytes, the resolved model name, and the output extension."""
    from vaerans_ecs import __version__

    if job.operation == "decompress":
        from vaerans_ecs.imaging import is_lossy_format

        fmt, ext = pillow_save_format(job.output_format)
        lossy = is_lossy_format(fmt)
        if lossy != (job.output_quality is not None):
            need = "is lossy: give output_quality (1..100)" if lossy else "is lossless: output_quality does not apply"
            raise ConfigError(f"[job] output_format {job.output_format!r} {need}")
        params = {"operation": job.operation, "output_format": fmt, "output_quality": job.output_quality,
                  "version": __version__}
        return params, "", ext
    exact = job.lossless or job.max_error is not None
    quality = None if job.target_bpp is not None or exact else (job.quality or cfg.codec.quality)
    name, fingerprint = choose_job_model(job.model or "default", quality, job.target_bpp, cfg)
    params = {
        "operation": job.operation,
        "version": __version__,
        "model": name,
        "fingerprint": fingerprint,
        "quality": quality,
        "target_bpp": job.target_bpp,
        "lossless": job.lossless,
        "max_error": job.max_error,
        "wavelet": cfg.codec.wavelet,
        "levels": cfg.codec.levels,
        "coder": cfg.codec.coder,
    }
    return params, name, ".vae"


def is_job_report(path: Path, out_dir: Path) -> bool:
    """True when ``path`` is a JSON report of a job writing to ``out_dir`` (so a job may replace it)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_REPORT_READ:
            return False
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(doc, dict) or doc.get("output_dir") != str(out_dir):
        return False
    return doc.get(REPORT_KEY) == 1 or {"operation", "totals", "files", "parameters"} <= doc.keys()


def _die() -> None:
    log.warning("%s reached: killing the job process (test hook)", KILL_AFTER_ENV)
    sys.stderr.flush()
    sig = getattr(signal, "SIGKILL", None)
    if sig is not None:
        os.kill(os.getpid(), sig)
    os._exit(137)  # pragma: no cover - platforms without SIGKILL


def run_job(
    job: JobConfig,
    *,
    config: Config | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    restart: bool = False,
) -> JobReport:
    """Run a batch job and return its report (also written to ``job.report``, default ``<output_dir>/report.json``).

    ``config`` is the configuration for the codec (default: the process configuration; see
    :func:`load_job`); it goes to the workers explicitly and this process's configuration is
    never changed. ``on_progress`` is called after every file. ``restart=True`` ignores the
    journal of earlier runs (existing outputs are then kept unless identical or ``overwrite``).
    Errors of single files are in the report; errors of the job itself (bad model, unwritable
    output folder, a report path that is an input or a user's file, another job writing to the
    same output tree) raise :class:`VaeransError`. On ``KeyboardInterrupt`` the running files
    finish, the report is written (``interrupted``) and the interrupt is re-raised.

    Local workers are started with the ``forkserver`` method (``spawn`` where there is none), so a
    script calling this must keep its top-level code under ``if __name__ == "__main__":``.
    """
    return Job(job, config if config is not None else get_config(), on_progress=on_progress, restart=restart).run()


class Job:
    """One run of a job: plan, decide what each output may replace, run the tasks, publish, report."""

    def __init__(
        self,
        job: JobConfig,
        config: Config,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        restart: bool = False,
    ) -> None:
        self.job = job
        self.config = config
        self.on_progress = on_progress
        self.restart = restart
        self.params, self.model_name, self.ext = job_parameters(job, config)
        self.params_key = _sha256(json.dumps(self.params, sort_keys=True).encode())[:16]
        self.out_dir = resolved(Path(job.output_dir))
        self.report_path = resolved(Path(job.report)) if job.report is not None else self.out_dir / REPORT_NAME
        self.threads = config.runtime.intra_op_threads
        self.worker_config = config
        if self.threads == 0 and (job.executor == "local" or job.scheduler is None):
            self.threads = max(1, _available_cores() // job.workers)
            runtime = config.runtime.model_copy(update={"intra_op_threads": self.threads})
            self.worker_config = config.model_copy(update={"runtime": runtime})
        self.report = JobReport(
            operation=job.operation,
            output_dir=str(self.out_dir),
            report_path=str(self.report_path),
            executor=job.executor,
            workers=job.workers,
            threads_per_worker=self.threads,
            parameters=self.params,
            started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        self.manifest = Manifest(self.out_dir)
        self.items: list[Item] = []
        self.results: dict[int, FileResult] = {}
        self.modes: dict[int, Mode] = {}
        self.stats: dict[int, tuple[int, int]] = {}
        self.frames: dict[Path, tuple[str, ...]] = {}  # compress-sequence: the frames of each folder
        self.report_mode: Mode | None = None  # None: the report may not be written
        self._started = time.monotonic()
        self._done_now = 0
        self._published = 0
        self._kill_after = int(os.environ.get(KILL_AFTER_ENV, "0") or 0)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> JobReport:
        """Run the job (see :func:`run_job`)."""
        for folder in (self.out_dir, self.report_path.parent):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise VaeransError(f"cannot create folder {folder}: {exc.strerror or exc}") from None
        with lock_outputs(self.out_dir, [self.report_path.parent]):
            try:
                self._prepare()
                self._progress("")
                self._execute()
            except KeyboardInterrupt:
                self.report.interrupted = True
                raise
            except VaeransError as exc:
                self.report.error = str(exc)
                raise
            finally:
                self.manifest.close()
                self._write_report()
        return self.report

    def _prepare(self) -> None:
        """Inputs, the report's fate, the journal, and the plan: what to do with every input."""
        found, self.report.unmatched = expand_inputs(self.job.inputs)
        if self.job.operation == SEQUENCE_OPERATION:
            found, frames = group_sequences(found)
            self.frames = {resolved(folder): names for folder, names in frames.items()}
        for pattern in self.report.unmatched:
            log.warning("job input %s matched no file", pattern)
        self._check_report({resolved(f.path) for f in found})
        self.manifest.load(records=not self.restart)
        reserved = {self.manifest.path, self.out_dir / LOCK_NAME}
        if self.report_mode == "ours":
            reserved.add(self.report_path)
        self.items, _ = plan_items(found, self.out_dir, self.ext, reserved, self._done_by)
        outputs = {resolved(i.output): i for i in self.items if i.error is None}
        if self.report_path in outputs:
            self.report_mode = None
            raise VaeransError(
                f"the report {self.report_path} would be the output of {outputs[self.report_path].input}; "
                "set report = another path"
            )
        self._clean_temps()
        for item in self.items:
            self._classify(item)
        self.manifest.keep_only(self._kept_records())

    def _check_report(self, inputs: set[Path]) -> None:
        """Decide whether the report may be written (else fail now, before any work)."""
        path = self.report_path
        if path in (self.manifest.path, self.out_dir / LOCK_NAME) or path.is_dir():
            raise VaeransError(f"the report cannot be written to {path}; set report = a file path")
        if not os.path.lexists(path):
            self.report_mode = "new"
            return
        if is_job_report(path, self.out_dir):
            self.report_mode = "ours"
        elif path in inputs:
            raise VaeransError(f"the report {path} is one of the job's inputs; set report = another path")
        elif self.job.overwrite:
            self.report_mode = "replace"
        else:
            raise VaeransError(
                f"the report {path} exists and is not the report of a job writing to {self.out_dir}; "
                "it was left as it is: set report = another path"
            )

    def _done_by(self, path: Path, producers: set[Path]) -> bool:
        """Whether ``path`` is an output this job wrote from one of ``producers`` and will skip."""
        try:
            rel = path.relative_to(self.out_dir).as_posix()
        except ValueError:
            return False
        record = self.manifest.owned(rel)
        return record is not None and any(self._fresh(record, src) for src in producers)

    def _fresh(self, record: ManifestRecord, src: Path) -> bool:
        """Whether ``record`` is what this job would write now from the input ``src``."""
        try:
            stat = self._stat(src)
        except OSError:
            return False
        return record.params == self.params_key and record.input == str(src) and (
            record.input_size, record.input_mtime_ns) == stat

    def _stat(self, src: Path) -> tuple[int, int]:
        """(size, mtime in ns) of an input: a file's, or the total and newest of a folder's frames."""
        frames = self.frames.get(src, ())
        if frames or self.job.operation == SEQUENCE_OPERATION:
            return source_stat(src, frames)
        st = src.stat()
        return st.st_size, st.st_mtime_ns

    def _classify(self, item: Item) -> None:
        """Skip, fail, or schedule ``item`` with the way its output may be published."""
        if item.error is not None:
            self._fail(item, item.error)
            return
        src = resolved(item.input)
        try:
            self.stats[item.index] = self._stat(src)
        except OSError as exc:
            self._fail(item, f"cannot read: {exc.strerror or exc}")
            return
        size = self.stats[item.index][0]
        record = self.manifest.owned(item.rel)
        if record is not None and self._fresh(record, src):
            self.results[item.index] = FileResult(
                str(item.input), str(item.output), "skipped", size, record.size, record.width,
                record.height, record.bpp, record.psnr, record.seconds,
            )
        elif item.output.is_dir():
            self._fail(item, f"its output {item.output} is a folder", size=size)
        elif record is not None:
            self.modes[item.index] = "ours"
        elif os.path.lexists(item.output):
            self.modes[item.index] = "replace" if self.job.overwrite else "same"
        else:
            self.modes[item.index] = "new"

    def _kept_records(self) -> set[str]:
        """Journal records worth keeping: those of outputs that exist with the recorded size."""
        kept = set()
        for rel, record in self.manifest.records.items():
            try:
                if (self.out_dir / rel).stat().st_size == record.size:
                    kept.add(rel)
            except OSError:
                pass
        return kept

    def _clean_temps(self) -> None:
        """Remove temporary files an interrupted run left in the output folders."""
        for folder in {item.output.parent for item in self.items}:
            if folder.is_dir():
                for stale in folder.glob(f".*{TMP_SUFFIX}"):
                    with contextlib.suppress(OSError):
                        stale.unlink()

    def _execute(self) -> None:
        """Run the scheduled items on the job's executor."""
        todo = [item.index for item in self.items if item.index in self.modes]
        if not todo:
            return
        from vaerans_ecs.models import get_model, model_names

        setup = WorkerSetup(
            token=uuid.uuid4().hex,
            config=self.worker_config,
            models=tuple(get_model(n) for n, s in model_names().items() if s == "registered"),
            warm=(self.model_name,) if self.model_name else (),
            decoders=self.job.operation == "roundtrip-eval",
            job_pid=os.getpid(),
        )
        runner = make_runner(self.job.executor, setup, self.job.workers, self.job.scheduler)
        try:
            drive(runner, todo, self, self._progress)
        except BaseException:
            runner.close(cancel=True)
            raise
        runner.close(cancel=False)

    # -- what drive() calls (TaskSink) -------------------------------------------------------------

    def task_for(self, key: int) -> Task | None:
        """The task of item ``key``: its input's bytes and the job's settings."""
        item = self.items[key]
        job = self.job
        if job.operation == SEQUENCE_OPERATION:  # the worker reads the frames itself, one at a time
            return Task(key, str(item.input), b"", job.operation, job.quality, job.target_bpp, job.model or "default",
                        "", lossless=job.lossless, max_error=job.max_error,
                        frames=self.frames.get(resolved(item.input), ()))
        try:
            data = item.input.read_bytes()
        except OSError as exc:
            self._fail(item, f"cannot read: {exc.strerror or exc}")
            return None
        # workers get the requested name: "default" picks its model (and step) per request
        model = job.model or "default"
        fmt = str(self.params.get("output_format", ""))
        return Task(
            key, str(item.input), data, job.operation, job.quality, job.target_bpp, model, fmt,
            lossless=job.lossless, max_error=job.max_error, output_quality=job.output_quality,
        )

    def failed(self, key: int, message: str, tb: str | None = None) -> None:
        """A task that did not come back (dead worker, executor error)."""
        self._done_now += 1
        self._fail(self.items[key], message, tb)

    def finished(self, key: int, res: TaskResult) -> None:
        """A task's result: publish its output (or record why it failed)."""
        item = self.items[key]
        self._done_now += 1
        size, mtime = self.stats[key]
        if res.output is None:
            self._fail(item, res.error or "failed", res.traceback)
            log.info("%s failed: %s", item.input, res.error)
            return
        stream_bytes = size if self.job.operation == "decompress" else len(res.output)
        bpp = stream_bytes * 8 / max(1, res.width * res.height * res.frames)
        fields = {
            "output": item.rel, "size": len(res.output), "sha256": _sha256(res.output),
            "input": str(resolved(item.input)), "input_size": size, "input_mtime_ns": mtime,
            "params": self.params_key, "width": res.width, "height": res.height, "bpp": bpp,
            "psnr": res.psnr, "seconds": round(res.seconds, 4),
        }
        error = self._publish(item, res.output, fields)
        if error is not None:
            self._fail(item, error)
            return
        self.results[key] = FileResult(
            str(item.input), str(item.output), "ok", size, len(res.output), res.width, res.height, bpp,
            res.psnr, round(res.seconds, 4),
        )
        self._published += 1
        if self._kill_after and self._published >= self._kill_after:
            _die()

    # -- publishing ------------------------------------------------------------------------------

    def _publish(self, item: Item, data: bytes, fields: dict[str, Any]) -> str | None:
        """Record ``data`` in the journal and put it at ``item.output`` as its mode allows; the error, if any."""
        out = item.output
        mode = self.modes[item.index]
        try:
            there = os.path.lexists(out)
            if there and mode in ("same", "ours"):
                on_disk = file_sha256(out)
                if mode == "same" and on_disk == fields["sha256"]:
                    self.manifest.record(**fields)  # what we produce is already there: now it is ours
                    return None
                expected = self.manifest.records[item.rel].sha256 if mode == "ours" else None
                if on_disk != expected:
                    return (
                        f"output {out} exists and this job did not write it; it was left as it is "
                        "(choose another output_dir, or set overwrite = true to replace such files)"
                    )
            replace = there and mode in ("replace", "ours")
            self._make_folder(out.parent)
            tmp = write_temp(out, data)
            self.manifest.record(**fields)
            publish(tmp, out, replace=replace)
        except FileExistsError:
            return f"output {out} appeared while the job ran; it was left as it is"
        except OSError as exc:
            return f"cannot write {out}: {exc.strerror or exc}"
        return None

    def _make_folder(self, folder: Path) -> None:
        """Create an output subfolder; any failure is an OSError that names no existing output."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder should be
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder") from None

    def _write_report(self) -> None:
        """Finish the report (unfinished files are "cancelled") and write it if the job may."""
        for item in self.items:
            if item.index not in self.results:
                self.results[item.index] = FileResult(
                    str(item.input), str(item.output), "cancelled", error="the job was interrupted"
                )
        self.report.seconds = time.monotonic() - self._started
        self.report.files = [self.results[i] for i in sorted(self.results)]
        if self.report_mode is None:
            return
        path = self.report_path
        if self.report_mode == "ours" and os.path.lexists(path) and not is_job_report(path, self.out_dir):
            log.error("the report %s was replaced by another file while the job ran; not writing it", path)
            return
        try:
            tmp = write_temp(path, (json.dumps(self.report.to_dict(), indent=2) + "\n").encode())
            publish(tmp, path, replace=self.report_mode != "new" and os.path.lexists(path))
        except FileExistsError:
            log.error("the report %s appeared while the job ran; it was left as it is", path)
        except OSError as exc:
            log.error("cannot write the job report %s: %s", path, exc.strerror or exc)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _fail(self, item: Item, message: str, tb: str | None = None, size: int | None = None) -> None:
        if size is None and item.index in self.stats:
            size = self.stats[item.index][0]
        self.results[item.index] = FileResult(
            str(item.input), str(item.output), "error", bytes_in=size, error=message, traceback=tb
        )

    def _progress(self, last: str) -> None:
        if self.on_progress is None:
            return
        finished = list(self.results.values())
        elapsed = time.monotonic() - self._started
        rate = self._done_now / elapsed if self._done_now and elapsed > 0 else None
        eta = (len(self.items) - len(finished)) / rate if rate else None
        counts = {s: sum(1 for r in finished if r.status == s) for s in ("ok", "skipped", "error")}
        self.on_progress(
            Progress(len(finished), len(self.items), counts["ok"], counts["skipped"], counts["error"],
                     elapsed, rate, eta, last)
        )

