"""Files the CLI and batch jobs write: atomic, no-clobber writes (images go through :mod:`vaerans_ecs.imaging`).

Writing a file is two steps: the bytes go to a new temporary file in the target's folder
(:func:`write_temp`, fsynced), then :func:`publish` moves it into place. ``publish`` with
``replace=False`` never replaces anything: it hard-links the temporary file to the target name,
which fails when that name exists (also when it appeared a moment ago), then removes the
temporary name. Where the filesystem has no hard links it claims the name with an exclusive
create and renames the temporary file over that claim. ``replace=True`` is ``os.replace``.
Readers never see a partly written file either way.

Folders are never created here: a missing folder is an error naming it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import uuid
from pathlib import Path

from vaerans_ecs.errors import VaeransError

__all__ = [
    "TMP_SUFFIX",
    "file_sha256",
    "missing_folder",
    "pillow_save_format",
    "publish",
    "write_atomic",
    "write_new",
    "write_temp",
]

#: Suffix of the temporary files written before an output is published.
TMP_SUFFIX = ".vaerans-tmp"

# errors of os.link that mean "this filesystem (or platform) has no hard links here"
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOSYS, errno.EMLINK} | {
    getattr(errno, name) for name in ("ENOTSUP", "EOPNOTSUPP") if hasattr(errno, name)
}


def missing_folder(path: str | os.PathLike[str]) -> Path | None:
    """The folder ``path`` would be written into when that folder does not exist (else None)."""
    parent = Path(path).parent
    return None if parent.is_dir() else parent


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def write_temp(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a new temporary file next to ``path`` (fsynced) and return its name."""
    tmp = _temp_name(Path(path))
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


def _claim_and_rename(tmp: Path, target: Path) -> None:
    """No-clobber publish without hard links: create ``target`` exclusively, then rename over it."""
    if os.name == "nt":  # os.rename refuses an existing target there
        os.rename(tmp, target)
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)  # our own empty claim
        raise


def publish(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *, replace: bool) -> None:
    """Move the temporary file ``tmp`` to ``target``; the temporary name is gone afterwards.

    ``replace=False`` raises :class:`FileExistsError` when ``target`` exists at the moment of the
    move (never replacing it); ``replace=True`` replaces a file (never a folder).
    """
    src, dst = Path(tmp), Path(target)
    try:
        if replace:
            if dst.is_dir():
                raise IsADirectoryError(errno.EISDIR, "is a folder", str(dst))
            os.replace(src, dst)
            return
        try:
            os.link(src, dst)
        except FileExistsError:
            raise
        except (OSError, NotImplementedError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _NO_LINKS:
                raise
            _claim_and_rename(src, dst)
            return
        os.unlink(src)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(src)
        raise


def write_new(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; :class:`FileExistsError` when ``path`` exists."""
    publish(write_temp(path, data), path, replace=False)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` (or create it) with ``data`` atomically: temporary file, then ``os.replace``."""
    publish(write_temp(path, data), path, replace=True)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
