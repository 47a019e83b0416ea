"""Small images, photo folders and a ``vaerans batch`` subprocess runner shared by the batch tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from vaerans_ecs.batch import KILL_AFTER_ENV

REPO = Path(__file__).resolve().parents[2]
MINIMAL_JOB = '[job]\ninputs = ["photos/*.png"]\noutput_dir = "out"\nquality = 40\nworkers = 2\n'


def image(seed: int, h: int = 40, w: int = 56) -> np.ndarray:
    """A deterministic smooth-plus-noise RGB test image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx * yy) % 256], axis=-1)
    return np.clip(base + rng.integers(-25, 25, base.shape), 0, 255).astype(np.uint8)


def photos(folder: Path, n: int) -> list[Path]:
    """``n`` PNG files ``img00.png``... in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(image(i, 40 + 8 * (i % 3), 56)).save(path)
        paths.append(path)
    return paths


def run_batch(
    job: Path, config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m vaerans_ecs batch JOB ARGS`` in the job's folder with ``VAERANS_CONFIG=config``."""
    full_env = {**os.environ, "VAERANS_CONFIG": str(config), "PYTHONPATH": str(REPO)}
    full_env.pop(KILL_AFTER_ENV, None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "vaerans_ecs", "batch", str(job), *args], cwd=job.parent, env=full_env,
        capture_output=True, text=True, timeout=120,
    )


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
