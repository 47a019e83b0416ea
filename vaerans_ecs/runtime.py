"""onnxruntime access: lazy import with install checks, provider choice, shared sessions, inference.

* :func:`import_onnxruntime` imports onnxruntime on first use and turns the classic broken
  installs (no package, two builds such as ``onnxruntime`` + ``onnxruntime-gpu`` overwriting each
  other's ``onnxruntime/`` folder, a half-uninstalled folder) into an
  :class:`~vaerans_ecs.errors.OnnxRuntimeInstallError` that says how to fix them.
* :func:`choose_providers` turns ``[runtime] providers`` (``["auto"]`` by default) into an
  execution-provider list: CUDA when this onnxruntime build offers it, else CPU.
* :func:`get_session` returns one cached ``InferenceSession`` per (model file, providers,
  threads), created under a lock and shared by every thread (``run`` is thread-safe in ORT).
* :func:`run_session` runs a session on one numpy batch; on CUDA it uses I/O binding.

Memory: sessions are created with onnxruntime's memory-pattern planning off. Why: the planner
pre-allocates one block per input shape holding every intermediate tensor at once, which doubled
the working memory of a 1088x1088 tile (369 -> 185 MiB for the default encoder) for no measurable
speed-up at 768x512. The CPU memory arena stays on (without it glibc fragmentation made peaks
larger); ``run_session(..., release_memory=True)`` shrinks it after a run, so that the working
memory of the last tile of a large image goes back to the OS before the next stages run.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ModelError, OnnxRuntimeInstallError

__all__ = [
    "CPU",
    "CUDA",
    "FIX_INSTRUCTIONS",
    "ORT_DISTRIBUTIONS",
    "SessionInfo",
    "choose_providers",
    "clear_session_cache",
    "get_session",
    "import_onnxruntime",
    "installed_onnxruntime_distributions",
    "normalize_providers",
    "read_metadata",
    "run_session",
    "session_cache_size",
    "session_device",
    "stat_key",
]

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

#: Distributions known to install the ``onnxruntime`` import package (they overwrite each other).
ORT_DISTRIBUTIONS: tuple[str, ...] = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-cann",
    "onnxruntime-qnn",
    "onnxruntime-silicon",
    "onnxruntime-coreml",
    "onnxruntime-vitisai",
    "onnxruntime-training",
    "onnxruntime-training-gpu",
    "ort-nightly",
    "ort-nightly-gpu",
    "ort-nightly-directml",
    "ort-nightly-qnn",
)

# Packages named onnxruntime-* that ship a *different* import package (they are compatible).
_NOT_RUNTIME = ("onnxruntime-extensions", "onnxruntime-genai", "onnxruntime-tools")
_RUNTIME_NAME = re.compile(r"^(onnxruntime|ort-nightly)([-_.].*)?$")

FIX_INSTRUCTIONS = """\
Fix: remove every onnxruntime build, then install exactly one:
    python -m pip uninstall -y {uninstall}
    python -m pip install 'vaerans_ecs[cpu]'     # CPU only (or: python -m pip install onnxruntime)
    python -m pip install 'vaerans_ecs[cuda]'    # NVIDIA GPU (or: python -m pip install onnxruntime-gpu)
