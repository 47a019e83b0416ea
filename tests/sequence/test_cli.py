"""``vaerans compress --sequence``, ``decompress`` and ``info`` of sequence streams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.sequence.conftest import moving_frames
from vaerans_ecs.cli import main


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    folder = tmp_path / "clip"
    folder.mkdir()
    for k, frame in enumerate(moving_frames(5, 32, 40, step=(1, 1), seed=2)):
        Image.fromarray(frame).save(folder / f"shot_{k:03d}.png")
    return folder


def test_lossless_round_trip_keeps_the_source_names(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.vae"
    assert main(["compress", "--sequence", str(clip), "--lossless", "--gop", "3", "--fps", "25"]) == 0
    assert out.exists()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 frames of 40 x 32, lossless, 25/1 fps" in text and "GOP       frames 3..4" in text
    assert main(["info", "--json", str(out)]) == 0
    described = json.loads(capsys.readouterr().out)[0]
    assert described["keyframes"] == [0, 3] and len(described["frame_bytes"]) == 5
    assert main(["decompress", str(out)]) == 0
    frames_dir = tmp_path / "clip.vae.frames"
    names = sorted(p.name for p in frames_dir.iterdir())
    assert names == [f"shot_{k:03d}.png" for k in range(5)]
    for name in names:
        assert np.array_equal(np.asarray(Image.open(frames_dir / name)), np.asarray(Image.open(clip / name)))
    # again: the frames exist, so nothing is replaced without --force
    assert main(["decompress", str(out)]) == 1
    assert main(["decompress", str(out), "--force"]) == 0


def test_pattern_video_output_and_guards(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("av")
    stream = tmp_path / "lossy.vae"
    assert main(["compress", "--sequence", str(clip / "*.png"), "-q", "50", "-o", str(stream)]) == 0
    assert main(["compress", "--sequence", str(clip / "*.png"), "-q", "50", "-o", str(stream)]) == 1  # exists
    mkv = tmp_path / "lossy.mkv"
    assert main(["decompress", str(stream), "-o", str(mkv)]) == 0
    from vaerans_ecs.sequence import decompress_sequence
    from vaerans_ecs.sequence.frames import open_frames

    assert all(np.array_equal(a, b) for a, b in zip(open_frames(mkv), decompress_sequence(stream), strict=True))
    # a video file is a source too
    again = tmp_path / "again.vae"
    assert main(["compress", "--sequence", str(mkv), "--lossless", "-o", str(again)]) == 0
    assert sum(1 for _ in decompress_sequence(again)) == 5
    # the inputs are never replaced; image and sequence streams do not mix in one call
    assert main(["compress", "--sequence", str(clip / "shot_000.png"), str(clip / "shot_001.png"),
                 "-o", str(clip / "shot_000.png"), "--force"]) == 1
    image = tmp_path / "one.vae"
    assert main(["compress", str(clip / "shot_000.png"), "-o", str(image)]) == 0
    assert main(["decompress", str(stream), str(image), "--out-dir", str(tmp_path / "x")]) == 2
