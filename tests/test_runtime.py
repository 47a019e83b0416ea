"""onnxruntime install checks, provider choice, the session cache and inference helpers."""

from __future__ import annotations

import logging
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from vaerans_ecs import runtime
from vaerans_ecs.errors import ModelError, OnnxRuntimeInstallError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.runtime import (
    CPU,
    CUDA,
    choose_providers,
    get_session,
    import_onnxruntime,
    installed_onnxruntime_distributions,
    normalize_providers,
    run_session,
    session_cache_size,
)


class FakeDist:
    """Just enough of importlib.metadata.Distribution."""

    def __init__(self, name: str, version: str = "1.0", files: list[str] | None = None) -> None:
        self.metadata = {"Name": name}
        self.version = version
        self.files = files

    def read_text(self, name: str) -> str | None:
        return None


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the cached onnxruntime module for one test."""
    monkeypatch.setattr(runtime, "_ort", None)


def fake_dists(monkeypatch: pytest.MonkeyPatch, *dists: FakeDist) -> None:
    monkeypatch.setattr(runtime, "_distributions", lambda: list(dists))


# -- import checks --------------------------------------------------------------------------------


def test_import_onnxruntime_works_here() -> None:
    ort = import_onnxruntime()
    assert hasattr(ort, "InferenceSession")
    assert import_onnxruntime() is ort
    names = [n for n, _ in installed_onnxruntime_distributions()]
    assert len(names) == 1


def test_doubled_install_gives_fix_commands(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    fake_dists(monkeypatch, FakeDist("numpy"), FakeDist("onnxruntime", "1.31.1"), FakeDist("onnxruntime_gpu", "1.20"))
    with pytest.raises(OnnxRuntimeInstallError) as info:
        import_onnxruntime()
    msg = str(info.value)
    assert "onnxruntime 1.31.1" in msg and "onnxruntime-gpu 1.20" in msg
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in msg
    assert "vaerans_ecs[cpu]" in msg and "vaerans_ecs[cuda]" in msg
    assert isinstance(info.value, ImportError) and isinstance(info.value, ModelError)


def test_other_builds_are_detected(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    fake_dists(
        monkeypatch,
        FakeDist("onnxruntime"),
        FakeDist("ort-nightly-directml"),
        FakeDist("onnxruntime-newhw", files=["onnxruntime/__init__.py", "onnxruntime/capi/x.so"]),
    )
    with pytest.raises(OnnxRuntimeInstallError, match="ort-nightly-directml") as info:
        import_onnxruntime()
    assert "onnxruntime-newhw" in str(info.value)
    assert "pip uninstall -y onnxruntime onnxruntime-newhw ort-nightly-directml onnxruntime-gpu" in str(info.value)


def test_companion_packages_are_not_builds(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    fake_dists(
        monkeypatch,
        FakeDist("onnxruntime"),
        FakeDist("onnxruntime-extensions"),
        FakeDist("onnxruntime-genai"),
        FakeDist("onnxruntime-foo", files=["onnxruntime_foo/__init__.py"]),
        FakeDist("onnxruntime"),  # the same distribution seen on two sys.path entries
    )
    assert installed_onnxruntime_distributions() == [("onnxruntime", "1.0")]
    assert hasattr(import_onnxruntime(), "InferenceSession")


def test_missing_onnxruntime(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    fake_dists(monkeypatch)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(OnnxRuntimeInstallError, match="not installed") as info:
        import_onnxruntime()
    assert "vaerans_ecs[cpu]" in str(info.value)


def test_import_error_with_a_build_installed(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    fake_dists(monkeypatch, FakeDist("onnxruntime-gpu", "1.20"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OnnxRuntimeInstallError, match="cannot be imported") as info:
        import_onnxruntime()
    assert "pip uninstall -y onnxruntime-gpu onnxruntime" in str(info.value)


def test_half_uninstalled_folder(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    fake_dists(monkeypatch, FakeDist("onnxruntime"))
    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    with pytest.raises(OnnxRuntimeInstallError, match="no InferenceSession"):
        import_onnxruntime()


# -- providers ------------------------------------------------------------------------------------


def test_provider_names() -> None:
    assert normalize_providers("auto") == ("auto",)
    assert normalize_providers(["CUDA", "cpu", "cpu"]) == (CUDA, CPU)
    assert normalize_providers([]) == ("auto",)


def test_auto_falls_back_to_cpu_here() -> None:
    if CUDA in import_onnxruntime().get_available_providers():  # pragma: no cover - GPU build
        pytest.skip("this onnxruntime build offers CUDA")
    assert choose_providers("auto") == [CPU]
    assert choose_providers(["auto"]) == [CPU]
    assert choose_providers(["cuda", "cpu"]) == [CPU]
    with pytest.raises(ModelError, match="none of the requested"):
        choose_providers(["cuda"])
    with pytest.raises(ModelError, match="cannot be combined"):
        choose_providers(["auto", "cpu"])


class FakeSession:
    def __init__(self, path: str, sess_options: Any = None, providers: list[str] | None = None) -> None:
        self.asked = list(providers or [])
        FakeOrt.created.append(self)

    def get_providers(self) -> list[str]:
        return [CPU]  # CUDA was offered by the build but failed to start


class FakeOrt(types.ModuleType):
    """An onnxruntime whose build lists CUDA but whose sessions never get it."""

    created: ClassVar[list[FakeSession]] = []
    InferenceSession = FakeSession

    def __init__(self) -> None:
        super().__init__("onnxruntime")
        real = import_onnxruntime()
        self.SessionOptions = real.SessionOptions
        self.GraphOptimizationLevel = real.GraphOptimizationLevel
        FakeOrt.created = []

    @staticmethod
    def get_available_providers() -> list[str]:
        return [CUDA, CPU]


def test_auto_prefers_cuda_and_checks_the_session(
    monkeypatch: pytest.MonkeyPatch, synthetic_model: ModelSpec, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "_ort", FakeOrt())
    monkeypatch.setattr(runtime, "_sessions", {})
    assert choose_providers("auto") == [CUDA, CPU]
    with caplog.at_level(logging.WARNING, logger="vaerans_ecs.runtime"):
        session = get_session(synthetic_model.decoder, "auto", 0)
    assert FakeOrt.created[0].asked == [CUDA, CPU]
    assert session.get_providers() == [CPU]
    assert "running on CPU" in caplog.text
    with pytest.raises(ModelError, match="could not start"):
        get_session(synthetic_model.decoder, ["cuda"], 0)  # explicit CUDA only: no silent fallback


# -- sessions -------------------------------------------------------------------------------------


def test_session_cache_and_options(synthetic_model: ModelSpec, tmp_path: Path) -> None:
    ort = import_onnxruntime()
    a = get_session(synthetic_model.encoder, "cpu", 1)
    assert get_session(str(synthetic_model.encoder), ["CPUExecutionProvider"], 1) is a
    n = session_cache_size()
    opts = a.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    b = get_session(synthetic_model.encoder, "cpu", 2)
    assert b is not a and session_cache_size() == n + 1
    assert get_session(synthetic_model.encoder, "cpu", 1) is a


def test_session_cache_notices_a_new_file(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(synthetic_model.encoder.read_bytes())
    first = get_session(path, "cpu", 1)
    path.write_bytes(synthetic_model.decoder.read_bytes())
    second = get_session(path, "cpu", 1)
    assert second is not first
    assert second.get_inputs()[0].name == "latent"
    with pytest.raises(ModelError, match="cannot be read"):
        get_session(tmp_path / "missing.onnx", "cpu", 1)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        get_session(tmp_path / "junk.onnx", "cpu", 1)


def test_run_session_iobinding_matches_plain_run(synthetic_model: ModelSpec) -> None:
    session = get_session(synthetic_model.encoder, "cpu", 1)
    x = np.random.default_rng(0).random((2, 3, 16, 24)).astype(np.float64)  # cast to the input type
    plain = run_session(session, x)
    bound = run_session(session, x, iobinding=True)
    assert plain.dtype == np.float32 and plain.shape == (2, 4, 2, 3)
    np.testing.assert_array_equal(plain, bound)
    with pytest.raises(ModelError, match="inference failed"):
        run_session(session, np.zeros((1, 3, 12, 12), np.float32))  # not a multiple of the stride


def test_concurrent_get_session_creates_one(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    path = tmp_path / "shared.onnx"
    path.write_bytes(synthetic_model.encoder.read_bytes())
    with ThreadPoolExecutor(4) as pool:
        sessions = list(pool.map(lambda _: get_session(path, "cpu", 1), range(8)))
    assert all(s is sessions[0] for s in sessions)
    x = np.random.default_rng(1).random((1, 3, 8, 8)).astype(np.float32)
    with ThreadPoolExecutor(4) as pool:  # ORT sessions are safe for concurrent run()
        outs = list(pool.map(lambda _: run_session(sessions[0], x), range(8)))
    assert all(np.array_equal(o, outs[0]) for o in outs)
