"""The job's journal, ``<output_dir>/.vaerans-manifest.jsonl``: one JSON record per finished output.

A record is appended (one ``write``, fsynced) *before* its output is published, so after a crash
every published output has a record. The file is untrusted input: every line is validated
(:class:`ManifestRecord`, pydantic, strict types) and anything else (a torn or foreign line, a
nested document, wrong types, a path leaving the output folder) is ignored, as if absent. A
record never makes a file the job's own by itself: :meth:`Manifest.owned` also needs the file on
disk to have the recorded size and SHA-256. The last valid record of an output wins. A journal
file that belongs to another user is ignored as a whole.

What a journal can make a job do: skip a file, or replace a file in the output folder whose exact
bytes it records (which someone able to write the journal could replace anyway). It can never make
a job replace an input, or a file whose bytes it does not record.
"""

from __future__ import annotations

import json
import logging
import math
import os
import posixpath
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.fileio import file_sha256, write_atomic

__all__ = ["MANIFEST_NAME", "MAX_LINE", "Manifest", "ManifestRecord"]

log = logging.getLogger(__name__)

MANIFEST_NAME = ".vaerans-manifest.jsonl"
#: Longer lines are not records (a record is a few hundred bytes).
MAX_LINE = 1 << 16
_VERSION = 1


class ManifestRecord(BaseModel):
    """One finished output: where it is, what it holds, what it was made from and with."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)

    v: int
    output: str = Field(min_length=1, max_length=4096)  # POSIX path relative to the output folder
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str = Field(min_length=1, max_length=4096)
    input_size: int = Field(ge=0)
    input_mtime_ns: int
    params: str = Field(max_length=64)
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    bpp: float | None = Field(None, ge=0)
    psnr: float | None = Field(None, allow_inf_nan=True)  # inf: a lossless round trip
    seconds: float | None = Field(None, ge=0)

    @field_validator("v")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != _VERSION:
            raise ValueError(f"manifest version {v} is not {_VERSION}")
        return v

    @field_validator("output")
    @classmethod
    def _relative(cls, path: str) -> str:
        norm = posixpath.normpath(path)
        if norm != path or path.startswith("/") or norm == "." or norm.split("/")[0] == ".." or "\\" in path:
            raise ValueError("not a plain path inside the output folder")
        return path

    @field_validator("psnr")
    @classmethod
    def _psnr(cls, value: float | None) -> float | None:
        if value is not None and (math.isnan(value) or value < 0 or value == -math.inf):
            raise ValueError("not a PSNR")
        return value

    def to_line(self) -> bytes:
        """The record as one JSON line."""
        return (json.dumps(self.model_dump(), separators=(",", ":")) + "\n").encode()


def _parse(line: bytes) -> ManifestRecord | None:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):  # torn, foreign or absurdly nested
        return None
    if not isinstance(doc, dict):
        return None
    try:
        return ManifestRecord.model_validate(doc)
    except (ValidationError, RecursionError):
        return None


class Manifest:
    """Append-only journal of finished outputs of the job writing to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self.records: dict[str, ManifestRecord] = {}
        self.ignored = 0
        #: True when the journal cannot be used (its name is taken by a folder, or it cannot be
        #: read): the job then runs without one, and a rerun recognises outputs by their content
        self.disabled = False
        self._fd: int | None = None
        self._owned: dict[str, ManifestRecord | None] = {}

    def load(self, *, records: bool = True) -> None:
        """Read the valid records (a missing file has none; ``records=False``: only check the file)."""
        try:
            with open(self.path, "rb") as fh:
                if hasattr(os, "getuid") and os.fstat(fh.fileno()).st_uid != os.getuid():
                    log.warning("ignoring the job journal %s: it belongs to another user", self.path)
                elif records:
                    self._read(fh)
        except FileNotFoundError:
            return
        except OSError as exc:
            self.disabled = True
            log.warning("cannot use the job journal %s (%s): this run keeps none, so an interrupted run "
                        "redoes its files", self.path, exc.strerror or exc)
        if self.ignored:
            log.warning("%s: ignored %d line(s) that are not valid records", self.path, self.ignored)

    def _read(self, fh: BinaryIO) -> None:
        while line := fh.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                while (rest := fh.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                self.ignored += 1
                continue
            if not line.strip():
                continue
            record = _parse(line)
            if record is None:
                self.ignored += 1
            else:
                self.records[record.output] = record

    def owned(self, rel: str) -> ManifestRecord | None:
        """The record of output ``rel`` when the file on disk is exactly what it records, else None."""
        record = self.records.get(rel)
        if record is None:
            return None
        if rel not in self._owned:
            path = self.folder / rel
            try:
                same = path.is_file() and path.stat().st_size == record.size and file_sha256(path) == record.sha256
            except OSError:
                same = False
            self._owned[rel] = record if same else None
        return self._owned[rel]

    def keep_only(self, names: set[str]) -> None:
        """Forget every record but those of ``names``, and rewrite the file atomically."""
        self.records = {k: v for k, v in self.records.items() if k in names}
        if self.disabled:
            return
        text = b"".join(r.to_line() for r in self.records.values())
        try:
            write_atomic(self.path, text)
        except OSError as exc:
            raise VaeransError(f"cannot write the job journal {self.path}: {exc.strerror or exc}") from None

    def record(self, **fields: Any) -> ManifestRecord:
        """Append a record (one write, fsynced) and return it."""
        record = ManifestRecord(v=_VERSION, **fields)
        self._owned.pop(record.output, None)
        if self.disabled:
            self.records[record.output] = record
            return record
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
            self._fd = os.open(self.path, flags, 0o666)
        view = memoryview(record.to_line())
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.records[record.output] = record
        return record

    def close(self) -> None:
        """Close the journal file (records already written stay)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
