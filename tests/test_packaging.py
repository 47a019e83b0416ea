"""Packaging: every subpackage is listed, the built-in models are found, nothing but data in models/,
and the codec path does not import scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vaerans_ecs.models import builtin_model_dirs, get_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vaerans_ecs").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_builtin_models_have_both_files() -> None:
    dirs = builtin_model_dirs()
    assert dirs, "no built-in model found (models/<name>/encoder.onnx + decoder.onnx)"
    for folder in dirs.values():
        assert (folder / "encoder.onnx").is_file() and (folder / "decoder.onnx").is_file()
        assert (folder / "decoder.onnx").stat().st_size < 10 * 2**20  # <= 10 MB per model file


def test_builtin_models_have_current_rate_curves() -> None:
    # a missing or stale rd.json would silently take the model out of "default"'s choice
    for name in builtin_model_dirs():
        spec = get_model(name)
        assert len(spec.curve) >= 5, f"models/{name}/rd.json is missing or stale: python -m vaerans_ecs.training curve"


def test_wheel_data_includes_rate_curves() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*/rd.json" in data["vaerans_ecs._builtin_models"]


def test_wheel_data_includes_the_transform_curve() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "transform_rd.json" in data["vaerans_ecs.systems.residual"]


def test_models_folder_holds_no_code() -> None:
    """models/ is installed as the data package vaerans_ecs._builtin_models: a module there would ship too."""
    assert not sorted(p.name for p in (ROOT / "models").rglob("*.py"))


def test_codec_path_does_not_import_scipy() -> None:
    code = (
        "import sys, numpy as np, vaerans_ecs\n"
        "img = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)\n"
        "for q in (10, 90):\n"
        "    vaerans_ecs.decompress(vaerans_ecs.compress(img, q))\n"
        "vaerans_ecs.decompress(vaerans_ecs.compress(img, lossless=True))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
