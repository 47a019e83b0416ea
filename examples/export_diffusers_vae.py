"""Export a diffusers ``AutoencoderKL`` (SD 1.x, SD 2.x, SDXL) to the codec's ONNX model layout.

    python examples/export_diffusers_vae.py SOURCE --out DIR [--name NAME] [--fp16-fix]
                                            [--step-min S --step-max S] [--opset 17]

SOURCE is a local folder in diffusers ``from_pretrained`` layout (``config.json`` plus
``diffusion_pytorch_model.safetensors``), e.g. a downloaded ``stabilityai/sdxl-vae``; a full
pipeline folder whose VAE sits in ``vae/`` works too. Nothing is downloaded
(``local_files_only=True``). Writes ``DIR/encoder.onnx`` and ``DIR/decoder.onnx``, checks them
against torch with onnxruntime and prints their sizes; then use the model with
``vaerans_ecs.models.register_model(NAME, DIR)`` or a ``[models.NAME]`` section.

What the ONNX files compute (the codec's model contract, see ``vaerans_ecs/models.py``):

* ``encoder.onnx``: input ``image`` (N, 3, H, W) float32 **in [-1, 1]**, the range diffusers VAEs
  are trained on. The metadata records ``vaerans.input_range = "-1,1"`` so the codec feeds
  ``-1 + 2 * u8 / 255`` directly; no rescaling op is baked into the graph, and the files stay
  usable as plain diffusers-convention VAEs. Output ``latent`` (N, 4, H/f, W/f): the **mean** of
  the posterior ``vae.encode(x).latent_dist`` (deterministic; no sampling), unscaled.
* ``decoder.onnx``: input ``latent`` (unscaled), output ``image`` = ``vae.decode(latent).sample``
  clamped to [-1, 1].
* Batch, height and width are dynamic; f = ``2 ** (len(block_out_channels) - 1)`` (8 for SD/SDXL).
* Latent scaling is left to the codec: ``vaerans.latent_scale = config.scaling_factor`` (SD 1.x/2.x
  0.18215, SDXL 0.13025) and ``vaerans.latent_shift = config.shift_factor or 0``, so the codec
  codes ``z = (latent - shift) * scale``, exactly the latent a diffusion model sees. VAEs with
  per-channel ``latents_mean``/``latents_std`` in their config have that normalisation folded into
  the graphs (the encoder outputs ``(latent - mean) / std``, the decoder undoes it).

Step range: the scaling factor is chosen by the model authors so that ``z`` has about unit
variance, and the codec's quantiser steps are in ``z`` units. The default range 0.05..2.0 spans
"transparent" to "coarse": at step 0.05 the quantisation noise (step / sqrt(12)) is ~1.4 % of the
latent's standard deviation, so quality 100 is limited by the VAE itself (an f8 SD VAE
reconstructs natural images at roughly 24-27 dB PSNR), while at step 2.0 (two standard
deviations) nearly every high-frequency wavelet coefficient rounds to zero. The range was not
calibrated on real SD weights (none are available offline); re-calibrate with ``--step-min/--step-max``
or override ``step_min``/``step_max`` in ``[models.NAME]`` without re-exporting.

``--fp16-fix`` exports float16 weights and compute (float32 inputs and outputs, half-size files),
meant for fp16-safe weights such as ``madebyollin/sdxl-vae-fp16-fix``. It is refused for configs
with ``force_upcast = true`` (the original SDXL VAE overflows in float16). On CPU, float32 is
usually as fast or faster; float16 pays off with a GPU execution provider.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_STEP_MAX", "DEFAULT_STEP_MIN", "describe_source", "export_autoencoder_kl", "load_vae", "main"]

#: Quantiser step range in units of the scaled latent (unit variance); see the module docstring.
DEFAULT_STEP_MIN = 0.05
DEFAULT_STEP_MAX = 2.0
OPSET = 17
INPUT_RANGE = (-1.0, 1.0)


def _fmt(value: float) -> str:
    return repr(float(value))


def describe_source(source: str | Path) -> str:
    """Short name of a source folder: ``org/name`` for a Hugging Face cache snapshot, else the path."""
    text = str(source)
    match = re.search(r"models--([^/\\]+)--([^/\\]+)", text)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    return text


def load_vae(source: str | Path, subfolder: str | None = None) -> Any:
    """``AutoencoderKL.from_pretrained(source, local_files_only=True)`` in float32, eval mode.

    ``subfolder=None`` picks ``vae/`` when ``source`` is a whole pipeline (no ``config.json`` at
    its top, one in ``vae/``).
    """
    from diffusers import AutoencoderKL

    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (expected a diffusers AutoencoderKL with config.json)")
    if subfolder is None and not (folder / "config.json").is_file() and (folder / "vae" / "config.json").is_file():
        subfolder = "vae"
    import torch
    from diffusers.utils import is_accelerate_available

    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "torch_dtype": torch.float32,
        "low_cpu_mem_usage": is_accelerate_available(),  # its default logs a warning without accelerate
    }
    if subfolder:
        kwargs["subfolder"] = subfolder
    return AutoencoderKL.from_pretrained(str(folder), **kwargs).eval()


def _check_config(vae: Any, fp16: bool) -> dict[str, Any]:
    """Validate the AutoencoderKL config; return the values the export needs."""
    from diffusers import AutoencoderKL

    from vaerans_ecs.errors import ModelError

    if not isinstance(vae, AutoencoderKL):
        raise ModelError(f"expected a diffusers AutoencoderKL, got {type(vae).__name__}")
    cfg = vae.config
    channels = int(cfg.latent_channels)
    if channels != 4:
        raise ModelError(
            f"this AutoencoderKL has {channels} latent channels, but the vaerans_ecs codec codes exactly 4 "
            "(its Hadamard4 stage mixes 4 channels): only 4-channel VAEs such as SD 1.x, SD 2.x and SDXL can be "
            "exported (SD3 and FLUX VAEs have 16 channels)"
        )
    if int(cfg.in_channels) != 3 or int(cfg.out_channels) != 3:
        raise ModelError(f"expected an RGB VAE (3 input/output channels), got {cfg.in_channels}/{cfg.out_channels}")
    if fp16 and bool(getattr(cfg, "force_upcast", True)):
        raise ModelError(
            "--fp16-fix: this VAE's config has force_upcast=true, i.e. it must run in float32 (the original "
            "SDXL VAE overflows in float16); export it in float32 (drop --fp16-fix) or use fp16-safe weights "
            "such as madebyollin/sdxl-vae-fp16-fix"
        )
    scale = float(cfg.scaling_factor)
    shift = float(getattr(cfg, "shift_factor", None) or 0.0)
    mean = getattr(cfg, "latents_mean", None)
    std = getattr(cfg, "latents_std", None)
    if (mean is None) != (std is None):
        raise ModelError("config has only one of latents_mean / latents_std")
    if mean is not None and (len(mean) != channels or len(std) != channels):
        raise ModelError(f"latents_mean/latents_std need {channels} values each")
    return {
        "stride": 2 ** (len(cfg.block_out_channels) - 1),
        "latent_channels": channels,
        "scale": scale,
        "shift": shift,
        "latents_mean": None if mean is None else [float(v) for v in mean],
        "latents_std": None if std is None else [float(v) for v in std],
    }


def _wrappers(vae: Any, info: dict[str, Any], dtype: Any) -> tuple[Any, Any]:
    """The encoder/decoder ``nn.Module``s that are exported (float32 in and out)."""
    import torch
    from torch import nn

    lo, hi = INPUT_RANGE
    mean = info["latents_mean"]
    std = info["latents_std"]

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae
            if mean is not None:
                self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
                self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            latent = self.vae.encode(image.to(dtype)).latent_dist.mean.float()
            if mean is not None:
                latent = (latent - self.mean) / self.std
            return latent

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae
            if mean is not None:
                self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
                self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, latent: torch.Tensor) -> torch.Tensor:
            if mean is not None:
                latent = latent * self.std + self.mean
            return self.vae.decode(latent.to(dtype)).sample.float().clamp(lo, hi)

    return Encoder().eval(), Decoder().eval()


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _verify(enc: Any, dec: Any, enc_path: Path, dec_path: Path, stride: int, tol: float) -> float:
    """Largest ONNX-vs-torch difference (relative to max(1, |torch|)) on a random batch of another size."""
    import onnxruntime as ort
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6 * stride, 5 * stride, generator=gen) * 2 - 1
    with torch.no_grad():
        lat = enc(x)
        y = dec(lat)
    providers = ["CPUExecutionProvider"]
    enc_s = ort.InferenceSession(str(enc_path), providers=providers)
    dec_s = ort.InferenceSession(str(dec_path), providers=providers)
    lat_o = enc_s.run(None, {"image": x.numpy()})[0]
    y_o = dec_s.run(None, {"latent": lat.numpy()})[0]
    if lat_o.shape != (2, 4, 6, 5) or y_o.shape != tuple(x.shape):
        raise RuntimeError(f"ONNX output shapes {lat_o.shape} / {y_o.shape} do not match stride {stride}")
    err = 0.0
    for got, ref in ((lat_o, lat.numpy()), (y_o, y.numpy())):
        if not np.isfinite(got).all():
            raise RuntimeError("ONNX output is not finite (float16 overflow?)")
        err = max(err, float(np.abs(got - ref).max()) / max(1.0, float(np.abs(ref).max())))
    if err >= tol:
        raise RuntimeError(f"ONNX/torch mismatch {err:.3g} >= {tol} (relative)")
    return err


def export_autoencoder_kl(
    vae: Any,
    out_dir: str | Path,
    name: str,
    *,
    source: str | None = None,
    step_min: float = DEFAULT_STEP_MIN,
    step_max: float = DEFAULT_STEP_MAX,
    fp16: bool = False,
    opset: int = OPSET,
    check: bool = True,
    tol: float | None = None,
) -> dict[str, str]:
    """Export an in-memory diffusers ``AutoencoderKL`` to ``out_dir/{encoder,decoder}.onnx``.

    ``name`` goes to ``vaerans.model_name``; ``source`` (default: the config's ``_name_or_path``)
    to the recipe. ``fp16`` exports float16 weights and compute (needs ``force_upcast=false``).
    With ``check`` both files are run in onnxruntime on a random batch of another size than the
    one traced and compared to torch (relative tolerance ``tol``: 1e-3 in float32, 5e-2 in
    float16). ``vae`` is not modified. Returns the metadata written (without ``vaerans.role``).
    Raises :class:`vaerans_ecs.errors.ModelError` for VAEs the codec cannot use (not 4 latent
    channels, not RGB).
    """
    import torch

    if not (0.0 < step_min <= step_max):
        raise ValueError(f"need 0 < step_min <= step_max, got {step_min}..{step_max}")
    info = _check_config(vae, fp16)
    stride = info["stride"]
    dtype = torch.float16 if fp16 else torch.float32
    model = copy.deepcopy(vae)
    model = (model.half() if fp16 else model.float()).eval()  # not .to(dtype): diffusers warns there
    # Tiled/sliced encoding branches on the input size in Python; the traced graph must not.
    for attr in ("use_tiling", "use_slicing"):
        if hasattr(model, attr):
            setattr(model, attr, False)
    enc, dec = _wrappers(model, info, dtype)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    enc_path, dec_path = out / "encoder.onnx", out / "decoder.onnx"
    img = torch.rand(1, 3, 8 * stride, 12 * stride) * 2 - 1
    with torch.no_grad(), warnings.catch_warnings():
        # Benign tracer warnings from diffusers: an assert on the channel count, a .contiguous()
        # for batches >= 64 and an upsampling path that chunks huge tensors (same result).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        lat = enc(img)
        if tuple(lat.shape) != (1, 4, 8, 12):
            raise RuntimeError(f"latent shape {tuple(lat.shape)} does not match stride {stride}")
        torch.onnx.export(
            enc, (img,), str(enc_path), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["latent"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "latent": {0: "batch", 2: "lheight", 3: "lwidth"}},
        )
        torch.onnx.export(
            dec, (lat,), str(dec_path), dynamo=False, opset_version=opset,
            input_names=["latent"], output_names=["image"],
            dynamic_axes={"latent": {0: "batch", 2: "lheight", 3: "lwidth"},
                          "image": {0: "batch", 2: "height", 3: "width"}},
        )

    if source is None:
        source = str(getattr(vae.config, "_name_or_path", "") or "an in-memory model")
    try:
        import diffusers

        version = f"diffusers {diffusers.__version__}"
    except (ImportError, AttributeError):  # pragma: no cover - diffusers made the model
        version = "diffusers"
    cfg = vae.config
    details = [
        f"f{stride} blocks {list(cfg.block_out_channels)}",
        "posterior mean",
        f"input {INPUT_RANGE[0]:g}..{INPUT_RANGE[1]:g}",
        f"scaling_factor {info['scale']:g}",
    ]
    if info["shift"]:
        details.append(f"shift_factor {info['shift']:g}")
    if info["latents_mean"] is not None:
        details.append("per-channel latents_mean/std folded into the graphs")
    details += ["float16" if fp16 else "float32", f"opset {opset}", version]
    common = {
        "vaerans.stride": str(stride),
        "vaerans.latent_channels": str(info["latent_channels"]),
        "vaerans.input_range": f"{INPUT_RANGE[0]:g},{INPUT_RANGE[1]:g}",
        "vaerans.latent_scale": _fmt(info["scale"]),
        "vaerans.latent_shift": _fmt(info["shift"]),
        "vaerans.step_min": _fmt(step_min),
        "vaerans.step_max": _fmt(step_max),
        "vaerans.model_name": name,
        "vaerans.recipe": f"diffusers AutoencoderKL export from {source} ({'; '.join(details)})",
    }
    _set_metadata(enc_path, {"vaerans.role": "encoder", **common})
    _set_metadata(dec_path, {"vaerans.role": "decoder", **common})

    if check:
        if fp16:  # compare the float16 graphs with the float32 original
            ref_enc, ref_dec = _wrappers(copy.deepcopy(vae).float().eval(), info, torch.float32)
        else:
            ref_enc, ref_dec = enc, dec
        _verify(ref_enc, ref_dec, enc_path, dec_path, stride, tol if tol is not None else (5e-2 if fp16 else 1e-3))
    return common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="diffusers AutoencoderKL folder (config.json + weights) or pipeline folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder for encoder.onnx and decoder.onnx")
    parser.add_argument("--name", default=None, help="vaerans.model_name (default: the output folder's name)")
    parser.add_argument("--subfolder", default=None, help="subfolder of SOURCE holding the VAE (default: auto, 'vae')")
    parser.add_argument("--fp16-fix", action="store_true",
                        help="float16 weights/compute for fp16-safe VAEs (e.g. madebyollin/sdxl-vae-fp16-fix)")
    parser.add_argument("--step-min", type=float, default=DEFAULT_STEP_MIN, help="quantiser step at quality 100")
    parser.add_argument("--step-max", type=float, default=DEFAULT_STEP_MAX, help="quantiser step at quality 1")
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-torch check")
    args = parser.parse_args(argv)

    from vaerans_ecs.errors import ModelError

    name = args.name or args.out.name
    t0 = time.perf_counter()
    try:
        vae = load_vae(args.source, args.subfolder)
    except (OSError, ValueError) as exc:
        print(f"error: cannot load an AutoencoderKL from {args.source}: {exc}", file=sys.stderr)
        return 2
    params = sum(p.numel() for p in vae.parameters())
    t1 = time.perf_counter()
    print(f"loaded {args.source}: {params / 1e6:.1f}M parameters in {t1 - t0:.1f} s")
    try:
        meta = export_autoencoder_kl(
            vae, args.out, name, source=describe_source(args.source), step_min=args.step_min,
            step_max=args.step_max, fp16=args.fp16_fix, opset=args.opset, check=not args.no_check,
        )
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t2 = time.perf_counter()
    print(f"exported{'' if args.no_check else ' and checked'} in {t2 - t1:.1f} s")
    for file in ("encoder.onnx", "decoder.onnx"):
        path = args.out / file
        print(f"  {path}: {path.stat().st_size / 1e6:.1f} MB")
    for key, value in meta.items():
        print(f"  {key} = {value}")
    print(f"use it: vaerans_ecs.models.register_model({name!r}, {str(args.out)!r}), or in vaerans_ecs.toml:")
    print(f'  [models.{name}]\n  encoder = "{args.out / "encoder.onnx"}"\n  decoder = "{args.out / "decoder.onnx"}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
