"""Quality <-> base step mapping of the quantizer."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.quantize.helpers import FAST
from vaerans_ecs.errors import ConfigError
from vaerans_ecs.systems.quantize import quality_for_step, step_for_quality


def test_step_for_quality_endpoints_and_monotone() -> None:
    assert step_for_quality(100, 0.05, 4.0) == pytest.approx(0.05)
    assert step_for_quality(1, 0.05, 4.0) == pytest.approx(4.0)
    assert step_for_quality(50.5, 0.05, 4.0) == pytest.approx(math.sqrt(0.05 * 4.0))
    steps = [step_for_quality(q, 0.1, 2.0) for q in range(1, 101)]
    assert all(a > b for a, b in itertools.pairwise(steps))
    assert step_for_quality(30, 0.5, 0.5) == 0.5
    assert quality_for_step(0.5, 0.5, 0.5) == 100.0
    for bad in (0, 0.5, 101, float("nan")):
        with pytest.raises(ConfigError):
            step_for_quality(bad)
    with pytest.raises(ConfigError):
        step_for_quality(50, 2.0, 1.0)
    with pytest.raises(ConfigError):
        quality_for_step(-1.0)


@FAST
@given(st.floats(1.0, 100.0), st.floats(0.001, 1.0), st.floats(1.0, 50.0))
def test_quality_step_inverse(quality: float, step_min: float, ratio: float) -> None:
    step_max = step_min * ratio
    step = step_for_quality(quality, step_min, step_max)
    assert step_min * (1 - 1e-12) <= step <= step_max * (1 + 1e-12)
    if ratio > 1.0 + 1e-6:
        assert quality_for_step(step, step_min, step_max) == pytest.approx(quality, abs=1e-6)
