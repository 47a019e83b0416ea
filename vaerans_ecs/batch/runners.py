"""Executors of a job's tasks and the loop that keeps them busy.

:class:`Runner` is what the loop needs from an executor; :class:`LocalRunner` is a process pool
whose workers run :func:`~vaerans_ecs.batch.worker.init_worker` once, and
:class:`~vaerans_ecs.batch.dask_runner.DaskRunner` (imported only when asked for) runs the same
tasks on ``dask.distributed``. :func:`drive` keeps ``runner.in_flight`` tasks running and hands
each result to the job as it arrives.
"""

from __future__ import annotations

import collections
import logging
import traceback
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from vaerans_ecs.batch.worker import Task, TaskResult, WorkerSetup, init_worker, mp_context, run_task

__all__ = ["LocalRunner", "Runner", "TaskSink", "drive", "make_runner"]

log = logging.getLogger(__name__)

MAX_POOL_RESTARTS = 3
DIED = "a worker process died while this file was in flight (rerun the job to retry)"
NO_START = (
    "the worker processes died before finishing any file; when run_job is called from a script, "
    "the script must guard its code with 'if __name__ == \"__main__\":' (worker processes import it)"
)


class Runner(Protocol):
    """What the job loop needs from an executor (a process pool or a Dask client)."""

    in_flight: int

    def submit(self, task: Task) -> Any: ...

    def wait_any(self, futures: Collection[Any]) -> Collection[Any]: ...

    def result(self, future: Any) -> TaskResult: ...

    def restart(self) -> bool: ...

    def close(self, cancel: bool) -> None: ...


class TaskSink(Protocol):
    """Where :func:`drive` sends what happens to each task (the job)."""

    def task_for(self, key: int) -> Task | None:
        """The task of item ``key`` (None when its input cannot be read: the sink reported it)."""
        ...

    def finished(self, key: int, result: TaskResult) -> None: ...

    def failed(self, key: int, message: str, tb: str | None = None) -> None: ...


class LocalRunner:
    """A process pool of ``workers`` processes, each set up once with ``setup``."""

    def __init__(self, setup: WorkerSetup, workers: int) -> None:
        self._ctx = mp_context()
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
        """A new pool after workers died (a few times at most); False when giving up."""
        if self._restarts >= MAX_POOL_RESTARTS:
            return False
        self._restarts += 1
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        return True

    def close(self, cancel: bool) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def make_runner(executor: str, setup: WorkerSetup, workers: int, scheduler: str | None) -> Runner:
    """The runner for ``executor`` (``"local"`` or ``"dask"``)."""
    if executor == "dask":
        from vaerans_ecs.batch.dask_runner import DaskRunner

        return DaskRunner(setup, workers, scheduler)
    return LocalRunner(setup, workers)


def drive(runner: Runner, keys: Iterable[int], sink: TaskSink, progress: Callable[[str], None]) -> None:
    """Run the task of every key on ``runner``, ``runner.in_flight`` at a time, reporting to ``sink``.

    When a local worker process dies (the pool is broken), the files in flight are reported as
    failed, the pool is restarted (a few times at most) and the rest goes on.
    """
    queue = collections.deque(keys)
    running: dict[Any, tuple[int, str]] = {}
    finished_any = False

    def submit_more() -> bool:
        """Fill the pipeline; False when the pool turned out to be broken."""
        while len(running) < runner.in_flight and queue:
            task = sink.task_for(queue[0])
            if task is None:
                progress("")
                queue.popleft()
                continue
            try:
                future = runner.submit(task)
            except BrokenProcessPool:
                return False
            running[future] = (queue.popleft(), task.name)
        return True

    broken = not submit_more()
    while running or (broken and queue):
        for future in runner.wait_any(list(running)) if running else ():
            key, name = running.pop(future)
            try:
                res = runner.result(future)
            except BrokenProcessPool:
                broken = True
                sink.failed(key, DIED if finished_any else NO_START)
            except Exception as exc:
                sink.failed(key, f"the worker failed: {type(exc).__name__}: {exc}", traceback.format_exc())
            else:
                finished_any = True
                sink.finished(key, res)
            progress(name)
        if broken:
            if running:
                continue  # let every task of the dead pool report first
            if not runner.restart():
                while queue:
                    sink.failed(queue.popleft(), "not processed: worker processes kept dying")
                    progress("")
                return
            log.warning("a worker process died; restarted the worker pool")
            broken = False
        broken = not submit_more()
