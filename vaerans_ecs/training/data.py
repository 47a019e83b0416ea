"""In-RAM image cache with random crops and flips for training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files in ``folder`` (sorted so the held-out split is stable)."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images in {folder}")
    return paths


def load_rgb(path: str | Path) -> np.ndarray:
    """Load an image as uint8 HxWx3 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


class CropSampler:
    """Random crops from images cached in RAM at several scales.

    Downscaled copies add texture-density variety to a small training set.
    Images are chosen with probability proportional to their area.
    """

    def __init__(
        self,
        paths: list[Path],
        crop: int,
        scales: tuple[float, ...] = (1.0, 0.75, 0.5),
    ) -> None:
        self.crop = crop
        self.images: list[np.ndarray] = []
        for path in paths:
            img = load_rgb(path)
            for s in scales:
                if s != 1.0:
                    h, w = img.shape[:2]
                    size = (max(1, round(w * s)), max(1, round(h * s)))
                    im = Image.fromarray(img).resize(size, Image.Resampling.LANCZOS)
                    scaled = np.asarray(im, dtype=np.uint8)
                else:
                    scaled = img
                if min(scaled.shape[:2]) >= crop:
                    self.images.append(scaled)
        if not self.images:
            raise ValueError(f"no image is at least {crop}x{crop}")
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Return a float32 NCHW batch in [0,1] of random crops with random h-flips."""
        c = self.crop
        out = np.empty((size, 3, c, c), dtype=np.float32)
        idx = rng.choice(len(self.images), size=size, p=self.weights)
        for n, i in enumerate(idx):
            img = self.images[i]
            y = int(rng.integers(0, img.shape[0] - c + 1))
            x = int(rng.integers(0, img.shape[1] - c + 1))
            patch = img[y : y + c, x : x + c]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[n] = patch.transpose(2, 0, 1).astype(np.float32) / 255.0
        return out


def center_crop(img: np.ndarray, multiple: int, max_h: int = 512, max_w: int = 768) -> np.ndarray:
    """Centre crop to at most max_h x max_w, trimmed to a multiple of ``multiple``."""
    h, w = img.shape[:2]
    if h > w:
        max_h, max_w = max_w, max_h
    th = min(h, max_h) // multiple * multiple
    tw = min(w, max_w) // multiple * multiple
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return img[y0 : y0 + th, x0 : x0 + tw]
