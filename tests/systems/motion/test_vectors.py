"""Motion vector coding round trips and its hostile-input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.motion.vectors import decode_vectors, encode_vectors, median_prediction


@settings(max_examples=50, deadline=None)
@given(ny=st.integers(1, 12), nx=st.integers(1, 12), spread=st.sampled_from([0, 1, 3, 40, 600]),
       seed=st.integers(0, 1 << 20), with_prior=st.booleans())
def test_round_trip(ny: int, nx: int, spread: int, seed: int, with_prior: bool) -> None:
    rng = np.random.default_rng(seed)
    mv = rng.integers(-spread, spread + 1, (ny, nx, 2)).astype(np.int32)
    prior = rng.integers(-3, 4, (ny, nx, 2)).astype(np.int32) if with_prior else None
    data = encode_vectors(mv, prior)
    assert np.array_equal(decode_vectors(data, ny, nx, max(spread, 1), prior), mv)


def test_smooth_fields_are_cheap() -> None:
    smooth = np.tile(np.array([3, -5], dtype=np.int32), (18, 22, 1))
    noisy = np.random.default_rng(1).integers(-8, 9, (18, 22, 2)).astype(np.int32)
    assert len(encode_vectors(smooth)) * 10 < len(encode_vectors(noisy))


def test_median_prediction_of_a_constant_field_is_exact_inside() -> None:
    field = np.full((4, 5, 2), 7, dtype=np.int32)
    pred = median_prediction(field)
    assert np.all(pred[1:, :-1] == 7)


def test_prior_context_must_be_the_encoders() -> None:
    mv = np.ones((3, 3, 2), dtype=np.int32)
    data = encode_vectors(mv, np.zeros((3, 3, 2), dtype=np.int32))
    with pytest.raises(BitstreamError, match="previous field"):
        decode_vectors(data, 3, 3, 4, None)
    for bad in (b"", b"\x02", data[:3], data + b"\x00"):
        with pytest.raises(BitstreamError):
            decode_vectors(bad, 3, 3, 4, np.zeros((3, 3, 2), dtype=np.int32))
