"""Data safety of batch jobs: what a job may replace, and a journal that is damaged or forged.

A job replaces only files it wrote (journal record matching the file, or exactly the bytes it
produces), anything else only with ``overwrite = true``, an input never; the report may not be an
input or a user's file; an output that appears while the job runs is left alone; and whatever the
journal holds, the job runs, writes its report and never crashes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.batch.helpers import contents, photos
from vaerans_ecs import api
from vaerans_ecs.batch import MANIFEST_NAME, Progress, run_job
from vaerans_ecs.config import JobConfig
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.models import ModelSpec


def _job(tmp_path: Path, model: ModelSpec, **kw: object) -> JobConfig:
    fields: dict[str, object] = {
        "inputs": [str(tmp_path / "photos" / "*.png")], "output_dir": tmp_path / "out", "quality": 50.0,
        "model": model.name,
    }
    fields.update(kw)
    return JobConfig.model_validate(fields)


def test_report_path_that_is_an_input_fails_and_keeps_the_photo(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    made = photos(tmp_path / "photos", 2)
    before = made[0].read_bytes()
    for overwrite in (False, True):
        with pytest.raises(VaeransError, match="one of the job's inputs"):
            run_job(_job(tmp_path, synthetic_model, report=made[0], overwrite=overwrite))
        assert made[0].read_bytes() == before
    assert not list((tmp_path / "out").glob("*.vae"))  # failed before any work


def test_users_report_json_among_the_inputs_is_kept(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    # output_dir is the input folder and the glob takes everything: the user's report.json is an input
    photos(tmp_path / "photos", 2)
    users = tmp_path / "photos" / "report.json"
    users.write_text('{"my": "notes"}\n')
    job = _job(tmp_path, synthetic_model, inputs=[str(tmp_path / "photos" / "*")], output_dir=tmp_path / "photos")
    with pytest.raises(VaeransError, match="report"):
        run_job(job)
    assert users.read_text() == '{"my": "notes"}\n'
    assert not list((tmp_path / "photos").glob("*.vae"))
    # the job's own report there is no input: it is replaced, and the outputs are skipped next time
    users.unlink()
    assert run_job(job).ok == 2
    report = run_job(job)
    assert (report.skipped, report.failed, len(report.files)) == (2, 0, 2)
    assert json.loads(users.read_text())["totals"]["skipped"] == 2


def test_a_users_file_at_the_report_path_needs_overwrite(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos", 1)
    notes = tmp_path / "notes.json"
    notes.write_text("mine")
    with pytest.raises(VaeransError, match="left as it is"):
        run_job(_job(tmp_path, synthetic_model, report=notes))
    assert notes.read_text() == "mine"
    assert run_job(_job(tmp_path, synthetic_model, report=notes, overwrite=True)).ok == 1
    assert json.loads(notes.read_text())["totals"]["ok"] == 1


def test_an_output_appearing_while_the_job_runs_is_kept(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos", 3)
    late = tmp_path / "out" / "img01.vae"

    def appear(p: Progress) -> None:
        if p.done == 0:  # planned, nothing published yet
            late.write_bytes(b"written by someone else meanwhile")

    report = run_job(_job(tmp_path, synthetic_model), on_progress=appear)
    assert (report.ok, report.failed) == (2, 1)
    assert "appeared" in (report.files[1].error or "")
    assert late.read_bytes() == b"written by someone else meanwhile"


def test_outputs_identical_to_what_the_job_makes_are_its_own(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    # the journal is lost: the outputs are recognised by their content, not refused as someone else's
    photos(tmp_path / "photos", 3)
    job = _job(tmp_path, synthetic_model)
    assert run_job(job).ok == 3
    before = contents(tmp_path / "out")
    (tmp_path / "out" / MANIFEST_NAME).unlink()
    report = run_job(job)
    assert (report.ok, report.failed) == (3, 0), [f.error for f in report.files]
    after = contents(tmp_path / "out")
    assert {k: v for k, v in after.items() if k.endswith(".vae")} == {
        k: v for k, v in before.items() if k.endswith(".vae")
    }
    assert run_job(job).skipped == 3  # recorded again


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "damage",
    ["nested", "wrong_types", "folder", "garbage", "huge_line", "foreign_version", "escaping_path"],
)
def test_a_damaged_journal_never_crashes_the_job(tmp_path: Path, synthetic_model: ModelSpec, damage: str) -> None:
    photos(tmp_path / "photos", 3)
    job = _job(tmp_path, synthetic_model, operation="roundtrip-eval")
    assert run_job(job).ok == 3
    journal = tmp_path / "out" / MANIFEST_NAME
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    streams = {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*.vae")}
    if damage == "nested":
        journal.write_text(_nested(200_000) + "\n" + json.dumps({"v": 1, "output": _nested(100_000)}) + "\n")
    elif damage == "wrong_types":  # valid but for one field each
        bad = [{**records[0], "psnr": "x"}, {**records[1], "size": True}, {**records[2], "width": 1.5}]
        journal.write_text("".join(json.dumps(r) + "\n" for r in bad))
    elif damage == "folder":
        journal.unlink()
        journal.mkdir()
    elif damage == "garbage":
        journal.write_bytes(b"\x00\xff not json\n{\"v\": 1}\n[1, 2]\n\"text\"\n{\n")
    elif damage == "huge_line":
        journal.write_text("{" + " " * (1 << 17) + "\n" + json.dumps(records[0]) + "\n")
    elif damage == "foreign_version":
        journal.write_text("".join(json.dumps({**r, "v": True}) + "\n" for r in records))
    else:
        journal.write_text("".join(json.dumps({**r, "output": "../" + r["output"]}) + "\n" for r in records))
    report = run_job(job)
    assert (report.failed, report.ok + report.skipped) == (0, 3), [f.error for f in report.files]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*.vae")} == streams
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["totals"]["failed"] == 0 and doc["totals"]["mean_psnr"] > 10
    if damage == "huge_line":
        assert report.skipped == 1  # the valid record after the long line still counts


def test_a_forged_record_never_replaces_an_original(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    # photos and their streams side by side; journal lines claim the job wrote the photos
    made = photos(tmp_path / "p", 2)
    for photo in made:
        photo.with_suffix(".vae").write_bytes(api.compress(api_image(photo), 50, synthetic_model.name))
    originals = {p.name: p.read_bytes() for p in made}
    journal = tmp_path / "p" / MANIFEST_NAME
    photo = made[0].read_bytes()
    forged = {
        "v": 1, "output": made[0].name, "size": len(photo), "sha256": hashlib.sha256(b"other").hexdigest(),
        "input": str(made[0].with_suffix(".vae")), "input_size": 1, "input_mtime_ns": 1, "params": "forged",
        "width": 56, "height": 40, "bpp": 1.0, "psnr": None, "seconds": 0.1,
    }
    minimal = {"v": 1, "output": made[1].name}
    journal.write_text(json.dumps(forged) + "\n" + json.dumps(minimal) + "\n")
    dec = JobConfig(inputs=[str(tmp_path / "p" / "*.vae")], output_dir=tmp_path / "p", operation="decompress")
    report = run_job(dec)
    assert (report.failed, report.ok) == (2, 0)
    assert all("did not write" in (f.error or "") for f in report.files)
    # when the photos are inputs too, not even a record with the photo's true hash makes it an output
    journal.write_text(json.dumps({**forged, "sha256": hashlib.sha256(photo).hexdigest()}) + "\n")
    for overwrite in (False, True):
        job = dec.model_copy(update={"inputs": [str(tmp_path / "p" / "*")], "overwrite": overwrite})
        report = run_job(job)
        assert report.ok == 0
        assert any("would overwrite an input" in (f.error or "") for f in report.files)
    assert {p.name: p.read_bytes() for p in made} == originals


def api_image(path: Path) -> object:
    """The RGB array of an image file."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_a_file_where_an_output_folder_should_be(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos" / "a", 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("a file, not a folder")
    report = run_job(_job(tmp_path, synthetic_model, inputs=[str(tmp_path / "photos" / "**" / "*.png")]))
    assert report.failed == 1 and "not a folder" in (report.files[0].error or "")
    assert (tmp_path / "out" / "a").read_text() == "a file, not a folder"
