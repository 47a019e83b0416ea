"""Rate curves: reading/writing rd.json, interpolation, and the choice of model per request."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vaerans_ecs.errors import ModelError
from vaerans_ecs.ratecurve import RatePoint, choose, load_curve, psnr_at, rate_level, save_curve, step_at, useful

# A stride-8-like curve (good at low rates, saturating early) and a stride-4-like one.
LOW = (RatePoint(16.0, 0.02, 22.0), RatePoint(4.0, 0.06, 24.5), RatePoint(1.0, 0.20, 26.0))
HIGH = (RatePoint(10.0, 0.05, 23.5), RatePoint(2.0, 0.20, 28.0), RatePoint(0.5, 0.60, 31.0))


def test_interpolation_is_log_linear_and_bounded() -> None:
    assert psnr_at(LOW, 0.06) == pytest.approx(24.5)
    mid = math.sqrt(0.02 * 0.06)  # halfway in log-rate
    assert psnr_at(LOW, mid) == pytest.approx(23.25)
    assert step_at(LOW, mid) == pytest.approx(8.0)
    assert psnr_at(LOW, 0.01) == -math.inf and psnr_at(LOW, 0.5) == -math.inf
    # clamped to the curve
    assert step_at(LOW, 0.001) == pytest.approx(16.0) and step_at(LOW, 5.0) == pytest.approx(1.0)


def test_quality_walks_the_envelope() -> None:
    curves = [LOW, HIGH]
    assert rate_level(curves, 1) == pytest.approx(0.02)
    assert rate_level(curves, 100) == pytest.approx(0.60)
    assert choose(curves, quality=1) == (0, pytest.approx(16.0))
    assert choose(curves, quality=100) == (1, pytest.approx(0.5))
    picks = [choose(curves, quality=q) for q in range(1, 101)]
    rates = [rate_level(curves, q) for q in range(1, 101)]
    assert rates == sorted(rates)
    # one switch, from the low-rate model to the high-rate one, where HIGH overtakes LOW
    models = [m for m, _ in picks]
    switch = models.index(1)
    assert set(models[:switch]) == {0} and set(models[switch:]) == {1}
    assert psnr_at(HIGH, rates[switch]) >= psnr_at(LOW, rates[switch])
    assert psnr_at(LOW, rates[switch - 1]) > psnr_at(HIGH, rates[switch - 1])


def test_target_rate_picks_best_model_and_nearest_out_of_range() -> None:
    assert choose([LOW, HIGH], target_bpp=0.03)[0] == 0  # only LOW reaches it
    assert choose([LOW, HIGH], target_bpp=0.15)[0] == 1  # both reach it; HIGH is better there
    assert choose([LOW, HIGH], target_bpp=0.001) == (0, pytest.approx(16.0))  # below both: the lower one, clamped
    assert choose([LOW, HIGH], target_bpp=3.0) == (1, pytest.approx(0.5))


@pytest.mark.parametrize(
    "kwargs", [{}, {"quality": 5, "target_bpp": 0.1}, {"quality": 0}, {"quality": 101}, {"target_bpp": -1.0}]
)
def test_choose_rejects_bad_requests(kwargs: dict[str, float]) -> None:
    with pytest.raises(ModelError):
        choose([LOW], **kwargs)
    with pytest.raises(ModelError):
        choose([], quality=50)


def test_save_load_roundtrip_and_provenance(tmp_path: Path) -> None:
    path = tmp_path / "rd.json"
    save_curve(path, list(reversed(HIGH)), model="m", fingerprint="abc", command="cmd")
    assert load_curve(path, "abc") == HIGH  # sorted by rate
    doc = json.loads(path.read_text())
    assert doc["model"] == "m" and doc["command"] == "cmd"
    with pytest.raises(ModelError, match="measured with decoder abc"):
        load_curve(path, "def")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"points": 3}',
        '{"points": [{"step": 1, "bpp": 0.1}]}',
        '{"points": [{"step": 1, "bpp": 0.1, "psnr": 20}]}',  # one point
        '{"points": [{"step": 1, "bpp": 0.1, "psnr": 20}, {"step": 2, "bpp": 0.2, "psnr": 21}]}',  # rate rises
        '{"points": [{"step": 1, "bpp": 0.1, "psnr": 20}, {"step": 0.5, "bpp": 0.1, "psnr": 21}]}',  # flat
        '{"points": [{"step": 1, "bpp": 0.1, "psnr": "nan"}, {"step": 0.5, "bpp": 0.2, "psnr": 21}]}',
        '{"points": [{"step": -1, "bpp": 0.1, "psnr": 20}, {"step": -2, "bpp": 0.2, "psnr": 21}]}',
    ],
)
def test_load_rejects_broken_curves(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rd.json"
    path.write_text(text)
    with pytest.raises(ModelError):
        load_curve(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        load_curve(tmp_path / "absent.json")


# beaten by HIGH (and LOW) at every one of its points, though it reaches a higher rate than both
WORSE = (RatePoint(8.0, 0.07, 23.0), RatePoint(2.0, 0.20, 27.0), RatePoint(0.4, 0.70, 30.5))


def test_a_curve_beaten_everywhere_takes_no_part() -> None:
    assert useful([LOW, HIGH, WORSE]) == [0, 1]
    assert useful([WORSE, LOW, HIGH]) == [1, 2]
    assert useful([HIGH, HIGH, LOW]) == [0, 2]  # of identical curves, the first
    assert useful([WORSE]) == [0]
    # quality 100 stays with the best model, not the one that merely reaches further
    assert choose([LOW, HIGH, WORSE], quality=100) == (1, pytest.approx(0.5))
    assert choose([WORSE, LOW, HIGH], target_bpp=0.65) == (2, pytest.approx(0.5))
    assert [choose([LOW, WORSE, HIGH], quality=q)[0] for q in (1, 50, 100)] == [0, 2, 2]
    # beaten by LOW at its low point and by HIGH at its high one: no use either
    middle = (RatePoint(10.0, 0.03, 22.5), RatePoint(0.5, 0.60, 30.0))
    assert useful([LOW, middle, HIGH]) == [0, 2] and useful([middle, LOW]) == [0, 1]
    # one point where it is better keeps it
    better_top = (*WORSE[:2], RatePoint(0.4, 0.70, 31.5))
    assert useful([LOW, HIGH, better_top]) == [0, 1, 2]
    assert choose([LOW, HIGH, better_top], quality=100)[0] == 2


def test_a_start_within_rate_noise_still_beats() -> None:
    # two curves over the same steps, one better everywhere: rate noise puts the worse one's first
    # point 1 % lower, which alone must not keep it (nor hand it the lowest qualities)
    better = (RatePoint(6.0, 0.101, 27.7), RatePoint(0.5, 0.545, 33.5))
    worse = (RatePoint(6.0, 0.100, 27.6), RatePoint(0.5, 0.546, 33.3))
    assert useful([better, worse]) == [0] and useful([worse, better]) == [1]
    # a start 5 % lower is a rate the better curve does not reach: that point keeps the curve
    reaching = (RatePoint(6.0, 0.096, 27.6), RatePoint(0.5, 0.546, 33.3))
    assert useful([better, reaching]) == [0, 1]
