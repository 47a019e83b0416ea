"""One job at a time per output tree: a job's output folder may not be inside, around or equal to
another running job's.

A job holds an exclusive lock on its output folder and shared locks on every folder that contains
something it writes (each ancestor of the output folder, and the report's folder and its
ancestors). Two jobs conflict exactly when one's exclusive folder is the other's exclusive folder
or one of its shared folders, that is when one output folder is inside the other or the same;
sibling folders share only shared locks and run side by side.

The locks are ``flock`` locks on files named after each folder's device and inode, in a registry
folder private to the user (``$VAERANS_LOCK_DIR``, else ``/tmp/vaerans-locks-<uid>``; mode 0700,
owner checked), so symlinked or differently spelled paths of one folder meet. The output folder
also gets ``.vaerans-job.lock`` inside it, locked exclusively, which stops a second job on the same
folder from another user or machine where ``flock`` reaches that far. Locks go when the process
does, even on SIGKILL. Without ``fcntl`` (Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from vaerans_ecs.errors import VaeransError

__all__ = ["LOCK_DIR_ENV", "LOCK_NAME", "lock_outputs", "registry_folder"]

log = logging.getLogger(__name__)

LOCK_NAME = ".vaerans-job.lock"
LOCK_DIR_ENV = "VAERANS_LOCK_DIR"


def registry_folder() -> Path | None:
    """The user's lock registry, created when missing; None (logged) when it is not safely usable."""
    env = os.environ.get(LOCK_DIR_ENV)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = Path(env) if env else Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir())
    folder = root if env else root / f"vaerans-locks-{uid}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError as exc:
        log.warning("no lock registry at %s (%s): nested output folders are not detected", folder, exc)
        return None
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != uid) or st.st_mode & 0o022:
        log.warning("lock registry %s is not a folder of this user only: nested output folders are not detected",
                    folder)
        return None
    return folder


def _chain(folder: Path) -> list[Path]:
    """``folder`` (resolved) and all its ancestors."""
    real = folder.resolve()
    return [real, *real.parents]


def _open_lock(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o600)


def _try_lock(fd: int, exclusive: bool) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _keys(out_dir: Path, writes_in: Iterable[Path]) -> dict[Path, bool]:
    """Folders to lock: True for the exclusive one (the output folder), False for shared ones."""
    wanted: dict[Path, bool] = {}
    for folder in [*out_dir.resolve().parents, *(p for w in writes_in for p in _chain(w))]:
        wanted.setdefault(folder, False)
    wanted[out_dir.resolve()] = True
    return wanted


def _conflict(out_dir: Path, folder: Path, exclusive: bool) -> VaeransError:
    where = f"{out_dir} or a folder inside it" if exclusive else f"{folder}, a folder around what this job writes"
    return VaeransError(f"another job is writing to {where} right now; wait for it, or use another output_dir")


@contextlib.contextmanager
def lock_outputs(out_dir: Path, writes_in: Iterable[Path] = ()) -> Iterator[None]:
    """Hold the locks of a job writing to the existing folder ``out_dir`` (and into ``writes_in``).

    Raises :class:`VaeransError` naming the folder when another job holds a conflicting lock.
    """
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    fds: list[int] = []
    try:
        _acquire(out_dir, writes_in, fds)
    except BaseException as exc:
        for fd in reversed(fds):
            os.close(fd)
        if isinstance(exc, OSError):
            raise VaeransError(f"cannot lock {out_dir} for the job: {exc.strerror or exc}") from None
        raise
    try:
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _acquire(out_dir: Path, writes_in: Iterable[Path], fds: list[int]) -> None:
    """Take every lock of :func:`lock_outputs`, appending each opened descriptor to ``fds``."""
    fd = _open_lock(out_dir / LOCK_NAME)
    fds.append(fd)
    if not _try_lock(fd, True):
        raise _conflict(out_dir, out_dir.resolve(), True)
    registry = registry_folder()
    if registry is None:
        return
    for folder, exclusive in _keys(out_dir, writes_in).items():
        st = folder.stat()
        fd = _open_lock(registry / f"{st.st_dev:x}-{st.st_ino:x}.lock")
        fds.append(fd)
        if not _try_lock(fd, exclusive):
            raise _conflict(out_dir, folder, exclusive)
