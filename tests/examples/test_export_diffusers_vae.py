"""examples/export_diffusers_vae.py on tiny randomly initialised AutoencoderKLs (nothing downloaded)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import vaerans_ecs  # noqa: E402
from vaerans_ecs.errors import ModelError  # noqa: E402
from vaerans_ecs.models import get_model, register_model, unregister_model  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "export_diffusers_vae.py"


@pytest.fixture(scope="module")
def exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_diffusers_vae", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister_model(name)


def tiny_vae(blocks: int = 3, **kwargs: Any) -> Any:
    """A random AutoencoderKL with ~50k parameters and stride 2 ** (blocks - 1)."""
    torch.manual_seed(0)
    widths = (8, 16, 16, 16)[:blocks]
    return diffusers.AutoencoderKL(
        block_out_channels=widths,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
        **{"latent_channels": 4, "scaling_factor": 0.13025, **kwargs},
    ).eval()


def picture(h: int = 30, w: int = 45) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.dstack([128 + 100 * np.sin(xx / 5), 128 + 100 * np.cos(yy / 7), 255 * ((xx // 8 + yy // 8) % 2)])
    return np.clip(rgb, 0, 255).astype(np.uint8)


def onnx_meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_cli_export_register_roundtrip(
    exporter: ModuleType, registered: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """from_pretrained folder -> CLI export -> register_model -> compress/decompress."""
    src = tmp_path / "tiny-vae"
    tiny_vae(3).save_pretrained(src)
    out = tmp_path / "onnx"
    assert exporter.main([str(src), "--out", str(out), "--name", "tiny-sd", "--step-max", "3"]) == 0
    printed = capsys.readouterr().out
    assert "encoder.onnx" in printed and "MB" in printed and "checked" in printed

    enc_meta, dec_meta = onnx_meta(out / "encoder.onnx"), onnx_meta(out / "decoder.onnx")
    assert enc_meta["vaerans.role"] == "encoder" and dec_meta["vaerans.role"] == "decoder"
    assert enc_meta["vaerans.recipe"].startswith(f"diffusers AutoencoderKL export from {src}")

    registered.append("tiny-sd")
    register_model("tiny-sd", encoder=out / "encoder.onnx", decoder=out / "decoder.onnx")
    spec = get_model("tiny-sd")
    assert spec.stride == 4 and spec.latent_channels == 4
    assert spec.latent_scale == pytest.approx(0.13025) and spec.latent_shift == 0.0
    assert spec.input_range == (-1.0, 1.0)
    assert (spec.step_min, spec.step_max) == (exporter.DEFAULT_STEP_MIN, 3.0)
    assert spec.model_name == "tiny-sd"

    img = picture()  # 30x45: not a multiple of the stride, so padding and cropping are exercised
    for quality in (20, 90):
        data = vaerans_ecs.compress(img, quality=quality, model="tiny-sd")
        back = vaerans_ecs.decompress(data)
        assert back.shape == img.shape and back.dtype == np.uint8


def test_function_fp16_and_channel_stats(exporter: ModuleType, registered: list[str], tmp_path: Path) -> None:
    """In-memory export: float16 graphs with float32 I/O, per-channel latents_mean/std folded in."""
    vae = tiny_vae(2, force_upcast=False, shift_factor=0.1, latents_mean=[0.1, -0.2, 0.3, 0.0],
                   latents_std=[1.0, 2.0, 0.5, 1.5])
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    meta = exporter.export_autoencoder_kl(vae, tmp_path / "m", "tiny-fp16", fp16=True, step_min=0.1, step_max=2.5)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())  # the model is not modified
    assert next(vae.parameters()).dtype == torch.float32
    assert meta["vaerans.stride"] == "2" and meta["vaerans.latent_shift"] == "0.1"
    assert "float16" in meta["vaerans.recipe"] and "latents_mean" in meta["vaerans.recipe"]

    graph = onnx.load(str(tmp_path / "m" / "decoder.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)

    registered.append("tiny-fp16")
    spec = register_model("tiny-fp16", tmp_path / "m")
    assert spec.stride == 2 and (spec.step_min, spec.step_max) == (0.1, 2.5)
    img = picture(17, 22)
    assert vaerans_ecs.decompress(vaerans_ecs.compress(img, quality=50, model="tiny-fp16")).shape == img.shape


def test_refuses_non_4_channel_latents(exporter: ModuleType, tmp_path: Path) -> None:
    vae = tiny_vae(2, latent_channels=16)
    with pytest.raises(ModelError, match=r"16 latent channels.*exactly 4"):
        exporter.export_autoencoder_kl(vae, tmp_path / "m", "sd3-like")
    assert not (tmp_path / "m").exists()


def test_refuses_fp16_when_config_forces_upcast(exporter: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="force_upcast"):
        exporter.export_autoencoder_kl(tiny_vae(2, force_upcast=True), tmp_path / "m", "sdxl", fp16=True)


def test_cli_reports_bad_sources(exporter: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exporter.main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot load" in capsys.readouterr().err
    src = tmp_path / "sd3-vae"
    tiny_vae(2, latent_channels=16).save_pretrained(src)
    assert exporter.main([str(src), "--out", str(tmp_path / "o")]) == 2
    assert "exactly 4" in capsys.readouterr().err
    assert exporter.describe_source("/c/hub/models--stabilityai--sdxl-vae/snapshots/abc") == "stabilityai/sdxl-vae"
