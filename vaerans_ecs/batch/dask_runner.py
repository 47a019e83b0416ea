"""``executor = "dask"``: run a batch job's files as ``dask.distributed`` tasks.

With ``scheduler = "tcp://host:8786"`` the job connects to a running cluster; without it, a
``LocalCluster`` of ``workers`` single-threaded worker processes is started for the job and shut
down after it. At most ``2 * workers`` tasks are in flight; the job's process reads the inputs
and writes the outputs, so cluster workers only need ``vaerans_ecs`` and the model files (at
the same paths, or the same built-in/registered names). Each worker process installs the job's
configuration and models on its first task (:func:`vaerans_ecs.batch.worker.run_task_with`).

Needs the optional dependency: ``pip install 'vaerans_ecs[dask]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from vaerans_ecs.batch.worker import Task, TaskResult, WorkerSetup, run_task_with
from vaerans_ecs.errors import VaeransError

__all__ = ["DaskRunner"]

log = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise VaeransError(
            f'executor = "dask" needs dask.distributed ({exc}); install it with '
            "python -m pip install 'vaerans_ecs[dask]'"
        ) from None
    return distributed


class DaskRunner:
    """The batch job's executor protocol on a ``distributed.Client``."""

    def __init__(self, setup: WorkerSetup, workers: int, scheduler: str | None) -> None:
        distributed = _import_distributed()
        self._distributed = distributed
        self._setup = setup
        self._cluster: Any = None
        self.in_flight = 2 * workers
        if scheduler:
            try:
                self._client = distributed.Client(scheduler, timeout="30s")
            except OSError as exc:
                raise VaeransError(f"cannot connect to the dask scheduler {scheduler}: {exc}") from None
            log.info("dask: connected to %s", scheduler)
        else:
            self._cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self._client = distributed.Client(self._cluster)
            log.info("dask: started a LocalCluster of %d workers", workers)

    def submit(self, task: Task) -> Any:
        return self._client.submit(run_task_with, self._setup, task, pure=False)

    def wait_any(self, futures: Collection[Any]) -> Collection[Any]:
        done, _ = self._distributed.wait(list(futures), return_when="FIRST_COMPLETED")
        return list(done)

    def result(self, future: Any) -> TaskResult:
        res: TaskResult = future.result()
        return res

    def restart(self) -> bool:
        return False  # dask reschedules the tasks of lost workers itself

    def close(self, cancel: bool) -> None:
        try:
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
