"""Atomic, no-clobber writes and Pillow image I/O shared by the CLI and batch jobs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.fileio import (
    TMP_SUFFIX,
    missing_folder,
    pillow_save_format,
    publish,
    write_atomic,
    write_new,
    write_temp,
)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(TMP_SUFFIX)]


@pytest.fixture(params=["links", "no-links"])
def links(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with hard links, and as on a filesystem without them (os.link fails with EPERM)."""
    if request.param == "no-links":

        def no_link(src: object, dst: object) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    return str(request.param)


def test_write_new_never_replaces(tmp_path: Path, links: str) -> None:
    target = tmp_path / "out.bin"
    write_new(target, b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(FileExistsError):
        write_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_publish_checks_when_it_moves(tmp_path: Path, links: str) -> None:
    # the target appears between writing the temporary file and publishing it
    target = tmp_path / "late.bin"
    tmp = write_temp(target, b"ours")
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        publish(tmp, target, replace=False)
    assert target.read_bytes() == b"theirs" and not tmp.exists()
    publish(write_temp(target, b"ours"), target, replace=True)
    assert target.read_bytes() == b"ours" and _leftovers(tmp_path) == []


def test_replace_never_a_folder_and_never_creates_folders(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "d", b"x")
    assert (tmp_path / "d").is_dir() and _leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "f.bin", b"x")
    assert not (tmp_path / "no").exists()
    assert missing_folder(tmp_path / "no" / "f.bin") == tmp_path / "no"
    assert missing_folder(tmp_path / "f.bin") is None


def test_save_formats() -> None:
    assert pillow_save_format(".JPG") == ("JPEG", ".jpg")
    with pytest.raises(VaeransError, match="cannot write"):
        pillow_save_format("nosuchformat")
