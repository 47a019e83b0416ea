"""Golden streams: files written by an earlier build must keep decoding the same.

``tests/fixtures/golden/`` holds small streams made with the synthetic stride-8 VAE, whose ONNX
files are committed next to them (so this test needs neither the onnx package nor its version),
with their expected symbols and images (``tests/fixtures/make_golden.py`` documents how they were
made). The compatibility promise of ``docs/bitstream.md``: the symbols decode bit-exactly, and the
image within ``image_tolerance`` (1 level: float32 last bits may differ between machines).

A change that breaks these files must fail here; do not regenerate them to make it pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vaerans_ecs import api
from vaerans_ecs.config import Config, get_config, set_config
from vaerans_ecs.errors import BitstreamError, ModelError
from vaerans_ecs.models import ModelSpec, register_model, unregister_model

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "manifest.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}


@pytest.fixture(scope="module")
def golden_model() -> Iterator[ModelSpec]:
    """The committed synthetic model, registered under the name the streams record; defaults config."""
    saved = get_config()
    set_config(Config())
    folder = GOLDEN / MANIFEST["model_dir"]
    spec = register_model(MANIFEST["model"], encoder=folder / "encoder.onnx", decoder=folder / "decoder.onnx",
                          replace_existing=True)
    yield spec
    unregister_model(MANIFEST["model"])
    set_config(saved)


def _load(name: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    data = (GOLDEN / f"{name}.vae").read_bytes()
    symbols = np.load(GOLDEN / f"{name}.symbols.npy")
    image = np.asarray(Image.open(GOLDEN / f"{name}.image.png").convert("RGB"))
    return data, symbols, image


def test_fixture_files_are_intact(golden_model: ModelSpec) -> None:
    assert golden_model.fingerprint == MANIFEST["decoder_fingerprint"], "the committed decoder.onnx was modified"
    assert len(CASES) >= 9
    for name, case in CASES.items():
        data = (GOLDEN / f"{name}.vae").read_bytes()
        assert hashlib.sha256(data).hexdigest() == case["sha256"], f"{name}.vae was modified"
    wavelets = {c["wavelet"] for c in CASES.values()}
    coders = {c["coder"] for c in CASES.values()}
    assert {"cdf53", "haar", "none"} <= wavelets and {"rans", "rans-ctx", "range"} <= coders


@pytest.mark.parametrize("name", sorted(CASES))
def test_header_still_parses(golden_model: ModelSpec, name: str) -> None:
    case = CASES[name]
    data = (GOLDEN / f"{name}.vae").read_bytes()
    info = api.inspect(data)
    assert info.version == MANIFEST["stream_version"]
    assert (info.height, info.width) == (case["height"], case["width"])
    assert [s.name for s in info.pipeline] == case["pipeline"]
    plane = info.stream.layers[0].inputs[-1]  # what the entropy coder codes
    assert [plane.channels, plane.height, plane.width] == case["plane"]
    assert info.fingerprint == MANIFEST["decoder_fingerprint"]
    assert info.pipeline[-1].get_config()["coder"] == case["coder"]
    assert info.total_bytes == case["bytes"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbols_bit_exact(golden_model: ModelSpec, name: str) -> None:
    data, expected, _ = _load(name)
    symbols = api.symbols_of(data)
    assert symbols.dtype == np.uint8 and symbols.shape == expected.shape
    np.testing.assert_array_equal(symbols, expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_image_within_tolerance(golden_model: ModelSpec, name: str) -> None:
    data, _, expected = _load(name)
    case = CASES[name]
    image = api.decompress(data)
    assert image.shape == (case["height"], case["width"], 3) and image.dtype == np.uint8
    diff = int(np.abs(image.astype(np.int16) - expected.astype(np.int16)).max())
    assert diff <= MANIFEST["image_tolerance"], f"{name}: max abs diff {diff}"


def test_batch_decode_matches_single(golden_model: ModelSpec) -> None:
    names = sorted(CASES)
    streams = [(GOLDEN / f"{n}.vae").read_bytes() for n in names]
    for name, image in zip(names, api.decompress_batch(streams), strict=True):
        expected = _load(name)[2]
        assert int(np.abs(image.astype(np.int16) - expected).max()) <= MANIFEST["image_tolerance"]


def test_golden_needs_its_model(golden_model: ModelSpec) -> None:
    """Without the recorded model, or with another decoder under its name, decoding refuses."""
    data = (GOLDEN / f"{sorted(CASES)[0]}.vae").read_bytes()
    unregister_model(MANIFEST["model"])
    try:
        with pytest.raises(ModelError, match="not installed here"):
            api.decompress(data)
    finally:
        register_model(golden_model)


def test_corrupted_golden_is_refused(golden_model: ModelSpec) -> None:
    data = bytearray((GOLDEN / f"{sorted(CASES)[0]}.vae").read_bytes())
    data[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError, match="checksum"):
        api.decompress(bytes(data))
