"""Rate-aware training loop for the codec's VAE (resumable, logged, periodically evaluated).

Loss per sample: bits_per_pixel + lambda(step) * MSE_255 with the quantiser
step sampled log-uniformly in [step_min, step_max] and lambda = lambda_max *
(step_min / step)^2 (high-rate theory), so one model serves every quality.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .data import CropSampler, center_crop, list_images, load_rgb
from .model import AutoEncoder, ModelConfig, count_params, grow, macs_per_pixel
from .rate import WAVELET_LEVELS, empirical_bits, quantise_and_rate


@dataclass
class TrainConfig:
    """All training options (saved in the checkpoint; CLI flags map 1:1)."""

    data: str = "../shared/data/train"
    out: str = "runs/vae-f4c4"
    model_name: str = ""
    stride: int = 4
    enc_widths: list[int] = field(default_factory=list)
    dec_widths: list[int] = field(default_factory=list)
    enc_blocks: int = 1
    dec_blocks: int = 1
    tail_blocks: int = 0
    tail_hidden: int = 64
    init_from: str = ""  # checkpoint to start from (a fresh run; extra residual blocks start as identity)
    steps: int = 200_000
    seed: int = 0
    batch: int = 8
    crop: int = 128
    lr: float = 3e-4
    warmup: int = 500
    lr_drops: tuple[float, ...] = (0.65, 0.9)
    lr_drop_factor: float = 0.3
    step_min: float = 0.5
    step_max: float = 10.0
    lambda_max: float = 0.1
    ste_from: float = 0.3
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    holdout: int = 3
    log_every: int = 100
    eval_every: int = 2000
    ckpt_minutes: float = 5.0
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.model_name:
            self.model_name = f"vae-f{self.stride}c4"

    def lam(self, step: torch.Tensor) -> torch.Tensor:
        """Lagrange multiplier tied to the quantiser step (lambda ~ 1/step^2)."""
        return self.lambda_max * (self.step_min / step) ** 2

    def lr_at(self, it: int) -> float:
        """Learning rate: linear warm-up, then step drops at fractions of ``steps``."""
        lr = self.lr * min(1.0, (it + 1) / max(1, self.warmup))
        for frac in self.lr_drops:
            if it >= frac * self.steps:
                lr *= self.lr_drop_factor
        return lr


#: Training options that define the architecture: the ModelConfig fields a TrainConfig also has.
ARCH_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name in {g.name for g in fields(TrainConfig)})


def model_config(cfg: TrainConfig) -> ModelConfig:
    """Architecture config implied by the training config."""
    return ModelConfig(**{key: copy.copy(getattr(cfg, key)) for key in ARCH_KEYS})


def sample_steps(rng: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """Quantiser steps, log-uniform in [lo, hi]."""
    u = torch.rand(n, generator=rng)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def train_step(
    model: AutoEncoder, x: torch.Tensor, cfg: TrainConfig, steps: torch.Tensor, ste: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    """One forward pass; returns the scalar loss and batch stats."""
    latent = model.encoder(x)
    latent_hat, bits = quantise_and_rate(latent, steps, ste)
    x_hat = model.decoder(latent_hat)
    pixels = x.shape[2] * x.shape[3]
    bpp = bits / pixels
    mse255 = ((x_hat - x) ** 2).mean(dim=(1, 2, 3)) * 255.0**2
    # Weight by step/step_min so low-rate samples (small lambda) are not drowned out.
    per_sample = (bpp + cfg.lam(steps) * mse255) * (steps / cfg.step_min)
    loss = per_sample.mean() / (cfg.step_max / cfg.step_min) ** 0.5
    psnr = (10 * torch.log10(255.0**2 / mse255.detach().clamp(min=1e-6))).mean()
    return loss, {"loss": float(loss.detach()), "psnr": float(psnr), "bpp": float(bpp.detach().mean())}


def evaluate(model: AutoEncoder, images: list[np.ndarray], cfg: TrainConfig) -> list[tuple[float, float, float]]:
    """Real rounding at 3 steps on held-out images: list of (step, bpp, PSNR) means."""
    steps = [cfg.step_min, math.sqrt(cfg.step_min * cfg.step_max), cfg.step_max]
    results = []
    model.eval()
    with torch.no_grad():
        latents = []
        for img in images:
            x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
            latents.append((x, model.encoder(x)[0].numpy()))
        for st in steps:
            bpps, psnrs = [], []
            for x, lat in latents:
                deq, bits = empirical_bits(lat, st)
                x_hat = model.decoder(torch.from_numpy(deq)[None]).clamp(0, 1)
                x_hat = torch.round(x_hat * 255)
                mse = float(((x_hat - torch.round(x * 255)) ** 2).mean())
                bpps.append(bits / (x.shape[2] * x.shape[3]))
                psnrs.append(10 * math.log10(255.0**2 / max(mse, 1e-6)))
            results.append((st, float(np.mean(bpps)), float(np.mean(psnrs))))
    model.train()
    return results


def save_checkpoint(path: Path, state: dict[str, object]) -> None:
    """Atomic torch.save (write to a temp file, then rename)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, object]:
    """Load a checkpoint written by :func:`train` on CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train (or resume) and return the path of the last checkpoint."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    log = open(out / "train.log", "a", buffering=1)  # noqa: SIM115 - closed at the end of training

    def say(msg: str) -> None:
        log.write(msg + "\n")
        log.flush()
        print(msg, flush=True)

    state: dict[str, object] | None = None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        saved = TrainConfig(**state["train_config"])  # type: ignore[arg-type]
        # Keep the architecture and quantiser range; allow a new total step count.
        for key in (*ARCH_KEYS, "step_min", "step_max", "model_name", "init_from"):
            setattr(cfg, key, getattr(saved, key))

    torch.manual_seed(cfg.seed)
    model = AutoEncoder(model_config(cfg))
    if state is None and cfg.init_from:
        base = load_checkpoint(cfg.init_from)
        old = AutoEncoder(ModelConfig(**base["model_config"]))  # type: ignore[arg-type]
        old.load_state_dict(base["ema"])  # type: ignore[arg-type]
        added = grow(old, model)
        say(f"initialised from {cfg.init_from} (EMA weights, step {base['step']}); {added} new residual blocks")
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    np_rng = np.random.default_rng(cfg.seed)
    t_rng = torch.Generator().manual_seed(cfg.seed + 1)
    it = 0
    if state is not None:
        model.load_state_dict(state["model"])  # type: ignore[arg-type]
        ema.load_state_dict(state["ema"])  # type: ignore[arg-type]
        opt.load_state_dict(state["optimizer"])  # type: ignore[arg-type]
        it = int(cast(int, state["step"]))
        np_rng.bit_generator.state = cast(dict[str, Any], state["np_rng"])
        t_rng.set_state(state["torch_gen"])  # type: ignore[arg-type]
        torch.set_rng_state(state["torch_rng"])  # type: ignore[arg-type]
        say(f"resumed from {ckpt_path} at step {it}; total steps {cfg.steps}")

    paths = list_images(cfg.data)
    train_paths = paths[: -cfg.holdout] if cfg.holdout else paths
    held_paths = paths[-cfg.holdout :] if cfg.holdout else []
    sampler = CropSampler(train_paths, cfg.crop)
    mult = cfg.stride * (1 << WAVELET_LEVELS)
    held = [center_crop(load_rgb(p), mult) for p in held_paths]
    if cfg.crop % mult:
        raise ValueError(f"crop must be a multiple of {mult}")

    s = cfg.stride
    say(
        f"config {asdict(cfg)}\nmodel {cfg.model_name}: enc {count_params(model.encoder)} params, "
        f"{macs_per_pixel(model.encoder, (1, 3, 64, 64), 4096):.0f} MAC/px; dec "
        f"{count_params(model.decoder)} params, "
        f"{macs_per_pixel(model.decoder, (1, 4, 64 // s, 64 // s), 4096):.0f} MAC/px; "
        f"{len(sampler.images)} cached train images (with scales), {len(held)} held out"
    )

    def snapshot() -> dict[str, object]:
        return {
            "train_config": asdict(cfg),
            "model_config": model_config(cfg).to_dict(),
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "step": it,
            "np_rng": np_rng.bit_generator.state,
            "torch_gen": t_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    last_ckpt = time.time()
    t0, it0 = time.time(), it
    acc: dict[str, float] = {"loss": 0.0, "psnr": 0.0, "bpp": 0.0}
    n_acc = 0
    model.train()
    while it < cfg.steps:
        lr = cfg.lr_at(it)
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.from_numpy(sampler.batch(np_rng, cfg.batch))
        steps = sample_steps(t_rng, cfg.batch, cfg.step_min, cfg.step_max)
        ste = it >= cfg.ste_from * cfg.steps
        loss, stats = train_step(model, x, cfg, steps, ste)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            d = min(cfg.ema_decay, (1 + it) / (10 + it))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        it += 1
        for k in acc:
            acc[k] += stats[k]
        n_acc += 1
        if it % cfg.log_every == 0 or it == cfg.steps:
            rate = (it - it0) / max(1e-9, time.time() - t0)
            say(
                f"step {it} loss {acc['loss'] / n_acc:.4f} psnr {acc['psnr'] / n_acc:.2f} "
                f"est_bpp {acc['bpp'] / n_acc:.4f} lr {lr:.2e} ste {int(ste)} {rate:.2f} steps/s"
            )
            acc = dict.fromkeys(acc, 0.0)
            n_acc = 0
        if held and (it % cfg.eval_every == 0 or it == cfg.steps):
            res = evaluate(ema, held, cfg)
            pts = "; ".join(f"step {a:.3g}: {b:.4f} bpp {c:.2f} dB" for a, b, c in res)
            say(f"eval step {it} (ema, held-out): {pts}")
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60 or it == cfg.steps:
            save_checkpoint(ckpt_path, snapshot())
            last_ckpt = time.time()
    save_checkpoint(ckpt_path, snapshot())
    say(f"done at step {it}")
    log.close()
    return ckpt_path
