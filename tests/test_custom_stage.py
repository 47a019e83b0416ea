"""A stage that exists only in this test module goes through every front door unchanged.

``ChannelShuffle`` permutes the four rotated latent channels (YUVW4) by a per-image key it stores in the stream
(the generic ``stage`` section); the library never imports this module. It is registered here
and used through ``compress(stages=...)`` -> bytes -> ``decompress``, ``vaerans info`` and
``vaerans eval`` with no edit to library files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from vaerans_ecs import api, cli
from vaerans_ecs.components import YUVW4, Component
from vaerans_ecs.core.stream import StreamContext
from vaerans_ecs.core.system import SYSTEMS, Mode, StageKind, System, register_system
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.models import ModelSpec


class ShuffleKey(Component):
    """The permutation the decoder must undo."""

    order: tuple[int, ...]


class ChannelShuffle(System):
    """YUVW4 -> YUVW4 with channels in an order chosen per image (stored in the stream)."""

    name: ClassVar[str] = "TestChannelShuffle"
    config_fields: ClassVar[tuple[str, ...]] = ("mode",)
    stage_kind: ClassVar[StageKind | None] = StageKind.CHANNEL

    def __init__(self, mode: Mode | str = Mode.FORWARD) -> None:
        self.mode = Mode(mode)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (YUVW4, ShuffleKey)

    def required_components(self) -> tuple[type[Component], ...]:
        return (YUVW4,) if self.mode is Mode.FORWARD else (YUVW4, ShuffleKey)

    def inverse(self) -> System:
        return ChannelShuffle(Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            z = world.view(world.get_component(eid, YUVW4).ref)
            if self.mode is Mode.FORWARD:
                order = tuple(int(i) for i in np.argsort(-z.reshape(4, -1).std(axis=1), kind="stable"))
                world.add_component(eid, ShuffleKey(order=order))
                out = z[list(order)]
            else:
                order = world.get_component(eid, ShuffleKey).order
                out = np.empty_like(z)
                out[list(order)] = z
            ref = world.alloc(out.shape, np.float32)
            world.view(ref)[...] = out
            world.add_component(eid, YUVW4(ref=ref))

    def stream_data(self, world: World, eid: int) -> bytes:
        return bytes(world.get_component(eid, ShuffleKey).order)

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        if data is None or sorted(data) != [0, 1, 2, 3]:
            raise BitstreamError("TestChannelShuffle: its key is not a permutation of 4 channels")
        world.add_component(eid, ShuffleKey(order=tuple(data)))

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        return {"stage": self.name, "order": list(data or b"")}


@pytest.fixture
def shuffle_stage() -> Iterator[None]:
    register_system(ChannelShuffle)
    yield
    SYSTEMS.remove(ChannelShuffle.name)


def _picture(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4) % 256, (y * 5) % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def test_round_trip_info_and_eval(shuffle_stage: None, synthetic_model: ModelSpec, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    img = _picture()
    data = api.compress(img, 60, synthetic_model.name, stages=[ChannelShuffle()])
    info = api.inspect(data)
    assert [s.name for s in info.pipeline] == ["OnnxVAEEncode", "Hadamard4", "TestChannelShuffle", "WaveletCDF53",
                                               "QuantizeU8", "ANSEncode"]
    order = next(s["order"] for s in info.stages[0] if s["stage"] == "TestChannelShuffle")
    assert sorted(order) == [0, 1, 2, 3]
    # the shuffle is exactly undone: same pixels as the plain pipeline with the same latent order
    plain = api.decompress(api.compress(img, 60, synthetic_model.name))
    out = api.decompress(data)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - plain.astype(int)).mean() < 3.0

    (tmp_path / "x.vae").write_bytes(data)
    assert cli.main(["info", "--json", str(tmp_path / "x.vae")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any(s["stage"] == "TestChannelShuffle" and s["order"] == order for s in doc[0]["layers"][0])

    Image.fromarray(img).save(tmp_path / "a.png")
    (tmp_path / "data").mkdir()
    Image.fromarray(img).save(tmp_path / "data" / "a.png")
    code = cli.main(["eval", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--codecs",
                     f"vaerans:model={synthetic_model.name}:stages=TestChannelShuffle", "--qualities", "40,80"])
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert len(results) == 2 and all(r["psnr"] > 10 for r in results)
    assert all("TestChannelShuffle" in r["encode_stages"] for r in results)


def test_unregistered_stage_is_named(shuffle_stage: None, synthetic_model: ModelSpec) -> None:
    data = api.compress(_picture(), 60, synthetic_model.name, stages=[ChannelShuffle()])
    SYSTEMS.remove(ChannelShuffle.name)
    try:
        with pytest.raises(BitstreamError, match="TestChannelShuffle"):
            api.decompress(data)
    finally:
        register_system(ChannelShuffle)


def test_forged_key_is_refused(shuffle_stage: None, synthetic_model: ModelSpec) -> None:
    world = World()
    eid = world.spawn_image(_picture())
    api.encode_entities(world, [eid], quality=60, model=synthetic_model.name, stages=[ChannelShuffle()])
    world.add_component(eid, ShuffleKey(order=(0, 0, 1, 2)))
    with pytest.raises(BitstreamError, match="permutation"):
        api.decompress(api.entity_to_bytes(world, eid))
