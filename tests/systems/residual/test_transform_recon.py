"""encode_transform_recon: the same stream as encode_transform and exactly the decoder's planes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaerans_ecs.systems.residual.transform import decode_transform, encode_transform, encode_transform_recon


def _check(x: np.ndarray, step: float, **kw: object) -> None:
    data, recon = encode_transform_recon(x, step, **kw)  # type: ignore[arg-type]
    assert data == encode_transform(x, step, **kw)  # type: ignore[arg-type]
    c, h, w = x.shape
    colour = bool(kw.get("colour", True))
    expected = decode_transform(data, c, h, w, colour=colour)
    assert recon.dtype == expected.dtype and recon.shape == expected.shape
    assert np.array_equal(recon, expected)  # bit-exact: the encoder's closed loop depends on it


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    step=st.sampled_from([0.05, 0.5, 2.0, 9.0, 40.0]),
    colour=st.booleans(),
    levels=st.sampled_from([None, 0, 1, 3]),
    seed=st.integers(0, 2**16),
)
def test_recon_is_the_decoders(c: int, h: int, w: int, step: float, colour: bool, levels: int | None,
                               seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 30, (c, h, w)).astype(np.float32)
    _check(x, step, colour=colour, levels=levels)


def test_recon_with_escapes_and_synthetic_choice() -> None:
    rng = np.random.default_rng(3)
    spiky = rng.normal(0, 2, (3, 48, 40)).astype(np.float32)
    spiky[:, 10, 10] = 4000.0  # far beyond the symbol alphabet at a fine step: escapes
    _check(spiky, 0.05)
    flat = np.zeros((3, 64, 64), dtype=np.float32)
    flat[:, :, 32:] = 80.0  # synthetic: every wavelet is tried, the best one's planes come back
    flat[:, 20:30, 5:9] = -40.0
    _check(flat, 4.0)


def test_recon_of_tiles() -> None:
    rng = np.random.default_rng(5)
    x = np.zeros((3, 160, 140), dtype=np.float32)
    x[:, :80] = rng.normal(0, 20, (3, 80, 140))  # mixed: a noisy half and a flat half
    _check(x, 3.0)
    _check(x, 3.0, tiles=True)
