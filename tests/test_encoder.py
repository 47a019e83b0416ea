"""What the encoder picks per image (vaerans_ecs/encoder.py), seen through the streams it writes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from vaerans_ecs import api
from vaerans_ecs.config import CodecConfig, Config
from vaerans_ecs.encoder import looks_synthetic, metadata_of, transform_curve
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.imaging import load_source
from vaerans_ecs.models import ModelSpec


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([120 + 90 * np.sin(x / (5 + c) + c) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _text(h: int = 64, w: int = 96) -> np.ndarray:
    """Black glyph-like strokes on white: what a VAE is the wrong tool for."""
    img = np.full((h, w, 3), 255, np.uint8)
    for row in range(4, h - 8, 12):
        for col in range(4, w - 6, 7):
            img[row : row + 7, col : col + 1] = 0
            img[row + ((col // 7) % 3) * 3, col : col + 5] = 0
    return img


def _coders(data: bytes) -> list[str]:
    return [s.name for s in api.inspect(data).pipeline]


def test_the_transform_curve_ships_and_spans_the_top_of_the_range() -> None:
    curve = transform_curve()
    assert len(curve) >= 8 and curve[-1].psnr > 40.0
    assert all(a.bpp < b.bpp and a.psnr < b.psnr for a, b in itertools.pairwise(curve))


def test_high_quality_photos_go_to_the_transform_coder_low_ones_to_a_vae() -> None:
    img = _photo()
    assert _coders(api.compress(img, 100)) == ["TransformCode"]
    assert _coders(api.compress(img, 1))[0] == "OnnxVAEEncode"


def test_a_named_or_configured_model_is_used_alone(synthetic_model: ModelSpec) -> None:
    img = _photo()
    assert _coders(api.compress(img, 100, synthetic_model.name))[0] == "OnnxVAEEncode"
    pinned = Config(codec=CodecConfig(model=synthetic_model.name))
    assert _coders(api.compress(img, 100, config=pinned))[0] == "OnnxVAEEncode"


def test_text_keeps_the_lossless_stream_when_it_is_no_larger() -> None:
    img = _text()
    assert looks_synthetic(img) and not looks_synthetic(_photo())
    data = api.compress(img, 90)
    assert _coders(data) == ["PixelCode"]
    np.testing.assert_array_equal(api.decompress(data), img)
    assert len(data) <= len(api.compress(img, 90, config=Config(codec=CodecConfig(model="vae-f4c4-xe"))))


def test_other_layouts_take_the_transform_coder_and_keep_their_layout() -> None:
    gray = _photo()[:, :, 1]
    data = api.compress(gray, 60)
    assert _coders(data) == ["TransformCode"] and api.decompress(data).shape == gray.shape
    rgba = np.dstack([_photo(), np.full(gray.shape, 200, np.uint8)])
    assert api.decompress(api.compress(rgba, 60)).shape == rgba.shape


def test_metadata_travels_only_when_there_is_some(tmp_path: object) -> None:
    import io

    buf = io.BytesIO()
    Image.fromarray(_photo()).save(buf, format="PNG", icc_profile=b"an icc profile")
    src = load_source(buf.getvalue())
    assert metadata_of(src) == {"icc": b"an icc profile"}
    assert metadata_of(load_source(_photo())) == {}
    palette = Image.fromarray(_photo()).quantize(colors=8)
    assert metadata_of(load_source(palette)) == {"mode": b"P"}
    meta = api.stream_meta(api.inspect(api.compress(palette, lossless=True)))
    assert meta.mode == "P"
    assert api.decompress_image(api.compress(palette, lossless=True)).mode == "P"


def test_target_bpp_on_the_transform_coder_lands_within_five_percent() -> None:
    img = _photo(96, 128)
    data = api.compress(img[:, :, :1].repeat(3, axis=2)[:, :, 0], target_bpp=2.0)  # gray: transform coder
    assert abs(len(data) * 8 / (96 * 128) - 2.0) <= 0.1


@pytest.mark.parametrize("kwargs", [{"quality": 50, "target_bpp": 0.5}, {"lossless": True, "quality": 90},
                                    {"lossless": True, "max_error": 2}, {"max_error": 17}, {"max_error": True},
                                    {"base_quality": 40, "target_bpp": 1.0}, {"quality": 0}])
def test_requests_that_mean_two_things_or_nothing_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(VaeransError):
        api.compress(_photo(), **kwargs)  # type: ignore[arg-type]
