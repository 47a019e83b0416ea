"""Per-image bars, curve checks and the BD-range column, from hand-made result rows."""

from __future__ import annotations

import math
from typing import Any

import pytest

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval.cli import parse_range
from vaerans_ecs.eval.report import bd_table, mean_curves, tables_markdown
from vaerans_ecs.eval.tables import exact_table, interpolate_psnr, near_pairs, per_image_table, rise_check


def row(codec: str, image: str, q: float, bpp: float, psnr: float, bound: int | None = None,
        err: int = 0, family: str | None = None) -> dict[str, Any]:
    return {"codec": codec, "family": family or codec.split(":")[0], "image": image, "quality": q, "bpp": bpp,
            "psnr": psnr, "bound": bound, "max_abs_error": err, "encode_s": 0.5, "decode_s": 0.25,
            "encode_cpu_s": 0.4, "decode_cpu_s": 0.2, "mode": "L", "width": 8, "height": 8, "bytes": 8,
            "psnr_y": psnr, "ms_ssim": 0.99, "ms_ssim_db": 20.0}


def test_interpolate_psnr() -> None:
    bpps, psnrs = [0.5, 1.0, 2.0], [30.0, 34.0, 38.0]
    value, how = interpolate_psnr(bpps, psnrs, 1.0)
    assert value == pytest.approx(34.0) and how == "interpolated"
    value, how = interpolate_psnr(bpps, psnrs, math.sqrt(2.0))  # straight line in log-bpp
    assert value == pytest.approx(36.0) and how == "interpolated"
    assert interpolate_psnr(bpps, psnrs, 3.0) == (38.0, "top")
    assert interpolate_psnr(bpps, psnrs, 0.25) == (None, "below")
    assert interpolate_psnr([1.0, 2.0], [40.0, math.inf], 2.0) == (100.0, "interpolated")  # identical = 100 dB


def test_per_image_bars() -> None:
    rows = [
        # image a: our curve beats WebP q90 - 1 dB at its rate; lossless worse than PNG
        row("vaerans", "a", 50, 0.5, 30.0), row("vaerans", "a", 90, 2.0, 40.0),
        row("webp", "a", 90, 1.0, 35.5),
        row("vaerans:lossless", "a", 0, 5.0, math.inf, 0, family="vaerans"),
        row("png", "a", 0, 4.0, math.inf, 0), row("webp-ll", "a", 0, 6.0, math.inf, 0),
        # image b: lossy short by 1.5 dB, but lossless fits in WebP q90's rate; lossless <= PNG, > WebP-LL
        row("vaerans", "b", 50, 0.5, 30.0), row("vaerans", "b", 90, 2.0, 40.0),
        row("webp", "b", 90, 1.0, 36.5),
        row("vaerans:lossless", "b", 0, 0.9, math.inf, 0, family="vaerans"),
        row("png", "b", 0, 1.0, math.inf, 0), row("webp-ll", "b", 0, 0.8, math.inf, 0),
        # image c: short by 1.5 dB, lossless too big; and a "lossless" stream that was not exact
        row("vaerans", "c", 50, 0.5, 30.0), row("vaerans", "c", 90, 2.0, 40.0),
        row("webp", "c", 90, 1.0, 36.5),
        row("vaerans:lossless", "c", 0, 0.5, 60.0, 0, err=1, family="vaerans"),
        row("png", "c", 0, 1.0, math.inf, 0), row("webp-ll", "c", 0, 0.8, math.inf, 0),
    ]
    table = per_image_table(rows)
    assert table is not None
    a, b, c = table["rows"]
    assert a["ours_psnr"] == pytest.approx(35.0) and a["lossy_pass"] and a["lossy_by"] == "psnr"
    assert not a["lossless_pass"] and a["lossless_goal"]
    assert b["lossy_pass"] and b["lossy_by"] == "lossless" and b["lossless_pass"] and not b["lossless_goal"]
    assert not c["ours_exact"] and not c["lossy_pass"] and not c["lossless_pass"] and not c["lossless_goal"]
    text = "\n".join(tables_markdown_rows(rows))
    assert "lossy at WebP q90: 2 of 3 images pass." in text and "lossless <= PNG: 1 of 3" in text


def tables_markdown_rows(rows: list[dict[str, Any]]) -> list[str]:
    curves = mean_curves(rows)
    payload = {"exact": exact_table(rows), "bd_rate": bd_table(curves, rows, (32.0, 40.0)),
               "meta": {"bd_range": [32, 40]}, "rises": {"vaerans": rise_check(rows, "vaerans")},
               "per_image": per_image_table(rows), "failures": []}
    return tables_markdown(payload).splitlines()


def test_per_image_needs_its_codecs() -> None:
    assert per_image_table([row("vaerans", "a", 50, 0.5, 30.0), row("webp", "a", 80, 1.0, 35.0)]) is None


def test_rise_check_finds_a_fall() -> None:
    up = [row("vaerans", "a", q, b, p) for q, b, p in [(10, 0.1, 25.0), (50, 0.5, 30.0), (100, 2.0, 41.0)]]
    check = rise_check(up, "vaerans")
    assert check["rises"] and check["top_psnr"] == 41.0 and check["top_quality"] == 100
    down = [*up[:2], row("vaerans", "a", 100, 2.0, 29.0)]
    assert rise_check(down, "vaerans")["falls"] == ["q50 -> q100"]
    flat_rate = [*up[:2], row("vaerans", "a", 100, 0.5, 31.0)]
    assert not rise_check(flat_rate, "vaerans")["rises"]


def test_exact_table_and_near_pairs() -> None:
    rows = [row("vaerans:max_error=2", i, 2, 3.0, 45.0, 2, err=2, family="vaerans") for i in "ab"]
    rows += [row("jpegls:near=2", i, 2, 4.0, 44.0, 2, err=2) for i in "ab"]
    rows += [row("jpegls:near=4", "a", 4, 2.0, 40.0, 4, err=5)]
    table = exact_table(rows)
    assert table["vaerans:max_error=2"]["all_held"] and table["vaerans:max_error=2"]["encode_images_per_s"] == 2.0
    assert not table["jpegls:near=4"]["all_held"] and table["jpegls:near=4"]["max_abs_error"] == 5
    pairs = near_pairs(table)
    assert pairs[0]["k"] == 2 and pairs[0]["ratio"] == pytest.approx(0.75)
    assert pairs[1]["k"] == 4 and pairs[1]["ratio"] is None and pairs[1]["jpegls_held"] is False


def test_bd_range_column_and_parse_range() -> None:
    d = [28.0, 31.0, 34.0, 37.0, 40.0, 43.0]
    rows = [row("webp", "a", i, math.exp(-9 + 0.3 * p), p) for i, p in enumerate(d)]
    rows += [row("vaerans", "a", i, math.exp(-9.1 + 0.3 * p), p) for i, p in enumerate(d)]
    rows += [row("vaerans:lossless", "a", 0, 9.0, math.inf, 0, family="vaerans")]
    table = bd_table(mean_curves(rows), rows, (32.0, 40.0))
    cell = table["vaerans"]["webp"]
    assert cell["psnr_range"] == pytest.approx((math.exp(-0.1) - 1) * 100) and cell["psnr_range_overlap"] == [32, 40]
    assert "vaerans:lossless" not in table  # exact codecs have no curve
    assert parse_range("32,40") == (32.0, 40.0) and parse_range("none") is None
    for bad in ("40,32", "x", "1,2,3", "nan,4"):
        with pytest.raises(VaeransError):
            parse_range(bad)