(The builds all install into the same 'onnxruntime/' folder: whichever was installed last wins,
and uninstalling one of two deletes files the other needs.)"""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions() -> Iterable[Any]:
    """All installed distributions (a seam for tests, which monkeypatch it)."""
    return importlib.metadata.distributions()


def _ships_onnxruntime(dist: Any, name: str) -> bool:
    """Does ``dist`` install the ``onnxruntime`` import package?"""
    if name in ORT_DISTRIBUTIONS:
        return True
    if name in _NOT_RUNTIME or not _RUNTIME_NAME.match(name):
        return False
    try:
        files = dist.files
    except Exception:  # pragma: no cover - exotic metadata backends
        files = None
    if files:
        return any(Path(str(f)).parts[:1] == ("onnxruntime",) for f in files)
    try:
        top = dist.read_text("top_level.txt")
    except Exception:  # pragma: no cover
        top = None
    if top:
        return "onnxruntime" in top.split()
    return True  # an onnxruntime-*/ort-nightly-* build we cannot inspect: assume it is one


def installed_onnxruntime_distributions() -> list[tuple[str, str]]:
    """``(name, version)`` of every installed distribution providing ``import onnxruntime``."""
    found: dict[str, str] = {}
    for dist in _distributions():
        try:
            raw = dist.metadata["Name"]
        except Exception:  # pragma: no cover - broken metadata
            continue
        if not raw:
            continue
        name = _normalize(str(raw))
        if name in found or not _ships_onnxruntime(dist, name):
            continue
        found[name] = str(getattr(dist, "version", "") or "?")
    return sorted(found.items())


def _uninstall_list(names: Sequence[str]) -> str:
    return " ".join(dict.fromkeys([*names, "onnxruntime", "onnxruntime-gpu"]))


_ort: ModuleType | None = None
_ort_lock = threading.Lock()


def import_onnxruntime() -> ModuleType:
    """Import onnxruntime once, raising :class:`OnnxRuntimeInstallError` with a fix when it is broken."""
    global _ort
    if _ort is not None:
        return _ort
    with _ort_lock:
        if _ort is not None:
            return _ort
        dists = installed_onnxruntime_distributions()
        names = [n for n, _ in dists]
        listing = ", ".join(f"{n} {v}" for n, v in dists)
        if len(dists) > 1:
            raise OnnxRuntimeInstallError(
                f"several onnxruntime builds are installed together ({listing}); they overwrite each other "
                "and leave a broken or wrong onnxruntime.\n" + FIX_INSTRUCTIONS.format(uninstall=_uninstall_list(names))
            )
        try:
            module = importlib.import_module("onnxruntime")
        except ImportError as exc:
            if not dists:
                raise OnnxRuntimeInstallError(
                    f"onnxruntime is not installed ({exc}); install it with\n"
                    "    python -m pip install 'vaerans_ecs[cpu]'     # CPU only\n"
                    "    python -m pip install 'vaerans_ecs[cuda]'    # NVIDIA GPU"
                ) from exc
            raise OnnxRuntimeInstallError(
                f"onnxruntime is installed ({listing}) but cannot be imported: {exc}.\n"
                + FIX_INSTRUCTIONS.format(uninstall=_uninstall_list(names))
            ) from exc
        if not hasattr(module, "InferenceSession"):
            where = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
            raise OnnxRuntimeInstallError(
                f"the onnxruntime package at {where} is incomplete (no InferenceSession): typically the "
                f"left-over of uninstalling one of two onnxruntime builds (installed: {listing or 'none'}).\n"
                + FIX_INSTRUCTIONS.format(uninstall=_uninstall_list(names))
            )
        _ort = module
        return module


# -- providers ----------------------------------------------------------------------------------

_ALIASES = {
    "cpu": CPU,
    "cuda": CUDA,
    "gpu": CUDA,
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


def normalize_providers(requested: str | Sequence[str] | None) -> tuple[str, ...]:
    """Spell a provider request out: short aliases (``"cpu"``, ``"cuda"``) become ORT names."""
    if requested is None:
        from vaerans_ecs.config import get_config

        requested = get_config().runtime.providers
    items = [requested] if isinstance(requested, str) else list(requested)
    out: list[str] = []
    for item in items:
        name = _ALIASES.get(item.lower(), "auto" if item.lower() == "auto" else item)
        if name not in out:
            out.append(name)
    return tuple(out) or ("auto",)


def choose_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Execution providers to create sessions with.

    ``"auto"`` (or ``["auto"]``, the default) gives ``[CUDA, CPU]`` when this onnxruntime build
    offers CUDA, else ``[CPU]``; :func:`get_session` then checks that CUDA really came up and falls
    back to CPU if not. An explicit list is honoured in order; providers this build lacks are
    dropped with a warning, and a list left empty raises :class:`ModelError`. ``None`` reads
    ``[runtime] providers`` from the configuration.
    """
    names = normalize_providers(requested)
    ort = import_onnxruntime()
    available = list(ort.get_available_providers())
    if names == ("auto",):
        return [CUDA, CPU] if CUDA in available else [CPU]
    if "auto" in names:
        raise ModelError(f"providers: 'auto' cannot be combined with other providers, got {list(names)}")
    chosen = [n for n in names if n in available]
    dropped = [n for n in names if n not in available]
    if dropped:
        log.warning("onnxruntime providers %s are not available in this build (available: %s)", dropped, available)
    if not chosen:
        raise ModelError(
            f"none of the requested onnxruntime providers {list(names)} is available; this build offers "
            f'{available}. Use providers = ["auto"], or install the matching build '
            "(python -m pip install 'vaerans_ecs[cuda]' for CUDA)"
        )
    return chosen


# -- sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """What a cached session was created for, and what it really runs on."""

    path: str
    requested: tuple[str, ...]
    providers: tuple[str, ...]
    threads: int


_sessions: dict[tuple[Any, ...], tuple[Any, SessionInfo]] = {}
_sessions_lock = threading.Lock()


def _session_options(threads: int, *, optimize: bool = True) -> Any:
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    opts.log_severity_level = 3  # provider fall-backs are detected and logged by us
    opts.enable_mem_pattern = False  # halves the working memory of large inputs (module docstring)
    return opts


def _create(path: str, providers: list[str], threads: int) -> Any:
    ort = import_onnxruntime()
    try:
        return ort.InferenceSession(path, sess_options=_session_options(threads), providers=providers)
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
        raise ModelError(f"onnxruntime cannot load {path} with providers {providers}: {exc}") from exc


