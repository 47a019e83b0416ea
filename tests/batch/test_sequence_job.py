"""Batch ``operation = "compress-sequence"``: clip folders and video files become sequence streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.sequence.conftest import moving_frames
from vaerans_ecs.batch import run_job
from vaerans_ecs.config import JobConfig
from vaerans_ecs.sequence import decompress_sequence


def test_each_folder_is_one_sequence_and_a_second_run_skips_them(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    sources = {}
    for name, seed in (("walk", 1), ("pan", 2)):
        folder = clips / name
        folder.mkdir(parents=True)
        frames = moving_frames(4, 24, 32, step=(1, 1), seed=seed)
        sources[name] = frames
        for k, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"f{k:02d}.png")
    job = JobConfig(inputs=[str(clips / "*" / "*.png")], output_dir=tmp_path / "out",
                    operation="compress-sequence", lossless=True)
    report = run_job(job)
    assert [r.status for r in report.files] == ["ok", "ok"]
    for name, frames in sources.items():
        out = list(decompress_sequence(tmp_path / "out" / f"{name}.vae"))
        assert all(np.array_equal(a, b) for a, b in zip(frames, out, strict=True))
    assert all(r.width == 32 and r.height == 24 and r.bpp is not None and r.bpp < 24 for r in report.files)
    again = run_job(job)
    assert [r.status for r in again.files] == ["skipped", "skipped"]
    # a changed frame makes its sequence stale again
    Image.fromarray(sources["pan"][0][::-1].copy()).save(clips / "pan" / "f00.png")
    third = run_job(job)
    assert sorted(r.status for r in third.files) == ["ok", "skipped"]


def test_a_video_file_is_a_sequence(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from vaerans_ecs.sequence.frames import write_frames

    frames = moving_frames(3, 24, 32, step=(0, 1), seed=4)
    write_frames(frames, tmp_path / "v.mkv")
    (tmp_path / "notes.txt").write_text("not a frame")
    job = JobConfig(inputs=[str(tmp_path / "v.mkv"), str(tmp_path / "notes.txt")], output_dir=tmp_path / "out",
                    operation="compress-sequence", quality=60)
    report = run_job(job)
    status = {Path(r.input).name: r.status for r in report.files}
    assert status == {"v.mkv": "ok", "notes.txt": "error"}
    assert len(list(decompress_sequence(tmp_path / "out" / "v.vae"))) == 3
