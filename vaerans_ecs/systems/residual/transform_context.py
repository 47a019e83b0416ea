"""Context classes of quantised wavelet coefficients, computed from already decoded data only.

Each detail band is coded in three polyphase passes: phase 0 (even row, even column), phase 1
(odd, odd), then phase 2 (the two remaining sub-grids). A coefficient's activity is an integer
linear combination of capped magnitudes the decoder already has:

* the parent (same orientation, next coarser level, co-located) and its 8 neighbours;
* the earlier channels' co-located coefficient and its 8 neighbours (chroma from luma);
* the same band's neighbours decoded in earlier passes: the 4 diagonal ones in phase 1, the 4
  horizontal/vertical ones in phase 2 (split into along/across the band's orientation).

Its class (0 .. N_CLASSES-1) bins the activity on a log scale; each class gets its own model.
Encoder and decoder run exactly this integer arithmetic, so the classes agree on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CAP",
    "N_CLASSES",
    "N_FEATURES",
    "PHASES",
    "band_classes",
    "fit_grid",
    "gather",
    "pad1",
    "parent_features",
    "pass_features",
    "phase_count",
    "scatter",
]

I32 = NDArray[np.int32]

#: Sub-grids (row offset, column offset) of each pass.
PHASES: Final = (((0, 0),), ((1, 1),), ((0, 1), (1, 0)))
#: Magnitudes are capped here before entering a context (escaped values never matter).
CAP: Final = 48
N_CLASSES: Final = 20
N_FEATURES: Final = 7
# Integer weights (1/64 units) of the features
# [parent, parent neighbours, cross-channel, cross neighbours, along, across, diagonal]
# per (channel kind: 0 first channel, 1 later channels) and pass: least-squares fits of |q|,
# refined by coordinate descent on the coded size, on training photographs (not Kodak).
_WEIGHTS: Final = np.array(
    [
        [[9, 3, 0, 0, 0, 0, 0], [9, 2, 0, 0, 0, 0, 13], [4, 1, 0, 0, 24, 13, 0]],
        [[3, 1, 4, 0, 0, 0, 0], [5, 1, 7, 0, 0, 0, 6], [5, 1, 8, 0, 21, 9, 0]],
    ],
    dtype=np.int32,
)
# Class k starts where 64 * activity >= 16 * (2 ** (k / 3) - 1), i.e. log2(1 + 4 * activity) >= k / 3.
_THRESHOLDS: Final = np.array(
    [5, 10, 16, 25, 35, 48, 65, 86, 112, 146, 188, 240, 307, 391, 496, 630, 797, 1008, 1275], dtype=np.int32
)
# (pass size limit, class merge factor), first match wins.
_MERGE: Final = ((256, N_CLASSES), (1024, 4), (4096, 2))
_LUT: Final = np.searchsorted(_THRESHOLDS, np.arange(_THRESHOLDS[-1] + 1), side="right").astype(np.uint8)


def phase_count(h: int, w: int, phase: int) -> int:
    """Number of coefficients of an ``h x w`` band in pass ``phase``."""
    return sum(((h - py + 1) // 2) * ((w - px + 1) // 2) for py, px in PHASES[phase])


def gather(band: NDArray[Any], phase: int) -> NDArray[Any]:
    """The pass's coefficients of a 2-D band, in coding order (sub-grids in order, row-major)."""
    parts = [band[py::2, px::2].ravel() for py, px in PHASES[phase]]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def scatter(band: NDArray[Any], phase: int, values: NDArray[Any]) -> None:
    """Inverse of :func:`gather`: write the pass's coefficients into the band."""
    start = 0
    for py, px in PHASES[phase]:
        view = band[py::2, px::2]
        n = view.size
        view[...] = values[start : start + n].reshape(view.shape)
        start += n


def pad1(a: NDArray[Any]) -> NDArray[Any]:
    """``np.pad(a, 1)`` of a 2-D array (zeros around it), without np.pad's per-call overhead."""
    h, w = a.shape
    out = np.zeros((h + 2, w + 2), dtype=a.dtype)
    out[1 : h + 1, 1 : w + 1] = a
    return out


def _box8(a: I32) -> I32:
    """Sum of the 8 neighbours (zero outside)."""
    p: I32 = pad1(a)
    h, w = a.shape
    s = p[0:h, 0:w] + p[0:h, 1 : w + 1]
    s += p[0:h, 2 : w + 2]
    s += p[1 : h + 1, 0:w]
    s += p[1 : h + 1, 2 : w + 2]
    s += p[2 : h + 2, 0:w]
    s += p[2 : h + 2, 1 : w + 1]
    s += p[2 : h + 2, 2 : w + 2]
    return s


def fit_grid(a: NDArray[Any], nh: int, nw: int) -> NDArray[Any]:
    """Crop or edge-extend a parent-resolution map to an ``nh x nw`` sub-grid (same dtype)."""
    h, w = a.shape
    if h == 0 or w == 0:
        return np.zeros((nh, nw), dtype=a.dtype)
    if h < nh or w < nw:
        a = np.pad(a, ((0, max(0, nh - h)), (0, max(0, nw - w))), mode="edge")
    return a[:nh, :nw]


