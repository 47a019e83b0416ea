"""Golden v2 streams: every stage family's streams written by this build keep decoding the same.

``tests/fixtures/golden_v2/`` (made by ``tests/fixtures/make_golden_v2.py``; VAE cases use the
committed synthetic model of ``tests/fixtures/golden/``). Exact cases (lossless, max_error, a
layered lossless stream) must decode to the very same pixels; lossy ones within one level; the
VAE cases' symbols bit-exactly. A change that breaks these files must fail here; do not regenerate
them to make it pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaerans_ecs import api
from vaerans_ecs.config import Config
from vaerans_ecs.models import ModelSpec, register_model, unregister_model

HERE = Path(__file__).resolve().parent / "fixtures"
GOLDEN = HERE / "golden_v2"
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "manifest.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}
CFG = Config()


@pytest.fixture(scope="module")
def golden_model() -> Iterator[ModelSpec]:
    folder = HERE / "golden" / "model-s8"
    spec = register_model(MANIFEST["model"], encoder=folder / "encoder.onnx", decoder=folder / "decoder.onnx",
                          replace_existing=True)
    yield spec
    unregister_model(MANIFEST["model"])


def test_files_are_untouched_and_cover_every_family() -> None:
    for name, case in CASES.items():
        assert hashlib.sha256((GOLDEN / f"{name}.vae").read_bytes()).hexdigest() == case["sha256"], name
    coders = {layer[-1] for case in CASES.values() for layer in case["layers"]}
    assert {"ANSEncode", "TransformCode", "PixelCode"} <= coders
    assert any(len(case["layers"]) == 2 for case in CASES.values())
    assert {"icc", "exif"} <= set(CASES["vae_cdf53_ransctx_meta"]["metadata"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_decodes_as_it_did(golden_model: ModelSpec, name: str) -> None:
    case = CASES[name]
    data = (GOLDEN / f"{name}.vae").read_bytes()
    info = api.inspect(data, config=CFG)
    assert info.version == MANIFEST["stream_version"]
    assert [[s["stage"] for s in layer] for layer in info.stages] == case["layers"]
    assert (info.channels, info.bit_depth) == (case["channels"], case["bit_depth"])
    assert sorted(info.stream.metadata) == case["metadata"]
    decoded = api.decompress(data, config=CFG)
    expected = np.load(GOLDEN / f"{name}.decoded.npy")
    assert decoded.shape == expected.shape and decoded.dtype == expected.dtype
    diff = int(np.abs(decoded.astype(np.int64) - expected).max())
    assert diff <= (0 if case["exact"] else MANIFEST["image_tolerance"]), f"{name}: max abs diff {diff}"
    if case["exact"]:
        source = np.load(GOLDEN / f"{name}.source.npy").reshape(decoded.shape)
        assert int(np.abs(decoded.astype(np.int64) - source).max()) <= case["max_error"]
    symbols_file = GOLDEN / f"{name}.symbols.npy"
    if symbols_file.exists():
        np.testing.assert_array_equal(api.symbols_of(data, config=CFG), np.load(symbols_file))
