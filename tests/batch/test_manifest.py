"""The job journal is untrusted input: any bytes load without error, and only valid records count."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.batch import MANIFEST_NAME, FileResult, ManifestRecord
from vaerans_ecs.batch.manifest import Manifest

GOOD = {
    "v": 1, "output": "a/x.vae", "size": 3, "sha256": "0" * 64, "input": "/in/x.png", "input_size": 10,
    "input_mtime_ns": 5, "params": "p", "width": 4, "height": 2, "bpp": 3.0, "psnr": float("inf"), "seconds": 0.5,
}

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(sorted(GOOD)), inner, max_size=6),
    max_leaves=12,
)


def _load(data: bytes) -> Manifest:
    folder = Path(tempfile.mkdtemp())
    (folder / MANIFEST_NAME).write_bytes(data)
    manifest = Manifest(folder)
    manifest.load()
    return manifest


@settings(max_examples=150, deadline=None)
@given(st.lists(_json | st.binary(max_size=40).map(lambda b: b.decode("latin-1")), max_size=6))
def test_any_journal_loads(lines: list[object]) -> None:
    data = b"".join((json.dumps(x) if not isinstance(x, str) else x).encode("utf-8", "replace") + b"\n" for x in lines)
    manifest = _load(data + json.dumps(GOOD).encode() + b"\n")
    assert all(isinstance(r, ManifestRecord) for r in manifest.records.values())
    assert manifest.records[GOOD["output"]] == ManifestRecord(**GOOD)  # a valid line after any garbage counts


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(GOOD)), _json)
def test_a_record_with_any_wrong_field_is_ignored(key: str, value: object) -> None:
    record = {**GOOD, key: value}
    manifest = _load(json.dumps(record).encode() + b"\n")
    try:
        expected = ManifestRecord.model_validate(record)
    except ValueError:
        assert manifest.records == {}
    else:
        assert manifest.records == {expected.output: expected}


def test_paths_must_stay_inside_the_output_folder() -> None:
    for bad in ("../x.vae", "/abs/x.vae", "a/../../x.vae", "a\\x.vae", ".", "a//x.vae", "./x.vae"):
        assert _load(json.dumps({**GOOD, "output": bad}).encode() + b"\n").records == {}


def test_a_lossless_file_reports_null_psnr_in_json() -> None:
    doc = FileResult("in.png", "out.vae", "ok", psnr=float("inf")).to_dict()
    assert doc["psnr"] is None and doc["lossless"] is True
    json.dumps(doc, allow_nan=False)
