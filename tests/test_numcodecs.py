"""The numcodecs codec "vaerans": options round-trip, the entry point, and a zarr v3 array of images."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

numcodecs = pytest.importorskip("numcodecs", reason="the zarr extra (numcodecs, zarr) is not installed")
zarr = pytest.importorskip("zarr", reason="the zarr extra (numcodecs, zarr) is not installed")

from vaerans_ecs.errors import VaeransError  # noqa: E402
from vaerans_ecs.numcodecs import Vaerans, zarr_codec  # noqa: E402


def _images(n: int, h: int = 40, w: int = 56) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [np.stack([(x * (3 + k)) % 256, (y * 5 + k * 20) % 256, (x + y + 7 * k) % 256], axis=-1) for k in range(n)]
    ).astype(np.uint8)


def test_codec_round_trip_and_config() -> None:
    img = _images(1)[0]
    codec = Vaerans(lossless=True)
    assert Vaerans.from_config(codec.get_config()).get_config() == codec.get_config()
    np.testing.assert_array_equal(codec.decode(codec.encode(img)), img)
    out = np.empty_like(img)
    codec.decode(codec.encode(img), out=out)
    np.testing.assert_array_equal(out, img)
    near = Vaerans(max_error=2)
    assert int(np.abs(near.decode(near.encode(img)).astype(int) - img).max()) <= 2
    with pytest.raises(VaeransError):
        Vaerans(quality=50, lossless=True)


def test_registered_through_numcodecs_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="numcodecs.codecs")}
    assert names.get("vaerans") == "vaerans_ecs.numcodecs:Vaerans", "reinstall the package (pip install -e .)"
    codec = numcodecs.get_codec({"id": "vaerans", "lossless": True})
    assert isinstance(codec, Vaerans) and codec.lossless


def test_zarr_v3_array_of_images(tmp_path: Path) -> None:
    images = _images(3)
    z = zarr.create_array(
        store=str(tmp_path / "a.zarr"), shape=images.shape, chunks=(1, *images.shape[1:]), dtype="uint8",
        serializer=zarr_codec(lossless=True), compressors=None,
    )
    z[:] = images
    back = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    np.testing.assert_array_equal(back[:], images)
    lossy = zarr.create_array(
        store=str(tmp_path / "b.zarr"), shape=images.shape, chunks=(1, *images.shape[1:]), dtype="uint8",
        serializer=zarr_codec(quality=90), compressors=None,
    )
    lossy[:] = images
    err = np.abs(zarr.open_array(str(tmp_path / "b.zarr"), mode="r")[:].astype(int) - images)
    assert float(err.mean()) < 4.0
