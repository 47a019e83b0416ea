"""Determinism: the same input and settings give byte-identical streams (and identical images).

Checked across repeated calls, across processes (a fresh interpreter with another hash seed),
across ``[runtime] intra_op_threads`` 1 / 2 / 0 (onnxruntime's default), tiled and untiled, and
between ``compress`` and ``compress_batch`` (equal-size images share one inference), with the
synthetic model and with a snapshot of the built-in default model when it is installed (copied
first: it may be retrained while the tests run). Settings that change the stream on purpose
(quality, wavelet, coder, tile size) are not expected to agree with each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vaerans_ecs import api
from vaerans_ecs.config import Config, RuntimeConfig, get_config, set_config
from vaerans_ecs.errors import ModelError
from vaerans_ecs.models import DEFAULT_MODEL, ModelSpec, builtin_model_dirs, register_model, unregister_model

REPO = Path(__file__).resolve().parents[1]

#: (height, width, quality, wavelet, coder, target_bpp)
CASES: list[tuple[int, int, float, str, str, float | None]] = [
    (48, 64, 75.0, "cdf53", "rans", None),
    (37, 23, 30.0, "haar", "range", None),
    (64, 40, 90.0, "none", "rans", None),
    (64, 64, 50.0, "cdf53", "rans", 0.5),
]
TILED = (150, 200)  # with tile_size=64, tile_overlap=16


def image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / (5 + c) + seed) * np.cos(y / 8 - c) for c in range(3)], axis=-1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def run_cases(model: str, threads: int, *, tiled: bool = False) -> list[tuple[str, str]]:
    """(sha256 of the stream, sha256 of the decoded image) per case, under the given settings."""
    runtime = RuntimeConfig(intra_op_threads=threads, **({"tile_size": 64, "tile_overlap": 16} if tiled else {}))
    saved = get_config()
    set_config(Config(runtime=runtime))
    try:
        out = []
        cases = [(*TILED, 60.0, "cdf53", "rans", None)] if tiled else CASES
        for i, (h, w, q, wavelet, coder, bpp) in enumerate(cases):
            img = image(h, w, i)
            if bpp is None:
                data = api.compress(img, q, model=model, wavelet=wavelet, coder=coder)
            else:
                data = api.compress(img, model=model, target_bpp=bpp, wavelet=wavelet, coder=coder)
            out.append((_sha(data), _sha(api.decompress(data).tobytes())))
        return out
    finally:
        set_config(saved)


_CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
from vaerans_ecs.models import register_model
from tests.test_determinism import run_cases
result = {{}}
for name, enc, dec in {models!r}:
    register_model(name, encoder=enc, decoder=dec)
    result[name] = {{str(t): run_cases(name, t) for t in (1, 2)}}
    result[name]["tiled"] = run_cases(name, 2, tiled=True)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def default_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelSpec | None]:
    """A copy of the built-in default model (None when not installed or unreadable right now)."""
    folder = builtin_model_dirs().get(DEFAULT_MODEL)
    if folder is None:
        yield None
        return
    dest = tmp_path_factory.mktemp("default-snapshot")
    for role in ("encoder", "decoder"):
        shutil.copy2(folder / f"{role}.onnx", dest / f"{role}.onnx")
    try:
        spec = register_model(f"{DEFAULT_MODEL}-snapshot", encoder=dest / "encoder.onnx",
                              decoder=dest / "decoder.onnx", replace_existing=True)
    except ModelError:  # caught mid-rewrite by the training job
        yield None
        return
    yield spec
    unregister_model(spec.name)


@pytest.fixture(params=["synthetic", "default"])
def model(request: pytest.FixtureRequest, synthetic_model: ModelSpec,
          default_snapshot: ModelSpec | None) -> ModelSpec:
    if request.param == "synthetic":
        return synthetic_model
    if default_snapshot is None:
        pytest.skip(f"built-in model {DEFAULT_MODEL} not installed (or being rewritten)")
    return default_snapshot


def test_repeat_calls_are_identical(model: ModelSpec) -> None:
    first = run_cases(model.name, 1)
    assert run_cases(model.name, 1) == first
    assert run_cases(model.name, 1, tiled=True) == run_cases(model.name, 1, tiled=True)


@pytest.mark.parametrize("threads", [2, 0])
def test_intra_op_threads_do_not_change_the_stream(model: ModelSpec, threads: int) -> None:
    assert run_cases(model.name, threads) == run_cases(model.name, 1)
    assert run_cases(model.name, threads, tiled=True) == run_cases(model.name, 1, tiled=True)


def test_batch_equals_single(model: ModelSpec) -> None:
    """compress_batch runs equal-size images as one inference; the streams must not depend on it."""
    imgs = [image(40, 56, s) for s in range(3)] + [image(33, 17, 9)]
    single = [api.compress(img, 70, model=model.name) for img in imgs]
    assert api.compress_batch(imgs, 70, model=model.name) == single
    outs = api.decompress_batch(single)
    for data, out in zip(single, outs, strict=True):
        np.testing.assert_array_equal(out, api.decompress(data))


def test_across_processes(synthetic_model: ModelSpec, default_snapshot: ModelSpec | None, tmp_path: Path) -> None:
    models = [(synthetic_model.name, str(synthetic_model.encoder), str(synthetic_model.decoder))]
    if default_snapshot is not None:
        models.append((default_snapshot.name, str(default_snapshot.encoder), str(default_snapshot.decoder)))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    env.pop("VAERANS_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(repo=str(REPO), models=models)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, _, _ in models:
        here = [list(x) for x in run_cases(name, 1)]
        assert child[name]["1"] == here, f"{name}: another process wrote different streams"
        assert child[name]["2"] == here, f"{name}: another process with 2 threads wrote different streams"
        assert child[name]["tiled"] == [list(x) for x in run_cases(name, 1, tiled=True)]
