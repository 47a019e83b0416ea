"""Synthetic moving content for sequence tests: a textured canvas seen through a moving window."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray


def canvas(h: int, w: int, seed: int) -> NDArray[np.uint8]:
    """A smooth colour texture with sharp shapes (what block matching can lock on to)."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 2, w // 8 + 2, 3))
    yy = np.linspace(0, small.shape[0] - 1.001, h)
    xx = np.linspace(0, small.shape[1] - 1.001, w)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[:, None, None], (xx - x0)[None, :, None]
    base = ((1 - fy) * (1 - fx) * small[y0][:, x0] + (1 - fy) * fx * small[y0][:, x0 + 1]
            + fy * (1 - fx) * small[y0 + 1][:, x0] + fy * fx * small[y0 + 1][:, x0 + 1])
    img = base * 200 + rng.normal(0, 4, (h, w, 3))
    for _ in range(h * w // 600):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, 7)
        img[max(0, cy - r): cy + r, max(0, cx - r): cx + r] = rng.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def moving_frames(n: int, h: int = 48, w: int = 64, step: tuple[int, int] = (1, 2), cut_at: int | None = None,
                  seed: int = 0) -> list[NDArray[np.uint8]]:
    """``n`` frames panning over a canvas by ``step`` pixels a frame; another canvas from ``cut_at`` on."""
    dy, dx = step
    big = [canvas(h + n * abs(dy) + 2, w + n * abs(dx) + 2, seed + i) for i in range(2 if cut_at else 1)]
    frames = []
    for k in range(n):
        src = big[1] if cut_at is not None and k >= cut_at else big[0]
        y = k * dy if dy >= 0 else (n - k) * -dy
        x = k * dx if dx >= 0 else (n - k) * -dx
        frames.append(np.ascontiguousarray(src[y: y + h, x: x + w]))
    return frames


@pytest.fixture(scope="session")
def pan() -> list[NDArray[np.uint8]]:
    """12 frames of 48x64 panning by (1, 2) pixels a frame."""
    return moving_frames(12)
