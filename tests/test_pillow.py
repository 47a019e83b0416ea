"""The Pillow plugin, exercised through Pillow's own API only."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import vaerans_ecs.pillow as vae_pillow
from vaerans_ecs import api
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.models import ModelSpec


def _image(h: int = 40, w: int = 56) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], axis=-1).astype(np.uint8)


def test_registration() -> None:
    vae_pillow.register_vaerans_opener()  # idempotent
    assert Image.registered_extensions()[".vae"] == "VAERANS"
    assert Image.MIME["VAERANS"] == "image/x-vaerans"


def test_save_and_open_roundtrip(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    src = Image.fromarray(_image())
    path = tmp_path / "x.vae"
    src.save(path, quality=90, model=synthetic_model.name)
    assert path.read_bytes()[:4] == b"\x89VAE"

    with Image.open(path) as img:
        assert img.format == "VAERANS"
        assert img.get_format_mimetype() == "image/x-vaerans"
        assert (img.size, img.mode) == ((56, 40), "RGB")
        assert img.info["model"] == synthetic_model.name
        assert img.info["fingerprint"] == synthetic_model.fingerprint
        assert img.info["bpp"] == pytest.approx(path.stat().st_size * 8 / (56 * 40))
        img.load()
        decoded = np.asarray(img)
    assert decoded.shape == (40, 56, 3)
    assert np.abs(decoded.astype(int) - _image().astype(int)).mean() < 20

    # a lower quality gives a smaller stream; Pillow converts and re-saves the decoded image
    low = io.BytesIO()
    src.save(low, format="VAERANS", quality=5, model=synthetic_model.name)
    assert len(low.getvalue()) < path.stat().st_size
    with Image.open(path) as img:
        img.convert("L").save(tmp_path / "grey.png")
    assert Image.open(tmp_path / "grey.png").size == (56, 40)


def test_open_sniffs_magic_not_name(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    buf = io.BytesIO()
    Image.fromarray(_image()).save(buf, format="VAERANS", model=synthetic_model.name)
    odd = tmp_path / "stream.bin"
    odd.write_bytes(buf.getvalue())
    with Image.open(odd) as img:
        assert img.format == "VAERANS"
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        assert np.asarray(img).shape == (40, 56, 3)


def test_target_bpp_and_modes(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    rgba = Image.fromarray(np.dstack([_image(64, 64), np.full((64, 64), 128, np.uint8)]))
    rgba.save(tmp_path / "a.vae", target_bpp=1.0, model=synthetic_model.name)
    Image.fromarray(_image(64, 64)[:, :, 0]).save(tmp_path / "l.vae", model=synthetic_model.name)
    with Image.open(tmp_path / "a.vae") as a, Image.open(tmp_path / "l.vae") as grey:
        assert (a.mode, grey.mode) == ("RGBA", "L")  # the source's layout survives
        assert a.size == grey.size == (64, 64)
        a.load()
        grey.load()
        assert np.asarray(a).shape == (64, 64, 4) and np.asarray(grey).shape == (64, 64)


def test_save_lossless_and_max_error(tmp_path: Path) -> None:
    src = Image.fromarray(np.dstack([_image(40, 56), np.arange(40 * 56, dtype=np.uint8).reshape(40, 56)]))
    src.save(tmp_path / "x.vae", lossless=True)
    with Image.open(tmp_path / "x.vae") as back:
        np.testing.assert_array_equal(np.asarray(back), np.asarray(src))
    src.save(tmp_path / "y.vae", max_error=3)
    with Image.open(tmp_path / "y.vae") as near:
        assert int(np.abs(np.asarray(near).astype(int) - np.asarray(src)).max()) <= 3


def test_corrupt_streams_say_why(tmp_path: Path, synthetic_model: ModelSpec) -> None:
    """A file with our magic and a bad header: Image.open raises an UnidentifiedImageError that is also a
    BitstreamError carrying the reason (it used to say only "cannot identify image file")."""
    buf = io.BytesIO()
    Image.fromarray(_image()).save(buf, format="VAERANS", model=synthetic_model.name)
    good = buf.getvalue()
    data = bytearray(good)
    data[20] ^= 0xFF
    bad = tmp_path / "bad.vae"
    bad.write_bytes(bytes(data))
    for source in (bad, io.BytesIO(bytes(data)), io.BytesIO(good[:12])):
        with pytest.raises(UnidentifiedImageError) as info:
            Image.open(source)
        assert isinstance(info.value, BitstreamError) and isinstance(info.value, vae_pillow.InvalidStreamError)
        assert str(info.value).startswith("invalid vaerans stream: ") and "cannot identify" not in str(info.value)
    with pytest.raises(BitstreamError) as reason:
        api.inspect(bytes(data))
    with pytest.raises(UnidentifiedImageError) as info:
        Image.open(bad)
    assert str(info.value) == f"invalid vaerans stream: {reason.value}"  # the decoder's own reason
    # other formats are unaffected
    Image.fromarray(_image()).save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").format == "PNG"
    with pytest.raises(UnidentifiedImageError, match="cannot identify"):
        Image.open(io.BytesIO(b"not an image at all"))
