"""Exact codecs in the evaluation harness: lossless / max_error specs, anchors' round trips, failures."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval import main, parse_codec
from vaerans_ecs.eval.base import Codec
from vaerans_ecs.eval.codecs import FAMILIES, VaeransCodec
from vaerans_ecs.eval.harness import measure_point
from vaerans_ecs.imaging import load_source

U8 = npt.NDArray[np.uint8]
ANCHORS = ("png", "webp-ll", "jxl-ll", "j2k-ll", "jpegls")


def noisy(h: int, w: int, c: int, seed: int) -> U8:
    """A smooth gradient with noise: neither flat nor pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx * 3 + yy * 2)[:, :, None] + np.arange(c)[None, None, :] * 40
    return np.clip(base + rng.integers(-9, 10, (h, w, c)), 0, 255).astype(np.uint8)


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """RGB, gray (L) and palette (P) images, as the hard set has them."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(noisy(24, 32, 3, 1)).save(folder / "a_rgb.png")
    Image.fromarray(noisy(20, 28, 1, 2)[:, :, 0]).save(folder / "b_gray.png")
    pal = (noisy(16, 24, 1, 3)[:, :, 0] // 32).astype(np.uint8)
    p = Image.fromarray(pal, "P")
    p.putpalette([v for i in range(8) for v in (i * 30, 255 - i * 20, (i * 77) % 256)])
    p.save(folder / "c_pal.png")
    return folder


def test_lossless_and_max_error_checked_on_every_image(mixed_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("imagecodecs", reason="the jpegls anchor needs imagecodecs (test extra)")
    out = tmp_path / "out"
    codecs = "vaerans:lossless,vaerans:max_error=2,png,jpegls:near=2"
    rc = main(["--data", str(mixed_dir), "--codecs", codecs, "--out", str(out), "--quiet", "--no-plots",
               "--qualities", "vaerans=50,90"])  # a family grid must not apply to exact codecs
    assert rc == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["failures"] == []
    rows = payload["results"]
    assert len(rows) == 4 * 3  # one point per exact codec and image
    modes = {r["image"]: (r["mode"], r["channels"]) for r in rows}
    assert modes == {"a_rgb.png": ("RGB", 3), "b_gray.png": ("L", 1), "c_pal.png": ("P", 3)}
    for r in rows:
        bound = {"vaerans:lossless": 0, "png": 0}.get(r["codec"], 2)
        assert r["bound"] == bound and r["max_abs_error"] <= bound and r["bound_held"] is True
        assert r["quality"] == bound
    # the near-lossless streams do use their bound on these noisy images (the check is not vacuous)
    assert max(r["max_abs_error"] for r in rows if r["codec"] == "vaerans:max_error=2") == 2
    exact = payload["exact"]
    assert exact["vaerans:lossless"]["all_held"] and exact["vaerans:lossless"]["held"] == 3
    summary = (out / "summary.md").read_text()
    assert "## Lossless" in summary and "| vaerans:lossless |" in summary and "yes (3/3)" in summary
    assert "## Near-lossless" in summary and "FAILURES" not in summary
    printed = capsys.readouterr().out
    assert "## Lossless" in printed and "ours / JPEG-LS" in printed


class OffByOne(Codec):
    """A 'lossless' codec whose decoder moves one sample by one level: must be reported, not averaged."""

    family: ClassVar[str] = "offbyone"
    bound: int | None = 0

    def __init__(self, label: str, **options: str | None) -> None:
        super().__init__(label)

    def encode(self, img: Any, quality: float) -> tuple[bytes, dict[str, float]]:
        px = load_source(img).pixels
        return px.shape[0].to_bytes(2, "big") + px.shape[1].to_bytes(2, "big") + px.tobytes(), {}

    def decode(self, data: bytes, channels: int = 3) -> tuple[U8, dict[str, float]]:
        h, w = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:4], "big")
        px = np.frombuffer(data[4:], np.uint8).reshape(h, w, -1).copy()
        px[h // 2, w // 2, 0] ^= 1
        return px, {}


def test_bound_violation_is_a_loud_failure(mixed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(FAMILIES, "offbyone", OffByOne)
    out = tmp_path / "out"
    rc = main(["--data", str(mixed_dir), "--codecs", "offbyone,png", "--out", str(out), "--quiet", "--no-plots"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("FAILURE: offbyone") == 3 and "max |error| 1 > bound 0" in err
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["failures"]) == 3 and {f["codec"] for f in payload["failures"]} == {"offbyone"}
    assert payload["exact"]["offbyone"]["all_held"] is False and payload["exact"]["png"]["all_held"] is True
    summary = (out / "summary.md").read_text()
    assert summary.index("## FAILURES") < summary.index("## Lossless")
    assert "| offbyone |" in summary and "**NO** (0/3)" in summary


def test_codec_errors_are_failures_not_crashes(mixed_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    class Crashing(OffByOne):
        def decode(self, data: bytes, channels: int = 3) -> tuple[U8, dict[str, float]]:
            raise RuntimeError("decoder fell over")

    monkeypatch.setitem(FAMILIES, "offbyone", Crashing)
    out = tmp_path / "out"
    assert main(["--data", str(mixed_dir), "--codecs", "offbyone,png", "--out", str(out), "--quiet",
                 "--no-plots", "--limit", "1"]) == 1
    payload = json.loads((out / "results.json").read_text())
    assert payload["failures"][0]["what"] == "RuntimeError: decoder fell over"
    assert [r["codec"] for r in payload["results"]] == ["png"]


@pytest.mark.parametrize("name", ANCHORS)
def test_anchor_round_trips_every_layout(name: str) -> None:
    codec = parse_codec(name)
    if codec.unavailable() is not None:
        pytest.skip(f"{name}: {codec.unavailable()}")
    assert codec.bound == 0 and codec.fixed
    for img in (noisy(18, 26, 3, 4), noisy(17, 23, 1, 5)[:, :, 0], noisy(12, 20, 4, 6)):
        point = measure_point(codec, "x", img, 0.0, 1)
        assert point.max_abs_error == 0 and point.bound_held, (name, img.shape)
        assert point.channels == (1 if img.ndim == 2 else img.shape[2])


def test_png_anchor_keeps_the_palette() -> None:
    pal = (noisy(32, 32, 1, 7)[:, :, 0] // 64).astype(np.uint8)
    p = Image.fromarray(pal, "P")
    p.putpalette([v for i in range(4) for v in (i * 60, 200 - i * 40, 17 * i)])
    src = load_source(p)
    assert src.mode == "P" and src.pixels.shape[2] == 3
    png = parse_codec("png")
    data, _ = png.encode(src, 0.0)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P"
    assert measure_point(png, "p", src, 0.0, 1).max_abs_error == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16), h=st.integers(3, 14), w=st.integers(3, 14),
       c=st.sampled_from([1, 3]))
def test_max_error_spec_holds_its_bound(k: int, seed: int, h: int, w: int, c: int) -> None:
    pytest.importorskip("imagecodecs", reason="the jpegls anchor needs imagecodecs (test extra)")
    img = noisy(h, w, c, seed)
    for spec in (f"vaerans:max_error={k}", f"jpegls:near={k}"):
        point = measure_point(parse_codec(spec), "x", img, float(k), 1)
        assert point.bound == k and point.max_abs_error <= k and point.bound_held
    lossless = measure_point(parse_codec("vaerans:lossless"), "x", img, 0.0, 1)
    assert lossless.max_abs_error == 0 and lossless.psnr == float("inf")


def test_parse_exact_specs() -> None:
    ll = parse_codec("vaerans:lossless")
    assert isinstance(ll, VaeransCodec) and ll.label == "vaerans:lossless" and ll.bound == 0
    assert ll.default_settings() == (0.0,) and ll.models() == []
    ne = parse_codec("vaerans:max_error=4")
    assert ne.label == "vaerans:max_error=4" and ne.bound == 4 and ne.default_settings() == (4.0,)
    assert parse_codec("jpegls:near=3").bound == 3 and parse_codec("jpegls").bound == 0
    assert parse_codec("vaerans").bound is None and not parse_codec("webp").fixed
    for bad, match in [
        ("vaerans:max_error=17", "max_error must be"),
        ("vaerans:max_error=x", "max_error must be"),
        ("vaerans:lossless:max_error=2", "not both"),
        ("vaerans:lossless:model=vae-f8c4", "do not apply"),
        ("vaerans:model", "need a value"),
        ("jpegls:near=a", "near must be"),
        ("jpegls:level=2", "unknown option"),
        ("png:fast", "key=value"),
        ("j2k-ll:rate=3", "takes no options"),
    ]:
        with pytest.raises(VaeransError, match=match):
            parse_codec(bad)


def test_report_only_rewrites_the_report_from_results_json(mixed_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["--data", str(mixed_dir), "--codecs", "vaerans:lossless,png,jpeg", "--out", str(out), "--quiet",
            "--no-plots", "--qualities", "jpeg=30,60,90"]
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())
    summary = (out / "summary.md").read_text()
    capsys.readouterr()
    (out / "summary.md").unlink()
    assert main(["--report-only", "--out", str(out), "--no-plots"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again == first  # identical decodes are infinite again, not NaN
    assert (out / "summary.md").read_text().split("## Codecs")[1] == summary.split("## Codecs")[1]
    assert "reported 3 images" in capsys.readouterr().out
    assert main(["--report-only", "--out", str(out), "--no-plots", "--bd-range", "none"]) == 0
    assert "[32, 40]" in summary and "[32, 40]" not in (out / "summary.md").read_text()
    assert main(["--report-only", "--out", str(tmp_path / "nothing"), "--quiet"]) == 2
