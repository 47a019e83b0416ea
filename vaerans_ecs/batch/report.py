"""What a job did: one :class:`FileResult` per input and the :class:`JobReport` written as JSON."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["REPORT_KEY", "FileResult", "JobReport", "Status", "human_bytes"]

Status = Literal["ok", "skipped", "error", "cancelled"]

#: Key every report carries (value: format version); a job recognises its own reports by it.
REPORT_KEY = "vaerans_job_report"


@dataclass
class FileResult:
    """What happened to one input of a job; ``psnr`` is ``inf`` for a lossless round trip."""

    input: str
    output: str | None
    status: Status
    bytes_in: int | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    bpp: float | None = None
    psnr: float | None = None
    seconds: float | None = None
    error: str | None = None
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: no traceback key when there is none; an infinite PSNR becomes ``null`` + ``lossless``."""
        out = dataclasses.asdict(self)
        if self.traceback is None:
            out.pop("traceback")
        if self.psnr is not None and not math.isfinite(self.psnr):
            out["psnr"] = None
            out["lossless"] = True
        return out


@dataclass
class JobReport:
    """Everything a job did; written as JSON to ``report_path``. ``error``: why the job itself stopped."""

    operation: str
    output_dir: str
    report_path: str
    executor: str
    workers: int
    threads_per_worker: int
    parameters: dict[str, Any]
    started: str
    seconds: float = 0.0
    files: list[FileResult] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None

    def _count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> int:
        return self._count("ok")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("error")

    @property
    def cancelled(self) -> int:
        return self._count("cancelled")

    def totals(self) -> dict[str, Any]:
        """Counts, bytes, pixels, overall bpp, mean PSNR (lossless files counted apart), throughput."""
        done = [f for f in self.files if f.status in ("ok", "skipped")]
        processed = [f for f in self.files if f.status == "ok"]
        pixels = sum((f.width or 0) * (f.height or 0) for f in done)
        bits_of = "bytes_in" if self.operation == "decompress" else "bytes"
        stream_bytes = sum(getattr(f, bits_of) or 0 for f in done)
        psnrs = [f.psnr for f in done if f.psnr is not None and math.isfinite(f.psnr)]
        return {
            "files": len(self.files),
            "ok": self.ok,
            "skipped": self.skipped,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "bytes_in": sum(f.bytes_in or 0 for f in done),
            "bytes_out": sum(f.bytes or 0 for f in done),
            "pixels": pixels,
            "bpp": stream_bytes * 8 / pixels if pixels else None,
            "mean_psnr": sum(psnrs) / len(psnrs) if psnrs else None,
            "lossless_files": sum(1 for f in done if f.psnr is not None and math.isinf(f.psnr)),
            "files_per_second": len(processed) / self.seconds if self.seconds > 0 and processed else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the report file."""
        return {
            REPORT_KEY: 1,
            "operation": self.operation,
            "output_dir": self.output_dir,
            "executor": self.executor,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "parameters": self.parameters,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "error": self.error,
            "totals": self.totals(),
            "unmatched_patterns": self.unmatched,
            "files": [f.to_dict() for f in self.files],
        }

    def summary(self) -> str:
        """One line: counts, sizes, rate, throughput, where the report is."""
        t = self.totals()
        parts = [f"{t['files']} files: {t['ok']} ok, {t['skipped']} skipped, {t['failed']} failed"]
        if t["cancelled"]:
            parts[0] += f", {t['cancelled']} not done"
        if t["bytes_in"] or t["bytes_out"]:
            parts.append(f"{human_bytes(t['bytes_in'])} -> {human_bytes(t['bytes_out'])}")
        if t["bpp"] is not None:
            parts.append(f"{t['bpp']:.3f} bpp")
        if t["mean_psnr"] is not None:
            parts.append(f"mean PSNR {t['mean_psnr']:.2f} dB")
        if t["lossless_files"]:
            parts.append(f"{t['lossless_files']} lossless")
        rate = f" ({t['files_per_second']:.2f} files/s)" if t["files_per_second"] else ""
        parts.append(f"{self.seconds:.1f} s{rate}")
        parts.append(f"report {self.report_path}")
        return "; ".join(parts)


def human_bytes(n: int) -> str:
    """``n`` bytes as ``"512 B"``, ``"1.5 kB"``, ``"2.0 MB"`` (powers of 1000)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover
