"""Helpers of the hostile-stream tests: streams forged byte by byte, and a watch on files and ONNX sessions.

The tests of this package prove the fixes of issue 15 (items 1-3): each forges its stream from a
real small stream converted to the v1 layout, which every version of the decoder reads, so the same
bytes can be fed to the code before the fixes (d1a0f55) and after. Only names that exist in both
are used here (the mutation helpers of ``tests/fixtures/streamfuzz.py`` are pure standard library).
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.streamfuzz import Field, locate_fields, pipeline_records, replace_field, stage_record
from vaerans_ecs import api
from vaerans_ecs.core.system import SYSTEMS

__all__ = ["Cost", "Watch", "cost", "forge", "picture", "seed_v1", "stage_of", "watch"]


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth test picture with a little noise (codes to a small stream)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / (3 + c) + seed) * np.cos(y / 5 - c) for c in range(3)], axis=-1)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def seed_v1(model: str, h: int = 32, w: int = 40, *, coder: str = "rans", wavelet: str = "cdf53",
            quality: float = 60) -> bytes:
    """A real stream of a small picture in the v1 layout (what the library wrote before bitstream v2)."""
    data = api.compress(picture(h, w), quality, model, wavelet=wavelet, coder=coder)
    if data[4] == 1:
        return data
    from tests.fixtures.streamfuzz import as_v1

    return as_v1(data)


def fields(data: bytes) -> dict[str, Field]:
    """The fields of a valid stream by name."""
    return {f.name: f for f in locate_fields(data)}


def forge(seed: bytes, **values: bytes) -> bytes:
    """``seed`` with whole fields (by name, length prefixes included) replaced, CRC recomputed."""
    out = seed
    for name in sorted(values, key=lambda n: -fields(seed)[n].start):  # from the end: offsets stay valid
        out = replace_field(out, fields(out)[name], values[name])
    return out


def stage_of(name: str, **settings: Any) -> bytes:
    """A pipeline record naming a registered system by name, with the settings its stream fields list."""
    cls = SYSTEMS.get(name)
    config = cls.from_config({"id": name, **settings}).get_config()
    return stage_record(name, [config[f] for f in cls.stream_field_names()])


def records(data: bytes) -> dict[str, bytes]:
    """The stage records of a stream's pipeline by stage: "vae", "hadamard", "wavelet", "quantizer", "coder"."""
    recs = pipeline_records(data)
    codes = {1: "vae", 2: "hadamard", 3: "wavelet", 4: "wavelet", 5: "quantizer", 6: "coder"}
    return {codes[r[0]]: r for r in recs}


# -- what a decoder touched ---------------------------------------------------------------------


@dataclass
class Watch:
    """Paths of files Python opened or listed and of ONNX files sessions were created for."""

    opened: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)

    def under(self, *roots: Path) -> list[str]:
        """Everything touched inside any of ``roots``."""
        real = [os.path.realpath(r) for r in roots]
        return [p for p in self.opened + self.sessions
                if any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + os.sep) for r in real)]


_ACTIVE: list[Watch] = []
_HOOKED: list[bool] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _ACTIVE or event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    path = args[0]
    if path is None or isinstance(path, int):
        return
    try:
        where = os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError):
        return
    for w in _ACTIVE:
        w.opened.append(where)


@contextmanager
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watch]:
    """Record every file opened (audit hook) and every ONNX session created while the block runs."""
    ort = pytest.importorskip("onnxruntime")
    if not _HOOKED:
        sys.addaudithook(_audit)  # hooks cannot be removed: it records only while a watch is active
        _HOOKED.append(True)
    w = Watch()
    real = ort.InferenceSession

    class Recorded(real):  # type: ignore[misc, valid-type]
        def __init__(self, path_or_bytes: Any, *args: Any, **kwargs: Any) -> None:
            if isinstance(path_or_bytes, (str, os.PathLike)):
                w.sessions.append(os.path.abspath(os.fspath(path_or_bytes)))
            else:
                w.sessions.append("<bytes>")
            super().__init__(path_or_bytes, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Recorded)
    _ACTIVE.append(w)
    try:
        yield w
    finally:
        _ACTIVE.remove(w)
        monkeypatch.setattr(ort, "InferenceSession", real)


# -- cost of one call ---------------------------------------------------------------------------


@dataclass
class Cost:
    """What one call raised, how long it took and its tracemalloc peak."""

    error: BaseException | None
    seconds: float
    peak_mib: float


def cost(fn: Callable[[], object]) -> Cost:
    """Run ``fn`` under tracemalloc; any exception is returned (the test judges it), not raised."""
    error: BaseException | None = None
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # MemoryError & co. included: the old decoder raised them
        error = exc
    finally:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Cost(error, seconds, peak / 2**20)
