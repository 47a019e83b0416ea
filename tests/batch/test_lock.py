"""One job per output tree: jobs on the same folder, or on a folder inside or around another job's, exclude
each other, in one process (threads) and across processes; jobs on sibling folders do not."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.batch.helpers import REPO, photos
from vaerans_ecs.batch import Progress, lock_outputs, run_job
from vaerans_ecs.config import JobConfig
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.models import ModelSpec


def _job(tmp_path: Path, out: Path, model: ModelSpec) -> JobConfig:
    return JobConfig(inputs=[str(tmp_path / "photos" / "*.png")], output_dir=out, quality=50.0, model=model.name)


@contextmanager
def _job_running(job: JobConfig) -> Iterator[list[object]]:
    """Run ``job`` in a thread, paused right after planning (under its lock) until the block ends."""
    planned, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def pause(p: Progress) -> None:
        if p.done == 0 and not planned.is_set():
            planned.set()
            release.wait(60)

    def target() -> None:
        try:
            outcome.append(run_job(job, on_progress=pause))
        except Exception as exc:  # reported to the test
            outcome.append(exc)
            planned.set()

    thread = threading.Thread(target=target)
    thread.start()
    try:
        assert planned.wait(60)
        yield outcome
    finally:
        release.set()
        thread.join(60)


@pytest.mark.parametrize(("first", "second"), [("out", "out/sub"), ("out/sub", "out"), ("out", "out")])
def test_nested_output_folders_exclude_each_other(
    tmp_path: Path, synthetic_model: ModelSpec, first: str, second: str
) -> None:
    photos(tmp_path / "photos", 2)
    with (
        _job_running(_job(tmp_path, tmp_path / first, synthetic_model)) as outcome,
        pytest.raises(VaeransError, match="another job is writing to"),
    ):
        run_job(_job(tmp_path, tmp_path / second, synthetic_model))
    assert getattr(outcome[0], "ok", None) == 2, outcome
    assert not list((tmp_path / second).glob("*.vae")) or first == second


def test_sibling_output_folders_run_side_by_side(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos", 2)
    with _job_running(_job(tmp_path, tmp_path / "out" / "a", synthetic_model)) as outcome:
        assert run_job(_job(tmp_path, tmp_path / "out" / "b", synthetic_model)).ok == 2
    assert getattr(outcome[0], "ok", None) == 2, outcome


_HOLDER = """
import sys
from pathlib import Path
from vaerans_ecs.batch import lock_outputs
with lock_outputs(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_locks_across_processes(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos", 1)
    (tmp_path / "out" / "sub").mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "out" / "sub")], cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(VaeransError, match="another job"):
            run_job(_job(tmp_path, tmp_path / "out", synthetic_model))
        with pytest.raises(VaeransError, match="another job"):
            run_job(_job(tmp_path, tmp_path / "out" / "sub" / "deeper", synthetic_model))
        with pytest.raises(VaeransError, match="another job"), lock_outputs(tmp_path / "out" / "sub"):
            pass
        assert run_job(_job(tmp_path, tmp_path / "other", synthetic_model)).ok == 1
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
    assert run_job(_job(tmp_path, tmp_path / "out", synthetic_model)).ok == 1  # released with the process
