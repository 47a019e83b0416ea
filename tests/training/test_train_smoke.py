"""Smoke test: a few training steps on random images, ONNX export, onnxruntime round trip."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
Image = pytest.importorskip("PIL.Image")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vaerans_ecs.training.export import export_checkpoint  # noqa: E402
from vaerans_ecs.training.train import TrainConfig, train  # noqa: E402

KEYS = (
    "vaerans.role", "vaerans.stride", "vaerans.latent_channels", "vaerans.input_range",
    "vaerans.latent_scale", "vaerans.latent_shift", "vaerans.step_min", "vaerans.step_max",
    "vaerans.model_name", "vaerans.recipe",
)


def test_train_export_onnx(tmp_path: Path) -> None:
    """Train 4 steps, resume to 6, export, and run both ONNX files in onnxruntime."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        arr = rng.integers(0, 256, size=(80, 96, 3), dtype=np.uint8)
        Image.fromarray(arr).save(data / f"{i:03d}.png")
    cfg = TrainConfig(
        data=str(data), out=str(tmp_path / "run"), stride=4, steps=4, batch=2, crop=64,
        holdout=1, log_every=2, eval_every=4, warmup=2, threads=2,
        enc_widths=[8, 16], dec_widths=[16, 8],
    )
    ckpt = train(cfg)
    cfg.steps = 6
    train(cfg, resume=True)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed from" in log and "eval step 4" in log and "step 6" in log

    out = tmp_path / "onnx"
    meta = export_checkpoint(ckpt, out)
    assert meta["vaerans.stride"] == "4"
    for name, role in (("encoder.onnx", "encoder"), ("decoder.onnx", "decoder")):
        props = {p.key: p.value for p in onnx.load(str(out / name)).metadata_props}
        assert set(KEYS) <= set(props)
        assert props["vaerans.role"] == role
        assert props["vaerans.latent_channels"] == "4"
        assert float(props["vaerans.step_min"]) < float(props["vaerans.step_max"])

    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    img = rng.random((1, 3, 48, 80), dtype=np.float32)
    latent = enc.run(None, {"image": img})[0]
    assert latent.shape == (1, 4, 12, 20)
    recon = dec.run(None, {"latent": latent})[0]
    assert recon.shape == (1, 3, 48, 80)
    assert recon.min() >= 0.0 and recon.max() <= 1.0


def test_grow_is_function_preserving() -> None:
    """Extra residual blocks start as the identity: the grown net encodes and decodes exactly as before."""
    from vaerans_ecs.training.model import AutoEncoder, ModelConfig, grow

    torch.manual_seed(0)
    small = dict(stride=4, enc_widths=[8, 16], dec_widths=[16, 8])
    old = AutoEncoder(ModelConfig(**small))  # type: ignore[arg-type]
    new = AutoEncoder(ModelConfig(**small, enc_blocks=2, dec_blocks=2, tail_blocks=1, tail_hidden=12))  # type: ignore[arg-type]
    assert grow(old, new) == 3
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(new.encoder(x), old.encoder(x))  # x + 0 is exact
        lat = old.encoder(x)
        assert torch.allclose(new.decoder(lat), old.decoder(lat), atol=1e-6)
        assert not torch.equal(old.decoder(lat), old.decoder(lat + 1))  # the check can fail
    with pytest.raises(ValueError, match="cannot grow"):
        grow(new, old)


def test_train_init_from_grows_and_exports(tmp_path: Path) -> None:
    """A fresh run with init_from starts from another checkpoint with extra blocks; resume keeps them."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, size=(72, 72, 3), dtype=np.uint8)).save(data / f"{i:03d}.png")
    common = dict(
        data=str(data), stride=4, batch=2, crop=64, holdout=1, log_every=2, eval_every=100,
        warmup=1, threads=2, enc_widths=[8, 16], dec_widths=[16, 8],
    )
    base = train(TrainConfig(out=str(tmp_path / "base"), steps=2, **common))  # type: ignore[arg-type]
    grown_cfg = TrainConfig(
        out=str(tmp_path / "grown"), steps=2, init_from=str(base), enc_blocks=2, dec_blocks=2, tail_blocks=1,
        tail_hidden=12, **common,  # type: ignore[arg-type]
    )
    train(grown_cfg)
    resumed = TrainConfig(out=str(tmp_path / "grown"), steps=3, **common)  # type: ignore[arg-type]
    ckpt = train(resumed, resume=True)
    log = (tmp_path / "grown" / "train.log").read_text()
    assert "initialised from" in log and "3 new residual blocks" in log and "resumed from" in log
    # the architecture comes from the checkpoint
    assert (resumed.enc_blocks, resumed.dec_blocks, resumed.tail_blocks) == (2, 2, 1)
    meta = export_checkpoint(ckpt, tmp_path / "onnx")
    assert "enc-blocks2 blocks2+tail1x12" in meta["vaerans.recipe"] and "from last.pt" in meta["vaerans.recipe"]
