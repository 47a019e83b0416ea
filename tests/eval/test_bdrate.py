"""Bjontegaard delta rate / quality on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaerans_ecs.eval.bdrate import bd_quality, bd_rate, clean_curve

RATES = [0.1, 0.2, 0.35, 0.5, 0.8, 1.2]
PSNR = [26.0, 28.5, 30.1, 31.4, 33.0, 34.7]


def test_same_curve_is_zero() -> None:
    assert bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)
    assert bd_quality(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor", [0.8, 1.25, 0.5])
def test_scaled_rates_give_exact_bd_rate(factor: float) -> None:
    # Same qualities at rate * factor: log-rate shifts by log(factor) everywhere.
    scaled = [r * factor for r in RATES]
    assert bd_rate(RATES, PSNR, scaled, PSNR) == pytest.approx((factor - 1) * 100, abs=1e-9)
    assert bd_rate(scaled, PSNR, RATES, PSNR) == pytest.approx((1 / factor - 1) * 100, abs=1e-9)


def test_bd_rate_minus_20_percent_exactly() -> None:
    assert bd_rate(RATES, PSNR, [0.8 * r for r in RATES], PSNR) == pytest.approx(-20.0, abs=1e-9)


def test_linear_log_rate_curves_sampled_differently() -> None:
    # log r = a + b * D on both curves (PCHIP reproduces straight lines), different samples and
    # ranges: the BD-rate is exp(a2 - a1) - 1 whatever the overlap.
    b = 0.3
    d1 = np.array([25.0, 27.0, 29.5, 31.0, 34.0])
    d2 = np.array([26.2, 28.0, 30.0, 33.0, 36.0])
    r1 = np.exp(-9.0 + b * d1)
    r2 = np.exp(-9.2 + b * d2)
    assert bd_rate(list(r1), list(d1), list(r2), list(d2)) == pytest.approx((math.exp(-0.2) - 1) * 100, abs=1e-9)
    # BD-quality: D = (log r - a) / b, so the curves differ by 0.2 / b dB.
    assert bd_quality(list(r1), list(d1), list(r2), list(d2)) == pytest.approx(0.2 / b, abs=1e-9)


def test_quality_shift_gives_bd_psnr() -> None:
    assert bd_quality(RATES, PSNR, RATES, [p + 1.5 for p in PSNR]) == pytest.approx(1.5, abs=1e-9)


def test_no_overlap_or_too_few_points_is_nan() -> None:
    assert math.isnan(bd_rate([0.1, 0.2], [20.0, 22.0], [0.5, 0.6], [30.0, 31.0]))
    assert math.isnan(bd_rate([0.1], [20.0], RATES, PSNR))


def test_clean_curve_drops_invalid_and_dominated_points() -> None:
    r, q = clean_curve([0.4, 0.1, 0.2, 0.3, 0.0, 0.5, 0.5], [30.0, 25.0, 27.0, 26.5, 20.0, float("nan"), 31.0])
    np.testing.assert_array_equal(r, [0.1, 0.2, 0.4, 0.5])
    np.testing.assert_array_equal(q, [25.0, 27.0, 30.0, 31.0])
    # Unsorted input gives the same BD-rate as sorted.
    order = [3, 0, 5, 1, 4, 2]
    assert bd_rate([RATES[i] for i in order], [PSNR[i] for i in order], [0.8 * r for r in RATES], PSNR) == (
        pytest.approx(-20.0, abs=1e-9)
    )


def test_quality_overlap() -> None:
    from vaerans_ecs.eval.bdrate import quality_overlap

    assert quality_overlap(RATES, PSNR, RATES, [p + 2.0 for p in PSNR]) == (28.0, 34.7)
    assert quality_overlap([0.1, 0.2], [20.0, 22.0], [0.5, 0.6], [30.0, 31.0]) is None


def test_quality_range_restricts_the_integral() -> None:
    # log r = a + b * D with different slopes: the log-rate gap grows with D, so the BD-rate over a
    # sub-range is exp(gap at the range's middle) - 1 (PCHIP reproduces straight lines).
    d = np.array([25.0, 28.0, 31.0, 34.0, 37.0, 40.0, 45.0])
    r1 = np.exp(-9.0 + 0.30 * d)
    r2 = np.exp(-9.0 + 0.29 * d)
    whole = bd_rate(list(r1), list(d), list(r2), list(d))
    assert whole == pytest.approx((math.exp(-0.01 * 35.0) - 1) * 100, abs=1e-9)
    within = bd_rate(list(r1), list(d), list(r2), list(d), quality_range=(32.0, 40.0))
    assert within == pytest.approx((math.exp(-0.01 * 36.0) - 1) * 100, abs=1e-9)
    # a range wider than the overlap changes nothing; one beside it gives NaN
    assert bd_rate(list(r1), list(d), list(r2), list(d), quality_range=(0.0, 99.0)) == pytest.approx(whole)
    assert math.isnan(bd_rate(list(r1), list(d), list(r2), list(d), quality_range=(46.0, 50.0)))


def test_quality_range_clips_the_overlap() -> None:
    from vaerans_ecs.eval.bdrate import quality_overlap

    assert quality_overlap(RATES, PSNR, RATES, PSNR, quality_range=(27.0, 32.0)) == (27.0, 32.0)
    assert quality_overlap(RATES, PSNR, RATES, PSNR, quality_range=(32.0, 40.0)) == (32.0, 34.7)
    assert quality_overlap(RATES, PSNR, RATES, PSNR, quality_range=(35.0, 40.0)) is None
    with pytest.raises(ValueError, match="lo < hi"):
        bd_rate(RATES, PSNR, RATES, PSNR, quality_range=(40.0, 32.0))
