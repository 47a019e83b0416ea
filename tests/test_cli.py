"""The ``vaerans`` command line: through ``python -m vaerans_ecs`` in a subprocess, and ``main(argv)``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaerans_ecs import api
from vaerans_ecs.cli import main
from vaerans_ecs.models import ModelSpec

REPO = Path(__file__).resolve().parents[1]


def _image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], axis=-1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def run_cli(*args: str, cwd: Path, config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "VAERANS_CONFIG": str(config), "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vaerans_ecs", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=120,
    )


def test_compress_decompress_roundtrip_subprocess(tmp_path: Path, synthetic_config_file: Path) -> None:
    img = _image(0)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(_image(1)).save(tmp_path / "b.png")
    res = run_cli("compress", "a.png", "b.png", "-q", "60", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "a.vae").is_file() and (tmp_path / "b.vae").is_file()
    assert "a.png -> a.vae" in res.stdout
    stream = (tmp_path / "a.vae").read_bytes()
    assert stream[:4] == b"\x89VAE"

    res = run_cli("decompress", "a.vae", "-o", "a_out.png", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 0, res.stderr
    decoded = np.asarray(Image.open(tmp_path / "a_out.png"))
    np.testing.assert_array_equal(decoded, api.decompress(stream))
    assert decoded.shape == img.shape

    # the default output keeps the stream's whole name: never the image it was made from
    original = (tmp_path / "b.png").read_bytes()
    res = run_cli("decompress", "b.vae", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "b.png").read_bytes() == original
    assert Image.open(tmp_path / "b.vae.png").size == (64, 48)
    # any Pillow format by extension
    res = run_cli("decompress", "b.vae", "-o", "b.jpg", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 2 and "--output-quality" in res.stderr  # a lossy output asks for its quality
    res = run_cli("decompress", "b.vae", "-o", "b.jpg", "--output-quality", "90", cwd=tmp_path,
                  config=synthetic_config_file)
    assert res.returncode == 0, res.stderr
    assert Image.open(tmp_path / "b.jpg").format == "JPEG"


def test_info_subprocess(tmp_path: Path, synthetic_config_file: Path, synthetic_model: ModelSpec) -> None:
    stream = api.compress(_image(2), 50, synthetic_model.name)
    (tmp_path / "x.vae").write_bytes(stream)
    res = run_cli("info", "x.vae", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "64 x 48" in out
    assert f"{len(stream)} bytes" in out
    assert synthetic_model.name in out and synthetic_model.fingerprint in out
    assert "OnnxVAEEncode" in out and "ANSEncode" in out
    info = api.inspect(stream)
    assert f"payload {info.stream.section_bytes['payload']} B" in out
    assert f"{info.bpp:.4f} bpp" in out

    res = run_cli("info", "--json", "x.vae", cwd=tmp_path, config=synthetic_config_file)
    doc = json.loads(res.stdout)
    assert doc[0]["total_bytes"] == len(stream)
    sections = doc[0]["sections"]
    assert {"image", "pipeline", "model", "quant", "payload"} <= set(sections)
    assert len(stream) - 30 < sum(sections.values()) < len(stream)  # the rest: section headers, magic, CRC
    stages = {s["stage"]: s for s in doc[0]["layers"][0]}
    assert stages["OnnxVAEEncode"]["model"] == synthetic_model.name
    assert stages["ANSEncode"]["coder"] == "rans-ctx"
    assert stages["QuantizeU8"]["step"] > 0 and stages["WaveletCDF53"]["levels"] == 3


def test_usage_errors_exit_2_and_version(tmp_path: Path, synthetic_config_file: Path) -> None:
    res = run_cli("compress", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 2
    assert "usage:" in res.stderr
    res = run_cli("--version", cwd=tmp_path, config=synthetic_config_file)
    assert res.returncode == 0
    assert res.stdout.startswith("vaerans ")
    from vaerans_ecs import __version__

    assert __version__ in res.stdout


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["compress"],
        ["compress", "a.png", "b.png", "-o", "x.vae"],
        ["compress", "a.png", "-q", "500"],
        ["compress", "a.png", "-q", "40", "--target-bpp", "0.5"],
        ["compress", "a.png", "-o", "x.vae", "--out-dir", "d"],
        ["decompress", "a.vae", "--format", "nosuchformat"],
        ["batch"],
        ["batch", "job.toml", "--workers", "0"],
        ["batch", "no-such-job.toml"],
    ],
)
def test_usage_errors_in_process(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    for cmd in ([], ["compress"], ["decompress"], ["info"], ["batch"], ["models"]):
        assert main([*cmd, "--help"]) == 0
        assert "usage:" in capsys.readouterr().out
    logger = logging.getLogger("vaerans_ecs")
    assert logger.propagate and not logger.handlers  # main() leaves logging as it found it


def test_overwrite_refusal_and_force(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(_image(3)).save(tmp_path / "p.png")
    src = str(tmp_path / "p.png")
    (tmp_path / "p.vae").write_bytes(b"precious")
    assert main(["compress", src, "--model", synthetic_model.name]) == 1
    err = capsys.readouterr().err
    assert f"error: {src}:" in err and "exists" in err and "-o" in err and "--force" not in err
    assert (tmp_path / "p.vae").read_bytes() == b"precious"
    assert main(["compress", src, "--model", synthetic_model.name, "--force"]) == 0
    assert (tmp_path / "p.vae").read_bytes()[:4] == b"\x89VAE"
    # never an input, even with --force
    assert main(["compress", src, "-o", src, "--model", synthetic_model.name, "--force"]) == 1
    assert "input" in capsys.readouterr().err
    assert Image.open(src).format == "PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".vaerans-tmp")]


def test_bad_inputs_are_reported_and_others_done(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(_image(4)).save(tmp_path / "good.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    argv = ["compress", str(tmp_path / "corrupt.png"), str(tmp_path / "missing.png"), str(tmp_path / "good.png")]
    assert main([*argv, "--model", synthetic_model.name, "--out-dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if line.startswith("error: ")]) == 2
    assert (tmp_path / "o" / "good.vae").is_file()
    assert not (tmp_path / "o" / "corrupt.vae").exists()
    # -v adds a traceback
    assert main([*argv[:2], "-v", "--model", synthetic_model.name, "-o", str(tmp_path / "c.vae")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_target_bpp_and_stdout(
    tmp_path: Path, synthetic_model: ModelSpec, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    Image.fromarray(_image(5, 64, 64)).save(tmp_path / "t.png")
    assert main(["compress", str(tmp_path / "t.png"), "--target-bpp", "1.0", "--model", synthetic_model.name,
                 "-o", "-"]) == 0
    data = capfdbinary.readouterr().out
    assert api.inspect(data).width == 64


def test_models_lists_the_registered_model(synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(synthetic_model.name))
    assert synthetic_model.fingerprint in line and "registered" in line and " 8 " in line
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["name"] == synthetic_model.name)
    assert row["fingerprint"] == synthetic_model.fingerprint and row["stride"] == 8


def test_eval_is_delegated(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("vaerans_ecs.eval")

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vaerans_ecs.eval", fake)
    assert main(["eval", "--help", "-q", "5"]) == 3
    assert seen == [["--help", "-q", "5"]]
    monkeypatch.setitem(sys.modules, "vaerans_ecs.eval", None)  # import fails
    assert main(["eval"]) == 1
    assert "vaerans eval" in capsys.readouterr().err


def test_console_script_version() -> None:
    exe = shutil.which("vaerans", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        pytest.skip("the vaerans console script is not installed (pip install -e .)")
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("vaerans ")


def test_decompress_never_targets_the_source_image(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    # 'vaerans compress p.png; vaerans decompress p.vae' (the sequence), also via --out-dir
    Image.fromarray(_image(6)).save(tmp_path / "p.png")
    photo = (tmp_path / "p.png").read_bytes()
    assert main(["compress", str(tmp_path / "p.png"), "-q", "80", "--model", synthetic_model.name]) == 0
    assert main(["decompress", str(tmp_path / "p.vae")]) == 0
    assert (tmp_path / "p.png").read_bytes() == photo
    assert (tmp_path / "p.vae.png").is_file()
    assert main(["decompress", str(tmp_path / "p.vae"), "--out-dir", str(tmp_path)]) == 1  # p.vae.png exists
    err = capsys.readouterr().err
    assert "exists" in err and "-o" in err and "--force" not in err
    assert main(["decompress", str(tmp_path / "p.vae"), "--format", "bmp", "--out-dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "p.vae.bmp").is_file() and (tmp_path / "p.png").read_bytes() == photo
    capsys.readouterr()
    assert main(["decompress", "--help"]) == 0
    assert "photo.vae.png" in capsys.readouterr().out


def test_output_that_is_a_folder(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(_image(7)).save(tmp_path / "p.png")
    (tmp_path / "dir").mkdir()
    for force in ([], ["--force"]):
        assert main(["compress", str(tmp_path / "p.png"), "-o", str(tmp_path / "dir"), *force,
                     "--model", synthetic_model.name]) == 1
        err = capsys.readouterr().err
        assert "is a folder" in err and "--out-dir" in err and "--force" not in err
        assert "Is a directory" not in err


def test_output_in_a_missing_folder_names_it(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(_image(7)).save(tmp_path / "p.png")
    missing = tmp_path / "no" / "such"
    assert main(["compress", str(tmp_path / "p.png"), "-o", str(missing / "p.vae"),
                 "--model", synthetic_model.name]) == 1
    err = capsys.readouterr().err
    assert f"folder {missing} does not exist" in err
    assert not (tmp_path / "no").exists()  # nothing created
    assert main(["compress", str(tmp_path / "p.png"), "--out-dir", str(missing), "--model", synthetic_model.name]) == 1
    assert str(tmp_path / "no") in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_top_level_verbose_gives_tracebacks(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    argv = ["compress", str(tmp_path / "corrupt.png"), "--model", synthetic_model.name]
    assert main(argv) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["-v", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_batch_example_is_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", "--help"]) == 0
    assert "examples/" not in capsys.readouterr().out
    assert main(["batch", "--example"]) == 0
    example = capsys.readouterr().out
    assert example.startswith("# A vaerans batch job") and "[job]" in example
    assert main(["batch"]) == 2


def test_batch_reports_an_unmatched_pattern_once(
    tmp_path: Path, synthetic_model: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(_image(8)).save(tmp_path / "a.png")
    (tmp_path / "job.toml").write_text(
        f'[job]\ninputs = ["a.png", "nothing*.png"]\noutput_dir = "out"\nmodel = "{synthetic_model.name}"\n'
    )
    assert main(["batch", str(tmp_path / "job.toml"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("matched no file") == 1, err
