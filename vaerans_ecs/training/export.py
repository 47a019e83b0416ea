"""Export a training checkpoint to the codec's encoder/decoder ONNX pair with metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from .model import AutoEncoder, ModelConfig

OPSET = 17


class _DecoderExport(nn.Module):
    """Decoder plus clip to [0,1], the contract the codec expects."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent).clamp(0.0, 1.0)


def recipe_string(train_cfg: dict[str, object], step: int, mcfg: ModelConfig) -> str:
    """Short, git-free description of how the weights were made."""
    return (
        f"conv-ae-gdn s{mcfg.stride} enc{mcfg.enc_widths} dec{mcfg.dec_widths}{_blocks(mcfg)}; "
        f"hadamard4+haar3 noise/ste, laplace per-image rate, lambda={train_cfg['lambda_max']}*"
        f"({train_cfg['step_min']}/step)^2; {step} steps batch {train_cfg['batch']} crop {train_cfg['crop']} "
        f"seed {train_cfg['seed']}{_init(train_cfg)}; "
        f"data: {Path(str(train_cfg['data'])).name} minus last {train_cfg['holdout']}"
    )


def _blocks(mcfg: ModelConfig) -> str:
    """Extra residual blocks in the recipe id (empty for the original layout, so old ids stay)."""
    enc = f" enc-blocks{mcfg.enc_blocks}" if mcfg.enc_blocks != 1 else ""
    if mcfg.dec_blocks == 1 and mcfg.tail_blocks == 0:
        return enc
    return f"{enc} blocks{mcfg.dec_blocks}+tail{mcfg.tail_blocks}x{mcfg.tail_hidden}"


def _init(train_cfg: dict[str, object]) -> str:
    """Where a grown model's weights started (its base checkpoint's file name)."""
    base = train_cfg.get("init_from")
    return f" from {Path(str(base)).name}" if base else ""


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_checkpoint(
    ckpt: str | Path,
    out_dir: str | Path,
    use_ema: bool = True,
    step_min: float | None = None,
    step_max: float | None = None,
    check: bool = True,
) -> dict[str, str]:
    """Write encoder.onnx / decoder.onnx to ``out_dir``; return the metadata written.

    ``step_min``/``step_max`` override the trained quantiser range (e.g. after a
    calibration on held-out images).  With ``check`` the ONNX outputs are compared
    to torch (max abs diff < 1e-4) on a random input.
    """
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    mcfg = ModelConfig(**state["model_config"])
    tcfg = state["train_config"]
    model = AutoEncoder(mcfg)
    model.load_state_dict(state["ema" if use_ema else "model"])
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = mcfg.stride
    enc_path, dec_path = out / "encoder.onnx", out / "decoder.onnx"
    dec = _DecoderExport(model.decoder).eval()
    img = torch.rand(1, 3, 8 * s, 12 * s)
    with torch.no_grad():
        lat = model.encoder(img)
        torch.onnx.export(
            model.encoder, (img,), str(enc_path), dynamo=False, opset_version=OPSET,
            input_names=["image"], output_names=["latent"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "latent": {0: "batch", 2: "lheight", 3: "lwidth"}},
        )
        torch.onnx.export(
            dec, (lat,), str(dec_path), dynamo=False, opset_version=OPSET,
            input_names=["latent"], output_names=["image"],
            dynamic_axes={"latent": {0: "batch", 2: "lheight", 3: "lwidth"},
                          "image": {0: "batch", 2: "height", 3: "width"}},
        )
    common = {
        "vaerans.stride": str(s),
        "vaerans.latent_channels": str(mcfg.latent_channels),
        "vaerans.input_range": "0,1",
        "vaerans.latent_scale": "1",
        "vaerans.latent_shift": "0",
        "vaerans.step_min": repr(float(step_min if step_min is not None else tcfg["step_min"])),
        "vaerans.step_max": repr(float(step_max if step_max is not None else tcfg["step_max"])),
        "vaerans.model_name": str(tcfg["model_name"]),
        "vaerans.recipe": recipe_string(tcfg, int(state["step"]), mcfg),
    }
    _set_metadata(enc_path, {"vaerans.role": "encoder", **common})
    _set_metadata(dec_path, {"vaerans.role": "decoder", **common})
    if check:
        verify(model, enc_path, dec_path)
    return common


def verify(model: AutoEncoder, enc_path: Path, dec_path: Path, tol: float = 1e-4) -> float:
    """Run both ONNX files in onnxruntime on a random image; raise if they differ from torch."""
    import onnxruntime as ort

    s = model.cfg.stride
    x = torch.rand(2, 3, 10 * s, 7 * s)
    with torch.no_grad():
        lat = model.encoder(x)
        y = model.decoder(lat).clamp(0, 1)
    opts = ort.SessionOptions()
    enc = ort.InferenceSession(str(enc_path), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(dec_path), opts, providers=["CPUExecutionProvider"])
    lat_o = enc.run(None, {"image": x.numpy()})[0]
    y_o = dec.run(None, {"latent": lat.numpy()})[0]
    err = max(float(np.abs(lat_o - lat.numpy()).max()), float(np.abs(y_o - y.numpy()).max()))
    if err >= tol:
        raise RuntimeError(f"ONNX/torch mismatch {err:.3g} >= {tol}")
    return err
