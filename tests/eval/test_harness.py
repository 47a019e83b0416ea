"""The evaluation harness end to end on tiny generated images (synthetic model + JPEG)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from vaerans_ecs import api
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval import main, parse_codec
from vaerans_ecs.eval.cli import parse_qualities
from vaerans_ecs.eval.codecs import DEFAULT_GRIDS, JpegCodec, VaeransCodec, stage_seconds
from vaerans_ecs.eval.harness import Progress, load_images
from vaerans_ecs.eval.report import mean_curves
from vaerans_ecs.models import ModelSpec

U8 = npt.NDArray[np.uint8]
KODAK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kodak"
ENC_STAGES = ["spawn", "OnnxVAEEncode", "Hadamard4", "WaveletCDF53", "QuantizeU8", "ANSEncode", "other"]
DEC_STAGES = ["parse", "ANSDecode", "Dequantize", "WaveletCDF53", "Hadamard4", "OnnxVAEDecode", "other"]


def picture(h: int, w: int, seed: int) -> U8:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(xx / 7 + seed), 128 + 70 * np.cos(yy / 5), 128 + 50 * np.sin((xx + yy) / 9)], -1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(picture(64, 96, 1)).save(folder / "b.png")
    Image.fromarray(picture(80, 64, 2)).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_quick_run_writes_consistent_outputs(
    data_dir: Path, tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    vae = f"vaerans:model={synthetic_model.name}"
    codecs = f"{vae},jpeg,{vae}:coder=range:wavelet=haar"
    rc = main(
        [
            "--data",
            str(data_dir),
            "--codecs",
            codecs,
            "--out",
            str(out),
            "--qualities",
            "20,50,90",
            "--qualities",
            "jpeg=10,30,60,90",
            "--macs-size",
            "64",
        ]
    )
    assert rc == 0
    for name in ("results.json", "results.csv", "summary.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    if importlib.util.find_spec("matplotlib") is not None:  # plots are skipped without matplotlib
        for name in ("rd_psnr.png", "rd_msssim.png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = capsys.readouterr().err
    assert "100%" in err  # the progress bar went to stderr

    payload = json.loads((out / "results.json").read_text())
    results = payload["results"]
    assert payload["meta"]["images"] == ["a.png", "b.png"]
    labels = [vae, "jpeg", f"{vae}:coder=range:wavelet=haar"]
    assert [c["label"] for c in payload["codecs"]] == labels
    assert len(results) == 2 * 3 + 2 * 4 + 2 * 3
    # Deterministic order: codec, then quality (grid order), then image.
    keys = [(r["codec"], r["quality"], r["image"]) for r in results]
    expect = [
        (c, q, i)
        for c, grid in zip(labels, [[20, 50, 90], [10, 30, 60, 90], [20, 50, 90]], strict=True)
        for q in grid
        for i in ("a.png", "b.png")
    ]
    assert keys == expect
    for r in results:
        assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (r["width"] * r["height"]))
        assert 0 < r["ms_ssim"] <= 1 and r["psnr"] > 10
        assert r["encode_s"] > 0 and r["decode_s"] > 0
        if r["family"] == "vaerans":
            wavelet = "WaveletHaar" if "haar" in r["codec"] else "WaveletCDF53"
            assert list(r["encode_stages"]) == [s.replace("WaveletCDF53", wavelet) for s in ENC_STAGES]
            assert list(r["decode_stages"]) == [s.replace("WaveletCDF53", wavelet) for s in DEC_STAGES]
            assert sum(r["encode_stages"].values()) <= r["encode_s"] * 1.01
            assert sum(r["decode_stages"].values()) <= r["decode_s"] * 1.01
        else:
            assert r["encode_stages"] == {} and r["decode_stages"] == {}
    # Rates grow with quality for every codec and image.
    for label in labels:
        for image in ("a.png", "b.png"):
            sizes = [r["bytes"] for r in results if r["codec"] == label and r["image"] == image]
            assert sizes == sorted(sizes)

    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(results)
    assert rows[0]["codec"] == vae and int(rows[0]["bytes"]) == results[0]["bytes"]
    assert "enc_OnnxVAEEncode" in rows[0] and "dec_OnnxVAEDecode" in rows[0] and "enc_WaveletHaar" in rows[0]
    jpeg_row = next(r for r in rows if r["codec"] == "jpeg")
    assert jpeg_row["enc_OnnxVAEEncode"] == ""

    curves = payload["curves"]
    assert curves == json.loads(json.dumps(mean_curves(results)))
    first = curves[vae][0]
    assert first["bpp"] == pytest.approx(np.mean([r["bpp"] for r in results[:2]]))
    bd = payload["bd_rate"]
    assert bd["jpeg"]["jpeg"]["psnr"] == pytest.approx(0.0, abs=1e-9)
    assert bd["jpeg"]["jpeg"]["ms_ssim"] == pytest.approx(0.0, abs=1e-9)
    assert set(bd) == set(labels) and "webp" not in bd[vae]
    assert payload["speed"]["jpeg"]["points"] == 8
    assert payload["models"][0]["encoder_macs_per_pixel"] == pytest.approx(12.0)

    summary = (out / "summary.md").read_text()
    assert "## BD-rate" in summary and "vs jpeg PSNR" in summary and "| jpeg | +0.0 % | +0.0 % |" in summary
    assert "OnnxVAEDecode" in summary and "MACs/px" in summary


def test_vaerans_codec_matches_public_api(synthetic_model: ModelSpec) -> None:
    img = picture(40, 56, 3)
    for spec, kw in [("", {}), (":coder=range", {"coder": "range"}), (":wavelet=none", {"wavelet": "none"})]:
        codec = parse_codec(f"vaerans:model={synthetic_model.name}{spec}")
        data, stages = codec.encode(img, 60)
        assert data == api.compress(img, 60, model=synthetic_model.name, **kw)  # type: ignore[arg-type]
        recon, dstages = codec.decode(data)
        np.testing.assert_array_equal(recon, api.decompress(data))
        assert "OnnxVAEEncode" in stages and "OnnxVAEDecode" in dstages


def test_stage_seconds_from_world_timings() -> None:
    from vaerans_ecs.components import Latent4
    from vaerans_ecs.core import World
    from vaerans_ecs.systems.hadamard import Hadamard4

    world = World(arena_bytes=1 << 20)
    ref = world.alloc((4, 2, 2), np.float32)
    world.view(ref)[...] = 1.0
    eid = world.spawn(Latent4(ref=ref))
    (world.pipe(eid) | Hadamard4() | Hadamard4(mode="inverse")).run()
    stages = stage_seconds(world, 10.0, {"setup": 1.0})
    assert list(stages) == ["setup", "Hadamard4", "other"]
    assert sum(stages.values()) == pytest.approx(10.0)
    assert stages["other"] > 8.9


def test_unavailable_codecs_are_skipped(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            "--data",
            str(data_dir),
            "--codecs",
            "vaerans:model=no-such-model,jpeg",
            "--out",
            str(out),
            "--qualities",
            "30,70",
            "--limit",
            "1",
            "--quiet",
            "--no-plots",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "skipping codec vaerans:model=no-such-model" in err
    payload = json.loads((out / "results.json").read_text())
    assert payload["codecs"][0]["available"] is False and "no-such-model" in payload["codecs"][0]["reason"]
    assert {r["codec"] for r in payload["results"]} == {"jpeg"}
    assert payload["meta"]["images"] == ["a.png"]
    assert not (out / "rd_psnr.png").exists()
    assert "**skipped**" in (out / "summary.md").read_text()


def test_errors_return_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--codecs", "gif", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "unknown codec 'gif'" in capsys.readouterr().err


def test_parse_codec_and_qualities() -> None:
    c = parse_codec("vaerans:coder=range:wavelet=haar")
    assert isinstance(c, VaeransCodec) and c.coder == "range" and c.wavelet == "haar" and c.model == "default"
    assert c.label == "vaerans:coder=range:wavelet=haar"
    j = parse_codec("JPEG:subsampling=0")
    assert isinstance(j, JpegCodec) and j.options == {"optimize": True, "subsampling": 0}
    assert j.default_settings() == DEFAULT_GRIDS["jpeg"]
    with pytest.raises(VaeransError, match="unknown option"):
        parse_codec("vaerans:colour=blue")
    with pytest.raises(VaeransError, match="key=value"):
        parse_codec("webp:fast")
    with pytest.raises(VaeransError, match="quality is the setting"):
        parse_codec("jpeg:quality=3")
    assert parse_qualities(["10,20", "jpeg=1,2", "vaerans:coder=range=5,6"]) == {
        "": [10.0, 20.0],
        "jpeg": [1.0, 2.0],
        "vaerans:coder=range": [5.0, 6.0],
    }
    with pytest.raises(VaeransError):
        parse_qualities(["jpeg=a,b"])


def test_default_grids_are_dense() -> None:
    for grid in DEFAULT_GRIDS.values():
        assert len(grid) >= 6 and list(grid) == sorted(grid)


def test_pillow_codecs_roundtrip() -> None:
    img = picture(32, 48, 5)
    for name in ("jpeg", "webp", "avif", "jxl"):
        codec = parse_codec(name)
        if codec.unavailable() is not None:
            continue
        data, _ = codec.encode(img, 80)
        recon, _ = codec.decode(data)
        assert recon.shape == img.shape and recon.dtype == np.uint8
        assert np.abs(recon.astype(int) - img).mean() < 20


def test_progress_bar_plain_stream() -> None:
    buf = io.StringIO()
    bar = Progress(20, stream=buf)
    for i in range(20):
        bar.step(f"item {i}")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert 2 <= len(lines) <= 11 and lines[-1].startswith("[" + "#" * 28 + "] 20/20 100%")
    quiet = io.StringIO()
    Progress(3, stream=quiet, enabled=False).step()
    assert quiet.getvalue() == ""


def test_load_images_sorted_and_limited(data_dir: Path) -> None:
    names = [n for n, _ in load_images(data_dir)]
    assert names == ["a.png", "b.png"]
    assert [n for n, _ in load_images(data_dir, 1)] == ["a.png"]


@pytest.mark.skipif(not KODAK.is_dir(), reason=f"Kodak images not found at {KODAK}")
def test_kodak_quick_run(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    out = tmp_path / "kodak"
    rc = main(
        [
            "--data",
            str(KODAK),
            "--codecs",
            f"vaerans:model={synthetic_model.name},jpeg",
            "--out",
            str(out),
            "--limit",
            "1",
            "--qualities",
            "20,80",
            "--quiet",
            "--no-plots",
        ]
    )
    assert rc == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["meta"]["images"] == ["kodim01.png"]
    assert all(r["width"] * r["height"] == 768 * 512 for r in payload["results"])
    assert all(math.isfinite(r["psnr"]) for r in payload["results"])
