"""``vaerans eval --video``: sequence mode, all-intra and an FFmpeg anchor on a tiny synthetic clip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.sequence.conftest import moving_frames
from vaerans_ecs.eval.cli import main


def test_video_eval_writes_points_bd_rates_and_speed(tmp_path: Path) -> None:
    pytest.importorskip("av")
    clip = tmp_path / "clips" / "pan"
    clip.mkdir(parents=True)
    for k, frame in enumerate(moving_frames(4, 32, 48, step=(1, 1))):
        Image.fromarray(frame).save(clip / f"frame_{k:04d}.png")
    out = tmp_path / "out"
    status = main(["--video", str(tmp_path / "clips"), "--codecs", "vaerans-seq,vaerans,x264", "--out", str(out),
                   "--qualities", "vaerans-seq=40,70,95", "--qualities", "vaerans=40,70,95",
                   "--qualities", "x264=18,28,38", "--no-plots", "--quiet"])
    assert status == 0
    payload = json.loads((out / "results.json").read_text())
    codecs = {p["codec"] for p in payload["points"]}
    assert codecs == {"vaerans-seq", "vaerans", "x264"}
    assert all(p["frames"] == 4 and p["bpp"] > 0 for p in payload["points"])
    seq = [p for p in payload["points"] if p["codec"] == "vaerans-seq"]
    assert all(p["keyframes"] == 1 for p in seq)
    assert set(payload["bd_rate"]) == {"vaerans", "x264"}
    summary = (out / "summary.md").read_text()
    assert "BD-rate (PSNR) against vaerans" in summary and "frames/s" in summary
    with pytest.raises(SystemExit):
        main(["--out", str(out)])  # neither --data nor --video
