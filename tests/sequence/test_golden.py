"""Frozen sequence streams (tests/fixtures/golden_seq, made by tests/fixtures/make_golden_seq.py)
keep decoding as they did: the compatibility promise of docs/bitstream.md for sequences."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaerans_ecs.sequence import decompress_frame, decompress_sequence, inspect_sequence

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden_seq"
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "manifest.json").read_text())
CASES: dict[str, dict[str, Any]] = MANIFEST["cases"]


def test_files_are_untouched_and_cover_every_way_of_coding() -> None:
    for name, case in CASES.items():
        assert hashlib.sha256((GOLDEN / f"{name}.vae").read_bytes()).hexdigest() == case["sha256"], name
    assert any(any(case["bframes"]) for case in CASES.values())  # B-frames
    assert any(sum(case["keyframes"]) > 1 for case in CASES.values())  # more than one GOP
    assert {case["max_error"] for case in CASES.values() if case["exact"]} == {0, 2}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decodes_as_it_did(name: str) -> None:
    case = CASES[name]
    data = (GOLDEN / f"{name}.vae").read_bytes()
    info = inspect_sequence(data)
    assert list(info.keyframes) == case["keyframes"] and list(info.bframes) == case["bframes"]
    decoded = np.stack(list(decompress_sequence(data)))
    expected = np.load(GOLDEN / f"{name}.decoded.npy")
    assert decoded.shape == expected.shape and decoded.dtype == expected.dtype
    diff = int(np.abs(decoded.astype(np.int64) - expected).max())
    assert diff <= (0 if case["exact"] else MANIFEST["image_tolerance"]), f"{name}: max abs diff {diff}"
    if case["exact"]:
        source = np.load(GOLDEN / "source.npy")
        assert int(np.abs(decoded.astype(np.int64) - source).max()) <= case["max_error"]
    last = len(case["keyframes"]) - 1  # random access agrees with the full decode
    np.testing.assert_array_equal(decompress_frame(data, last), decoded[last])
