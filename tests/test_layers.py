"""Layered streams (a VAE base plus an enhancement layer) and the promise of exact modes on any machine.

A decoder whose base decodes differently (as another CPU, onnxruntime version or thread count may
make a float VAE) must return exact pixels or refuse: it is simulated by a VAE decoder that moves
some pixels of its output by one level.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from vaerans_ecs import api
from vaerans_ecs.components import ReconRGB
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.systems import OnnxVAEDecode


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([120 + 90 * np.sin(x / (5 + c) + c) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, the VAE decoder of another machine: every 7th pixel one level brighter."""
    original = OnnxVAEDecode.run

    def run(self: OnnxVAEDecode, world: World, eids: Sequence[int]) -> None:
        original(self, world, eids)
        for eid in eids:
            view = world.view(world.get_component(eid, ReconRGB).ref).reshape(-1)
            view[::7] = np.minimum(view[::7], 254) + 1

    monkeypatch.setattr(OnnxVAEDecode, "run", run)


@pytest.mark.parametrize("mode", [{"lossless": True}, {"max_error": 2}, {"quality": 90}])
def test_layered_round_trip_and_base_preview(synthetic_model: ModelSpec, mode: dict[str, object]) -> None:
    img = _photo()
    data = api.compress(img, model=synthetic_model.name, base_quality=40, **mode)  # type: ignore[arg-type]
    info = api.inspect(data)
    assert [[s["stage"] for s in layer] for layer in info.stages][1][0] == "Residual"
    assert len(info.stages) == 2 and info.stages[0][0]["stage"] == "OnnxVAEEncode"
    out = api.decompress(data)
    err = np.abs(out.astype(int) - img)
    if mode.get("lossless"):
        assert int(err.max()) == 0
    elif "max_error" in mode:
        assert int(err.max()) <= 2
    preview = api.decompress(data, layers=1)
    base_only = api.decompress(api.compress(img, 40, synthetic_model.name))
    np.testing.assert_array_equal(preview, base_only)  # the base layer is the plain base stream's image
    assert float(np.abs(preview.astype(int) - img).mean()) > float(err.mean())


@pytest.mark.parametrize("mode", [{"lossless": True}, {"max_error": 1}])
def test_exact_modes_refuse_a_base_that_decodes_differently(
    synthetic_model: ModelSpec, monkeypatch: pytest.MonkeyPatch, mode: dict[str, object]
) -> None:
    """Encoded here with the true base; decoded on a 'machine' whose VAE output differs by a level."""
    img = _photo()
    data = api.compress(img, model=synthetic_model.name, base_quality=40, **mode)  # type: ignore[arg-type]
    drift(monkeypatch)
    with pytest.raises(BitstreamError, match="base layer decodes differently"):
        api.decompress(data)
    assert api.decompress(data, layers=1).shape == img.shape  # the lossy base alone still decodes


def test_exact_streams_without_base_decode_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    img = _photo()
    data = api.compress(img, lossless=True)
    drift(monkeypatch)
    np.testing.assert_array_equal(api.decompress(data), img)


def test_lossy_layered_stream_drifts_only_within_lossy_bounds(
    synthetic_model: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = _photo()
    data = api.compress(img, 90, synthetic_model.name, base_quality=40)
    honest = api.decompress(data)
    drift(monkeypatch)
    assert int(np.abs(api.decompress(data).astype(int) - honest).max()) <= 1


def test_quality_rises_at_every_step() -> None:
    img = _photo(96, 128)
    psnrs = []
    for q in (1, 10, 25, 40, 55, 70, 85, 100):
        out = api.decompress(api.compress(img, q))
        psnrs.append(10 * np.log10(255.0**2 / np.mean((out.astype(float) - img) ** 2)))
    assert all(b > a for a, b in itertools.pairwise(psnrs)), psnrs