def stat_key(path: Path) -> tuple[str, int, int]:
    """(path, mtime, size): identifies one version of a file for caches."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror or exc}") from None
    return str(path), st.st_mtime_ns, st.st_size


def get_session(
    path: str | os.PathLike[str],
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
) -> Any:
    """The shared ``InferenceSession`` for ``path`` (created once per file version, providers, threads).

    ``providers`` as in :func:`choose_providers` (``None`` = configuration); ``threads`` is the
    intra-op thread count (``None`` = ``[runtime] intra_op_threads``, 0 = onnxruntime's default).
    With ``auto``, a session that asked for CUDA but did not get it is replaced by a CPU one.
    """
    if threads is None:
        from vaerans_ecs.config import get_config

        threads = get_config().runtime.intra_op_threads
    file = Path(path).resolve()
    requested = normalize_providers(providers)
    key = (*stat_key(file), requested, int(threads))
    hit = _sessions.get(key)
    if hit is not None:
        return hit[0]
    with _sessions_lock:
        hit = _sessions.get(key)
        if hit is not None:
            return hit[0]
        chosen = choose_providers(requested)
        session = _create(str(file), chosen, threads)
        active = tuple(session.get_providers())
        wanted_gpu = [p for p in chosen if p != CPU]
        if wanted_gpu and not any(p in active for p in wanted_gpu):
            if requested == ("auto",) or CPU in chosen:
                log.warning(
                    "onnxruntime could not start %s for %s (missing CUDA/cuDNN libraries?); running on CPU",
                    wanted_gpu,
                    file.name,
                )
                if active != (CPU,):
                    session = _create(str(file), [CPU], threads)
                    active = tuple(session.get_providers())
            else:
                raise ModelError(
                    f"onnxruntime could not start {wanted_gpu} for {file}; it runs on {list(active)}. "
                    'Check the CUDA/cuDNN installation, or add CPUExecutionProvider / use providers = ["auto"]'
                )
        # Drop sessions of older versions of the same file.
        for old in [k for k in _sessions if k[0] == key[0] and k[1:3] != key[1:3]]:
            del _sessions[old]
        _sessions[key] = (session, SessionInfo(str(file), requested, active, int(threads)))
        return session


def session_cache_size() -> int:
    """Number of cached sessions."""
    return len(_sessions)


def clear_session_cache() -> None:
    """Forget every cached session (they are freed once no caller holds them)."""
    with _sessions_lock:
        _sessions.clear()


def session_device(session: Any) -> str:
    """``"cuda"`` when ``session`` runs on the CUDA provider, else ``"cpu"``."""
    return "cuda" if CUDA in session.get_providers() else "cpu"


_NP_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _release_options() -> Any:
    """``RunOptions`` asking onnxruntime to shrink its CPU memory arena at the end of the run."""
    opts = import_onnxruntime().RunOptions()
    opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return opts


def run_session(
    session: Any, x: npt.NDArray[Any], *, iobinding: bool | None = None, release_memory: bool = False
) -> npt.NDArray[np.float32]:
    """Run ``session`` on ``x`` (first input -> first output) and return a float32 array.

    The input is cast to the model's input type (float32/float16/float64). On CUDA the input is
    bound from host memory, the output allocated on the device and copied back once (I/O binding);
    on CPU it is a plain ``run``. ``iobinding`` forces either path (tests use it on CPU).
    ``release_memory`` returns the CPU memory arena's free blocks to the OS after the run (CPU
    sessions only): callers set it on the last run of a large image, whose working memory would
    otherwise stay reserved while later stages allocate theirs.
    """
    inp = session.get_inputs()[0]
    out_name = session.get_outputs()[0].name
    dtype = _NP_OF_ORT.get(str(inp.type), np.float32)
    x = np.ascontiguousarray(x, dtype=dtype)
    device = session_device(session)
    use_binding = device == "cuda" if iobinding is None else iobinding
    run_opts = _release_options() if release_memory and device == "cpu" else None
    try:
        if use_binding:
            binding = session.io_binding()
            binding.bind_cpu_input(inp.name, x)
            binding.bind_output(out_name, device)
            session.run_with_iobinding(binding, run_opts)
            y = binding.copy_outputs_to_cpu()[0]
        else:
            y = session.run([out_name], {inp.name: x}, run_opts)[0]
    except Exception as exc:
        raise ModelError(f"onnxruntime inference failed on an input of shape {x.shape}: {exc}") from exc
    return np.asarray(y, dtype=np.float32)


# -- metadata -----------------------------------------------------------------------------------

_meta_cache: dict[tuple[str, int, int], dict[str, str]] = {}
_meta_lock = threading.Lock()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read with onnxruntime (cached per file version)."""
    file = Path(path).resolve()
    key = stat_key(file)
    hit = _meta_cache.get(key)
    if hit is not None:
        return dict(hit)
    ort = import_onnxruntime()
    try:
        sess = ort.InferenceSession(str(file), sess_options=_session_options(1, optimize=False), providers=[CPU])
        meta = {str(k): str(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}
    except Exception as exc:
        raise ModelError(f"{file} is not a loadable ONNX model: {exc}") from exc
    with _meta_lock:
        _meta_cache[key] = meta
    return dict(meta)