def parent_features(parent: I32 | None) -> tuple[I32, I32] | None:
    """(weighted-ready) parent magnitude map and its 8-neighbour sum, at parent resolution."""
    if parent is None or parent.size == 0:
        return None
    return parent, _box8(parent)


def _sub(p: I32, py: int, px: int, dy: int, dx: int, nh: int, nw: int) -> I32:
    """Values at (py + 2i + dy, px + 2j + dx) from the 1-padded map ``p``."""
    out: I32 = p[1 + py + dy :: 2, 1 + px + dx :: 2][:nh, :nw]
    return out


def pass_features(
    mags: I32,
    phase: int,
    orientation: int,
    parent: tuple[I32, I32] | None,
    cross: I32 | None,
    need: Sequence[bool] = (True,) * N_FEATURES,
) -> list[list[I32 | None]]:
    """Per sub-grid of the pass, the feature maps (None where identically zero or not in ``need``).

    Features: parent, parent neighbours, cross-channel, cross neighbours, along (neighbours in
    the direction of the band's edges), across, diagonal. For HH, along and across both hold the
    mean of the two directions, rounded down.
    """
    h, w = mags.shape
    pm = pad1(mags) if phase else None
    pc = pad1(cross) if cross is not None else None
    out: list[list[I32 | None]] = []
    for py, px in PHASES[phase]:
        nh, nw = (h - py + 1) // 2, (w - px + 1) // 2
        f: list[I32 | None] = [None] * N_FEATURES
        if parent is not None:
            f[0] = fit_grid(parent[0], nh, nw) if need[0] else None
            f[1] = fit_grid(parent[1], nh, nw) if need[1] else None
        if pc is not None:
            f[2] = _sub(pc, py, px, 0, 0, nh, nw) if need[2] else None
            if need[3]:
                xs = _sub(pc, py, px, -1, -1, nh, nw) + _sub(pc, py, px, -1, 0, nh, nw)
                for dy, dx in ((-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
                    xs += _sub(pc, py, px, dy, dx, nh, nw)
                f[3] = xs
        if pm is not None:
            if need[4] or need[5]:
                vert = _sub(pm, py, px, -1, 0, nh, nw) + _sub(pm, py, px, 1, 0, nh, nw)
                horz = _sub(pm, py, px, 0, -1, nh, nw) + _sub(pm, py, px, 0, 1, nh, nw)
                if orientation == 0:
                    f[4], f[5] = vert, horz
                elif orientation == 1:
                    f[4], f[5] = horz, vert
                else:
                    f[4] = f[5] = (vert + horz) >> 1
            if need[6]:
                diag = _sub(pm, py, px, -1, -1, nh, nw) + _sub(pm, py, px, -1, 1, nh, nw)
                diag += _sub(pm, py, px, 1, -1, nh, nw)
                diag += _sub(pm, py, px, 1, 1, nh, nw)
                f[6] = diag
        out.append(f)
    return out


def band_classes(
    mags: I32,
    phase: int,
    orientation: int,
    kind: int,
    parent: tuple[I32, I32] | None,
    cross: I32 | None,
) -> NDArray[np.uint8]:
    """Classes of one band's pass-``phase`` coefficients, in :func:`gather` order.

    ``mags``: the band's capped magnitudes decoded so far (zero where not yet decoded);
    ``orientation`` 0 (HL), 1 (LH) or 2 (HH); ``kind`` 0 for the first channel, 1 otherwise;
    ``parent`` from :func:`parent_features`; ``cross``: summed capped magnitudes of the earlier
    channels' same band (or None).
    """
    wts = [int(v) for v in _WEIGHTS[kind, phase]]
    parts: list[I32] = []
    feats = pass_features(mags, phase, orientation, parent, cross, [v != 0 for v in wts])
    for (py, px), f in zip(PHASES[phase], feats, strict=True):
        act = np.zeros(((mags.shape[0] - py + 1) // 2, (mags.shape[1] - px + 1) // 2), dtype=np.int32)
        for wk, feat in zip(wts, f, strict=True):
            if feat is not None:
                act += wk * feat
        parts.append(act.ravel())
    act_all = parts[0] if len(parts) == 1 else np.concatenate(parts)
    np.minimum(act_all, _LUT.size - 1, out=act_all)
    cls: NDArray[np.uint8] = _LUT[act_all]
    return cls


def step_classes(
    mags: Sequence[I32],
    phase: int,
    kind: int,
    parents: Sequence[tuple[I32, I32] | None],
    cross: Sequence[I32 | None],
) -> NDArray[np.uint8]:
    """Classes of a pass over the three bands (HL, LH, HH) of one level and channel, concatenated.

    Small passes use coarser classes (every model costs side information): one class below 256
    coefficients, classes merged by 4 below 1024 and by 2 below 4096.
    """
    out = [band_classes(m, phase, o, kind, parents[o], cross[o]) for o, m in enumerate(mags)]
    cls = np.concatenate(out) if out else np.empty(0, dtype=np.uint8)
    for limit, merge in _MERGE:
        if cls.size < limit:
            cls //= merge
            break
    return cls
