"""Scene-cut score: equal to a direct evaluation of its definition; cuts score high, motion low."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sequence.conftest import canvas
from vaerans_ecs.systems.motion.control import cut_score
from vaerans_ecs.systems.motion.search import luma


def _definition(cur: np.ndarray, ref: np.ndarray, block: int = 4, radius: int = 4) -> float:
    """Per block of the 1/4-scale luma (4x4 means, floored): least SAD over +-radius (edge-replicated)
    offsets, summed, over the summed SAD from the block means."""
    def quarter(img: np.ndarray) -> np.ndarray:
        y = luma(img)
        h, w = y.shape[0] // 4 * 4, y.shape[1] // 4 * 4
        return np.array([[int(y[i:i + 4, j:j + 4].sum()) // 16 for j in range(0, w, 4)] for i in range(0, h, 4)],
                        dtype=np.int64).reshape(h // 4, w // 4)

    c, r = quarter(cur), quarter(ref)
    h, w = c.shape[0] // block * block, c.shape[1] // block * block
    if h == 0 or w == 0:
        return 0.0
    rp = np.pad(r, radius, mode="edge")
    inter = intra = 0.0
    for by in range(0, h, block):
        for bx in range(0, w, block):
            blk = c[by:by + block, bx:bx + block]
            intra += float(np.abs(blk - blk.mean()).sum())
            inter += min(int(np.abs(blk - rp[by + radius + dy: by + radius + dy + block,
                                              bx + radius + dx: bx + radius + dx + block]).sum())
                         for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1))
    return inter / max(intra, 1.0 * (h // block) * (w // block))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), seed=st.integers(0, 2**16), shift=st.integers(-6, 6))
def test_cut_score_matches_the_definition(h: int, w: int, seed: int, shift: int) -> None:
    big = canvas(h + 20, w + 20, seed)
    cur, ref = big[10:10 + h, 10:10 + w], np.roll(big, shift, axis=1)[10:10 + h, 10:10 + w]
    assert np.isclose(cut_score(cur, ref), _definition(cur, ref), rtol=1e-12, atol=0)


def test_cuts_score_high_and_motion_low() -> None:
    big = canvas(200, 240, 1)
    cur, moved, other = big[20:164, 20:196], big[23:167, 18:194], canvas(144, 176, 2)
    assert cut_score(cur, moved) < 0.6 and cut_score(cur, other) > 0.75  # 0.75: SceneCut's threshold
