"""Shared helpers of the entropy tests: synthetic bands of every statistics kind, realistic layouts."""

from __future__ import annotations

import constriction
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from vaerans_ecs.systems.entropy.plan import Chunk
from vaerans_ecs.systems.wavelet import band_layout

FAST = settings(derandomize=True, deadline=None, max_examples=40)
ALL = ("rans", "rans-ctx", "range", "zlib", "lzma")
TABLE_CODERS = ("rans", "range")
CHECKED_CODERS = (*TABLE_CODERS, "rans-ctx")  # catch every single-byte corruption
#: Payload allowance over the order-0 bound: 8 % plus this many bytes (the 20-bit check value,
#: the coder's final state flush and a few bits of side information per band).
SLACK_BYTES = 8


def band(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "const":
        return np.full(n, rng.integers(0, 256), dtype=np.uint8)
    if kind == "uniform":
        return rng.integers(0, 256, n).astype(np.uint8)
    if kind == "all256":
        return np.asarray(rng.permutation(np.resize(np.arange(256), max(n, 256))), dtype=np.uint8)
    if kind == "two":
        return np.asarray(rng.choice(np.array([0, 255], dtype=np.uint8), n), dtype=np.uint8)
    if kind == "bimodal":  # dense table: two Laplacian bumps
        x = np.rint(rng.laplace(0, 3.0, n)) + rng.choice(np.array([100, 140]), n)
        return np.asarray(np.clip(x, 0, 255), dtype=np.uint8)
    if kind == "sparse":  # few distinct values spread over the byte range
        return np.asarray(rng.choice(rng.integers(0, 256, 5).astype(np.uint8), n), dtype=np.uint8)
    if kind == "heavy":  # Laplacian core plus far outliers
        x = np.rint(rng.laplace(0, 1.0, n)) + 128
        out = rng.random(n) < 0.02
        x[out] = rng.integers(0, 256, int(out.sum()))
        return np.asarray(np.clip(x, 0, 255), dtype=np.uint8)
    scale = {"lap_small": 0.3, "lap": 2.0, "lap_wide": 40.0}[kind]
    centre = int(rng.integers(0, 256))
    return np.asarray(np.clip(np.rint(rng.laplace(0, scale, n)) + centre, 0, 255), dtype=np.uint8)


KINDS = ["const", "uniform", "all256", "two", "bimodal", "sparse", "heavy", "lap_small", "lap", "lap_wide"]
band_specs = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from([0, 1, 2, 3, 17, 100, 700]), st.integers(0, 10_000)),
    max_size=6,
)


def make(specs: list[tuple[str, int, int]]) -> list[np.ndarray]:
    return [band(kind, n, seed) for kind, n, seed in specs]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.dtype == np.uint8 and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def layout(stride: int) -> list[int]:
    h, w = 768 // stride, 512 // stride
    sizes = []
    for _ in range(4):
        bands = band_layout(h, w, 3)
        sizes += [b.size for b in bands]
    return sizes


def laplacian_layout(scale: float, stride: int, seed: int = 0) -> list[np.ndarray]:
    """40 bands: LL (DPCM-like, 4x wider), detail bands narrowing with level; chroma-ish halves."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(layout(stride)):
        b = i % 10
        level_gain = 4.0 if b == 0 else 2.0 ** (-((b - 1) // 3))
        s = scale * level_gain * (1.0 if i < 10 else 0.5)
        out.append(np.clip(np.rint(rng.laplace(0, s, n)) + 128, 0, 255).astype(np.uint8))
    return out


def words(chunks: list[Chunk]) -> np.ndarray:
    coder = constriction.stream.stack.AnsCoder()
    for c in reversed(chunks):
        coder.encode_reverse(c.symbols, c.model)
    return np.asarray(coder.get_compressed())
