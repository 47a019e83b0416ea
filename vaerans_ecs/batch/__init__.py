"""Batch jobs: many files compressed, decompressed or round-trip evaluated, on one machine or a Dask cluster.

A job is the ``[job]`` table of a TOML file (:class:`vaerans_ecs.config.JobConfig`; the commented
example is printed by ``vaerans batch --example``) run with ``vaerans batch JOB.toml`` or
:func:`run_job`. The minimal job::

    [job]
    inputs = ["photos/*.png"]
    output_dir = "out"
    quality = 40
    workers = 2

How a job behaves (each point lives in its own module):

* **Inputs** (:mod:`.inputs`, :mod:`.plan`) are globs (``**`` recurses) or a text file listing
  paths and globs; each output keeps the input's path relative to the folder its pattern starts
  in. Two inputs mapping to one output is an error for the second one.
* **Work** (:mod:`.worker`, :mod:`.runners`, :mod:`.dask_runner`) runs in worker processes
  (``executor = "local"``: a process pool whose workers build their onnxruntime sessions once, with
  ``max(1, cores // workers)`` intra-op threads each unless ``[runtime] intra_op_threads`` is set)
  or on ``dask.distributed`` (``executor = "dask"``). The job's process reads inputs and writes
  outputs, so Dask workers need the models but no access to the files. The job's configuration
  goes to the workers explicitly; the calling process's configuration is never changed. On 2 cores
  (Kodak, ``benchmarks/bench_batch_workers.py``) 2 workers of 1 thread were ~1.15x faster than 1
  worker of 2 threads in steady state (compress): the VAE is most of a file's work and one worker
  already keeps both cores busy.
* **Outputs and data safety** (:mod:`.job`, :mod:`vaerans_ecs.fileio`): written atomically and
  published without replacing anything that appeared meanwhile. A job replaces only files it
  wrote (journal record matching the file's size and SHA-256, or exactly the bytes it produces);
  others only with ``overwrite = true``; inputs never. The report may not be an input or a user's file.
* **One job per output tree** (:mod:`.lock`): a job on a folder inside, around or equal to a running
  job's output folder stops with an error.
* **Resume** (:mod:`.manifest`): after each file a validated record (output size and SHA-256,
  input size and mtime, job parameters) is appended to ``<output_dir>/.vaerans-manifest.jsonl``
  and fsynced before the output is published. A job started again skips every output whose record
  still matches and does the rest; lines that are not valid records are ignored.
* **Failures** of single files are recorded and the job goes on (:attr:`JobReport.failed`;
  ``vaerans batch`` exits 1). **Report** (:mod:`.report`): JSON, default ``<output_dir>/report.json``.
  **Progress** (:mod:`.progress`): a callback, and a text bar for the CLI.

Testing hook: with the environment variable ``VAERANS_BATCH_KILL_AFTER=N`` the job's process
SIGKILLs itself right after its N-th output is in place (to test resuming).

Operations: ``compress`` (image -> ``.vae``), ``decompress`` (``.vae`` -> image in
``output_format``), ``roundtrip-eval`` (image -> ``.vae`` written, decoded again in memory, PSNR
against the input recorded), ``compress-sequence`` (each video file, and the image files of each
folder, -> one sequence stream: :mod:`.sequences`). Images are read with Pillow (first frame, EXIF orientation applied)
and converted by the rules of :mod:`vaerans_ecs.imaging`.
"""

from __future__ import annotations

from vaerans_ecs.batch.job import KILL_AFTER_ENV, REPORT_NAME, Job, run_job
from vaerans_ecs.batch.jobfile import example_job, load_job
from vaerans_ecs.batch.lock import LOCK_NAME, lock_outputs
from vaerans_ecs.batch.manifest import MANIFEST_NAME, ManifestRecord
from vaerans_ecs.batch.progress import Progress, ProgressBar
from vaerans_ecs.batch.report import FileResult, JobReport

__all__ = [
    "KILL_AFTER_ENV",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "REPORT_NAME",
    "FileResult",
    "Job",
    "JobReport",
    "ManifestRecord",
    "Progress",
    "ProgressBar",
    "example_job",
    "load_job",
    "lock_outputs",
    "run_job",
]
