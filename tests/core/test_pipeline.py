"""Pipe: `|` and `.to` equivalence, static checks before running, select/use, bridges, out()."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest

from tests.core.toys import AddOne, Counter, FakeEncode, Rotate, Tally
from vaerans_ecs.components import RGB, YUVW4, Component, Latent4
from vaerans_ecs.core import World
from vaerans_ecs.core.system import BRIDGES, System, register_bridge
from vaerans_ecs.errors import MissingComponentError, VaeransError


def test_or_and_to_are_equivalent(world: World) -> None:
    a, b = world.spawn(Counter(value=0)), world.spawn(Counter(value=0))
    got_or = (world.pipe(a) | AddOne(2) | AddOne(3)).out(Counter).value
    got_to = world.pipe(b).to(AddOne(2)).to(AddOne(3)).out(Counter).value
    assert got_or == got_to == 5
    assert world.history(a) == world.history(b) == [AddOne(2), AddOne(3)]


def test_pipe_is_lazy_and_runs_once(world: World) -> None:
    e = world.spawn(Counter(value=0))
    pipe = world.pipe(e) | AddOne()
    assert world.get_component(e, Counter).value == 0  # nothing ran yet
    pipe.run()
    pipe.run()
    assert pipe.out(Counter).value == 1
    longer = pipe | AddOne()  # a new pipe; the old one is unchanged
    assert longer.out(Counter).value == 3  # re-runs the whole plan of the new pipe


def test_missing_inputs_fail_before_running_anything(world: World) -> None:
    e = world.spawn(Counter(value=0))
    with pytest.raises(MissingComponentError) as info:
        world.pipe(e) | AddOne() | Rotate()
    msg = str(info.value)
    assert "Rotate" in msg and "Latent4" in msg and "available: Counter" in msg
    assert world.get_component(e, Counter).value == 0


def test_batch_runs_in_one_call(world: World) -> None:
    calls: list[int] = []

    class Spy(AddOne):
        def run(self, world: World, eids: Sequence[int]) -> None:
            calls.append(len(eids))
            super().run(world, eids)

    eids = [world.spawn(Counter(value=i)) for i in range(5)]
    pipe = world.pipe(eids) | Spy()
    assert [c.value for c in pipe.outs(Counter)] == [1, 2, 3, 4, 5]
    assert calls == [5]
    with pytest.raises(VaeransError, match="exactly one"):
        pipe.out(Counter)


def test_chain_through_produced_components(world: World) -> None:
    e = world.spawn_image(np.zeros((16, 24, 3), np.uint8))
    yuvw = (world.pipe(e) | FakeEncode() | Rotate()).out(YUVW4)
    assert yuvw.ref.shape == (4, 2, 3)
    assert float(world.view(yuvw.ref).max()) == 2.0


def test_select_branches_on_component(world: World) -> None:
    img = world.spawn_image(np.zeros((8, 8, 3), np.uint8))
    lat = world.spawn(Latent4(ref=world.alloc((4, 1, 1), np.float32)))
    world.view(world.get_component(lat, Latent4).ref)[...] = 3.0
    pipe = world.pipe([img, lat]).select(Latent4) | Rotate()
    assert pipe.active == (lat,)
    pipe.run()
    assert world.has_component(lat, YUVW4) and not world.has_component(img, YUVW4)
    # a component planned earlier in the chain keeps every entity selected
    both = world.pipe([img, lat]).select(RGB) | FakeEncode()
    assert both.select(Latent4).active == (img,)


def test_use_picks_the_input(world: World) -> None:
    e = world.spawn_image(np.zeros((8, 8, 3), np.uint8))
    base = world.pipe(e) | FakeEncode() | Rotate()
    assert (base | Tally()).out(Counter).value == 8  # prefers YUVW4 (2.0 * 4 values)
    assert (base.use(Latent4) | Tally()).out(Counter).value == 4  # Latent4 (1.0 * 4 values)
    with pytest.raises(VaeransError, match="cannot read RGB"):
        base.use(RGB) | Tally()
    with pytest.raises(VaeransError, match="no alternative inputs"):
        base.use(Latent4) | AddOne()
    with pytest.raises(MissingComponentError, match="any of"):
        world.pipe(world.spawn()) | Tally()


def test_bridge_inserts_default_producer(world: World, caplog: pytest.LogCaptureFixture) -> None:
    class NeedsYUVW(System):
        name = "test.needs_yuvw"

        def required_components(self) -> tuple[type[Component], ...]:
            return (YUVW4,)

        def produced_components(self) -> tuple[type[Component], ...]:
            return (Counter,)

        def run(self, world: World, eids: Sequence[int]) -> None:
            for e in eids:
                world.add_component(e, Counter(value=7))

    e = world.spawn_image(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MissingComponentError):
        world.pipe(e) | FakeEncode() | NeedsYUVW()
    register_bridge(YUVW4, Rotate)
    try:
        with caplog.at_level(logging.INFO, logger="vaerans_ecs.core.pipeline"):
            pipe = world.pipe(e) | FakeEncode() | NeedsYUVW()
        assert "inserting default Rotate()" in caplog.text
        assert pipe.out(Counter).value == 7
        assert [type(s) for s in world.history(e)] == [FakeEncode, Rotate, NeedsYUVW]
    finally:
        BRIDGES.remove("YUVW4")


def test_runtime_recheck(world: World) -> None:
    e = world.spawn(Counter(value=0))
    pipe = world.pipe(e) | AddOne()
    world.remove_component(e, Counter)
    with pytest.raises(MissingComponentError, match="on entity"):
        pipe.run()


def test_pipe_rejects_non_system_and_unknown_entity(world: World) -> None:
    with pytest.raises(VaeransError, match="System instance"):
        world.pipe(world.spawn()) | AddOne  # type: ignore[operator]
    with pytest.raises(MissingComponentError):
        world.pipe(12345)
