"""DPCM of integer bands: exact round trips, both predictors, and when the quantizer picks it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.quantize.helpers import FAST, check_bound, pyr_entity, roundtrip
from vaerans_ecs.core.world import World
from vaerans_ecs.systems.quantize import MED_MAX_SIZE, QuantizeU8, dpcm_decode, dpcm_residual


@FAST
@given(
    seed=st.integers(0, 2**16),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    spread=st.sampled_from([1, 3, 40, 10**6]),
    anchor=st.integers(-(10**7), 10**7),
)
def test_dpcm_exact_roundtrip(seed: int, h: int, w: int, spread: int, anchor: int) -> None:
    rng = np.random.default_rng(seed)
    q = np.cumsum(rng.integers(-spread, spread + 1, (h, w)), axis=1) + anchor
    res = dpcm_residual(q, anchor)
    assert res.dtype == np.int64 and res.shape == q.shape
    np.testing.assert_array_equal(dpcm_decode(res, anchor), q)


@pytest.mark.parametrize("shape", [(40, 40), (3, MED_MAX_SIZE // 3 + 1)])
def test_dpcm_left_predictor_for_large_bands(shape: tuple[int, int]) -> None:
    h, w = shape
    q = np.arange(h * w, dtype=np.int64).reshape(h, w) * 3 - 7
    res = dpcm_residual(q, q[0, 0])
    assert h * w > MED_MAX_SIZE
    assert res[0, 0] == 0 and np.all(res[:, 1:] == 3) and np.all(res[1:, 0] == 3 * w)
    np.testing.assert_array_equal(dpcm_decode(res, int(q[0, 0])), q)


def test_dpcm_residual_batched_matches_single() -> None:
    rng = np.random.default_rng(4)
    q = rng.integers(-50, 50, (3, 2, 9, 7))
    anchors = rng.integers(-5, 5, (3, 2))
    res = dpcm_residual(q, anchors)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(res[i, j], dpcm_residual(q[i, j], anchors[i, j]))
            np.testing.assert_array_equal(dpcm_decode(res[i, j], int(anchors[i, j])), q[i, j])


def test_med_predictor_values() -> None:
    q = np.array([[5, 7], [6, 100]])
    # (0,0): 5 - 0; (0,1): left; (1,0): top; (1,1): c=5 <= min(a=6, b=7) -> max = 7
    np.testing.assert_array_equal(dpcm_residual(q), [[5, 2], [1, 93]])


def test_ll_dpcm_is_chosen_when_it_lowers_entropy() -> None:
    world = World(arena_bytes=1 << 22)
    h, w = 64, 48
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (np.sin(yy / 9.0) + np.cos(xx / 7.0)).astype(np.float32) * 3
    noise = np.random.default_rng(1).uniform(-3, 3, (h, w)).astype(np.float32)
    x = np.stack([smooth, noise, smooth, noise])
    eid = pyr_entity(world, x, levels=2)
    a, b, params, sym = roundtrip(world, eid, QuantizeU8(step=0.3))
    nb = len(sym.bands)
    assert params.dpcm[0] and params.dpcm[2 * nb]
    assert not any(params.dpcm[i] for i in range(4 * nb) if i % nb)
    check_bound(a, b, params, sym.bands)
