"""TOML batch jobs: ``vaerans batch`` in a subprocess, and ``run_job`` for the finer points."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.batch.helpers import MINIMAL_JOB, image, photos, run_batch
from vaerans_ecs import api
from vaerans_ecs.batch import KILL_AFTER_ENV, MANIFEST_NAME, run_job
from vaerans_ecs.config import JobConfig
from vaerans_ecs.models import ModelSpec


def test_minimal_job_with_a_corrupt_input(tmp_path: Path, synthetic_config_file: Path) -> None:
    made = photos(tmp_path / "photos", 3)
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRtruncated")
    (tmp_path / "photos" / "text.png").write_text("just text")
    job = tmp_path / "job.toml"
    job.write_text(MINIMAL_JOB)
    res = run_batch(job, synthetic_config_file)
    assert res.returncode == 1, res.stderr
    for p in made:
        stream = (tmp_path / "out" / p.with_suffix(".vae").name).read_bytes()
        assert api.decompress(stream).shape == np.asarray(Image.open(p)).shape
    assert not (tmp_path / "out" / "broken.vae").exists()
    assert f"error: {tmp_path / 'photos' / 'broken.png'}:" in res.stderr
    assert f"error: {tmp_path / 'photos' / 'text.png'}:" in res.stderr
    assert "5 files: 3 ok, 0 skipped, 2 failed" in res.stdout
    assert "files/s" in res.stderr  # progress bar with rate
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    by_name = {Path(f["input"]).name: f for f in report["files"]}
    assert by_name["broken.png"]["status"] == "error" and by_name["broken.png"]["error"]
    ok = by_name["img00.png"]
    assert ok["status"] == "ok" and ok["bytes"] == (tmp_path / "out" / "img00.vae").stat().st_size
    assert ok["bpp"] == pytest.approx(ok["bytes"] * 8 / (40 * 56)) and ok["seconds"] >= 0
    assert report["totals"]["failed"] == 2
    # inputs untouched, no temporary files left
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == [
        "broken.png", "img00.png", "img01.png", "img02.png", "text.png"
    ]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".vaerans-tmp")]


def test_kill_and_resume_gives_identical_outputs(tmp_path: Path, synthetic_config_file: Path) -> None:
    photos(tmp_path / "photos", 7)
    job = tmp_path / "job.toml"
    job.write_text(MINIMAL_JOB)
    ref = tmp_path / "ref.toml"
    ref.write_text(MINIMAL_JOB.replace('"out"', '"ref"').replace("workers = 2", "workers = 1"))

    res = run_batch(job, synthetic_config_file, "--no-progress", env={KILL_AFTER_ENV: "3"})
    assert res.returncode == -signal.SIGKILL, res.stderr
    done = sorted(p.name for p in (tmp_path / "out").glob("*.vae"))
    assert len(done) == 3
    first = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in done}

    res = run_batch(job, synthetic_config_file)
    assert res.returncode == 0, res.stderr
    assert "7 files: 4 ok, 3 skipped, 0 failed" in res.stdout
    for name, mtime in first.items():  # really skipped, not rewritten
        assert (tmp_path / "out" / name).stat().st_mtime_ns == mtime

    assert run_batch(ref, synthetic_config_file).returncode == 0
    outs = sorted(p.name for p in (tmp_path / "out").glob("*.vae"))
    assert outs == sorted(p.name for p in (tmp_path / "ref").glob("*.vae")) and len(outs) == 7
    for name in outs:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".vaerans-tmp")]


def test_resume_keeps_damaged_outputs_and_redoes_changed_parameters(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos", 3)
    job = JobConfig(inputs=[str(tmp_path / "photos" / "*.png")], output_dir=tmp_path / "out", quality=40,
                    model=synthetic_model.name)
    assert run_job(job).ok == 3
    good = (tmp_path / "out" / "img01.vae").read_bytes()
    damaged = good[:-1] + bytes([good[-1] ^ 1])  # same size, other checksum: no longer what the job wrote
    (tmp_path / "out" / "img01.vae").write_bytes(damaged)
    report = run_job(job)
    assert (report.ok, report.skipped, report.failed) == (0, 2, 1)
    assert "did not write" in (report.files[1].error or "")
    assert (tmp_path / "out" / "img01.vae").read_bytes() == damaged
    report = run_job(job.model_copy(update={"overwrite": True}))
    assert (report.ok, report.skipped) == (1, 2)
    assert (tmp_path / "out" / "img01.vae").read_bytes() == good
    report = run_job(job.model_copy(update={"quality": 80.0}))  # other parameters: everything is redone
    assert report.ok == 3
    assert len(report.files[0].to_dict()) >= 10


def test_existing_outputs_are_refused_unless_overwrite(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    photos(tmp_path / "photos", 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "img00.vae").write_bytes(b"someone else's file")
    job = JobConfig(inputs=[str(tmp_path / "photos" / "*.png")], output_dir=tmp_path / "out",
                    model=synthetic_model.name)
    report = run_job(job)
    assert (report.ok, report.failed) == (1, 1)
    assert "overwrite" in (report.files[0].error or "")
    assert (tmp_path / "out" / "img00.vae").read_bytes() == b"someone else's file"
    report = run_job(job.model_copy(update={"overwrite": True}))
    assert (report.ok, report.skipped, report.failed) == (1, 1, 0)
    assert (tmp_path / "out" / "img00.vae").read_bytes()[:4] == b"\x89VAE"


def test_inputs_are_never_outputs(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    # outputs next to the inputs, globbing everything: earlier outputs are not taken as inputs
    made = photos(tmp_path / "p", 2)
    job = JobConfig(inputs=[str(tmp_path / "p" / "*")], output_dir=tmp_path / "p", model=synthetic_model.name)
    assert run_job(job).ok == 2
    report = run_job(job)
    assert (report.skipped, report.failed, len(report.files)) == (2, 0, 2)
    # decompressing next to the originals: they exist and this job did not write them
    dec = JobConfig(inputs=[str(tmp_path / "p" / "*.vae")], output_dir=tmp_path / "p", operation="decompress")
    before = [p.read_bytes() for p in made]
    report = run_job(dec)
    assert report.failed == 2 and "overwrite" in (report.files[0].error or "")
    # ... and when they are inputs of the job, not even overwrite = true replaces them
    dec = dec.model_copy(update={"inputs": [str(tmp_path / "p" / "*")], "overwrite": True})
    report = run_job(dec)
    errors = [f.error or "" for f in report.files if f.status == "error"]
    assert len(errors) == 4 and all("would overwrite an input" in e for e in errors)
    assert [p.read_bytes() for p in made] == before


def test_roundtrip_eval_decompress_and_list_file(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    made = photos(tmp_path / "a", 2) + photos(tmp_path / "b" / "c", 1)
    listing = tmp_path / "list.txt"
    listing.write_text("# inputs\n" + "\n".join(str(p.relative_to(tmp_path)) for p in made) + "\n\n")
    job = JobConfig(inputs=str(listing), output_dir=tmp_path / "ev", operation="roundtrip-eval", quality=90,
                    model=synthetic_model.name)
    report = run_job(job)
    # list entries keep their paths relative to their common folder; same stems do not collide
    assert report.ok == 3, [f.error for f in report.files]
    assert {Path(f.output or "").relative_to(tmp_path / "ev").as_posix() for f in report.files} == {
        "a/img00.vae", "a/img01.vae", "b/c/img00.vae"
    }
    for f in report.files:
        original = np.asarray(Image.open(f.input)).astype(np.float64)
        decoded = api.decompress(Path(f.output or "").read_bytes()).astype(np.float64)
        assert f.psnr == pytest.approx(10 * np.log10(255**2 / np.mean((original - decoded) ** 2)))
    doc = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert doc["totals"]["mean_psnr"] > 10 and "psnr" in doc["files"][0]

    dec = JobConfig(inputs=[str(tmp_path / "ev" / "**" / "*.vae")], output_dir=tmp_path / "dec",
                    operation="decompress", output_format="jpg", output_quality=90, report=tmp_path / "dec.json")
    report = run_job(dec)
    assert report.ok == 3
    assert Image.open(tmp_path / "dec" / "b" / "c" / "img00.jpg").format == "JPEG"
    assert (tmp_path / "dec.json").is_file()


def test_name_collisions_and_missing_inputs(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    Image.fromarray(image(1)).save(tmp_path / "x.png")
    Image.fromarray(image(2)).save(tmp_path / "x.bmp")
    job = JobConfig(inputs=[str(tmp_path / "x.*"), str(tmp_path / "nope.png"), str(tmp_path / "none*.png")],
                    output_dir=tmp_path / "o", model=synthetic_model.name)
    report = run_job(job)
    assert (report.ok, report.failed) == (1, 2)
    errors = sorted(f.error or "" for f in report.files if f.status == "error")
    assert any("also the output of" in e for e in errors) and any("no such file" in e for e in errors)
    assert report.unmatched == [str(tmp_path / "none*.png")]


def test_dask_local_cluster(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    pytest.importorskip("distributed")
    photos(tmp_path / "photos", 4)
    common = {"inputs": [str(tmp_path / "photos" / "*.png")], "quality": 50.0, "model": synthetic_model.name}
    local = run_job(JobConfig(output_dir=tmp_path / "local", **common))
    dask = run_job(JobConfig(output_dir=tmp_path / "dask", executor="dask", workers=2, **common))
    assert local.ok == 4 and dask.ok == 4, [f.error for f in dask.files]
    assert dask.executor == "dask"
    for f in sorted((tmp_path / "local").glob("*.vae")):
        assert (tmp_path / "dask" / f.name).read_bytes() == f.read_bytes()
    assert (tmp_path / "dask" / MANIFEST_NAME).is_file()
