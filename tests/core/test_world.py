"""World: spawning images and batches, component CRUD, queries, clear()."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.toys import Counter
from vaerans_ecs.components import RGB, Latent4
from vaerans_ecs.core import World
from vaerans_ecs.errors import ImageInputError, MissingComponentError, StaleReferenceError


def test_spawn_image_copies_into_arena(world: World) -> None:
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    eid = world.spawn_image(img)
    view = world.view(world.get_component(eid, RGB).ref)
    np.testing.assert_array_equal(view, img)
    assert not np.shares_memory(view, img)


def test_spawn_image_accepts_pil(world: World) -> None:
    from PIL import Image

    pil = Image.new("L", (4, 3), color=9)
    eid = world.spawn_image(pil)
    view = world.view(world.get_component(eid, RGB).ref)
    assert view.shape == (3, 4, 3) and (view == 9).all()


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8), [1, 2, 3], "x.png"],
)
def test_spawn_image_rejects_clearly(world: World, bad: object) -> None:
    with pytest.raises(ImageInputError, match="HxWx3 uint8"):
        world.spawn_image(bad)


def test_batch_images_share_one_block(world: World) -> None:
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    imgs.insert(1, rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    eids = world.spawn_batch_images(imgs)
    refs = [world.get_component(e, RGB).ref for e in eids]
    for ref, img in zip(refs, imgs, strict=True):
        np.testing.assert_array_equal(world.view(ref), img)
    same = [refs[0], refs[2], refs[3]]
    assert len({r.chunk for r in same}) == 1
    offsets = sorted(r.offset for r in same)
    assert offsets[1] - offsets[0] == offsets[2] - offsets[1] == 6 * 8 * 3  # contiguous block


def test_component_crud_and_query(world: World) -> None:
    a = world.spawn(Counter(value=1))
    b = world.spawn(Counter(value=2), Latent4(ref=world.alloc((4, 2, 2), np.float32)))
    c = world.spawn()
    assert world.has_component(a, Counter) and not world.has_component(a, Latent4)
    assert [e for e, _ in world.query(Counter)] == [a, b]
    assert [(e, cs[0].value) for e, cs in world.query(Counter, Latent4)] == [(b, 2)]
    assert list(world.query()) == []
    world.add_component(a, Counter(value=5))
    assert world.get_component(a, Counter).value == 5
    world.remove_component(b, Latent4)
    assert list(world.query(Latent4)) == []
    with pytest.raises(MissingComponentError, match="has no Latent4"):
        world.get_component(b, Latent4)
    with pytest.raises(MissingComponentError):
        world.remove_component(b, Latent4)
    world.destroy_entity(c)
    assert world.entities == [a, b]
    with pytest.raises(MissingComponentError, match="does not exist"):
        world.get_component(c, Counter)
    assert not world.has_component(c, Counter)


def test_clear_resets_everything(world: World) -> None:
    eid = world.spawn_image(np.zeros((2, 2, 3), np.uint8))
    ref = world.get_component(eid, RGB).ref
    world.clear()
    assert world.entities == [] and list(world.query(RGB)) == []
    with pytest.raises(StaleReferenceError):
        world.view(ref)
    eid2 = world.spawn_image(np.ones((2, 2, 3), np.uint8))
    assert eid2 != eid  # ids are never reused
    assert world.view(world.get_component(eid2, RGB).ref).sum() == 12


def test_exhaustion_mid_pipeline_then_clear() -> None:
    """Arena exhaustion leaves the World usable after clear()."""
    from vaerans_ecs.core.arena import Arena
    from vaerans_ecs.errors import ArenaExhaustedError

    world = World(Arena(4096, max_capacity=8192))
    world.spawn_image(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ArenaExhaustedError):
        world.spawn_image(np.zeros((60, 60, 3), np.uint8))
    world.clear()
    eid = world.spawn_image(np.full((30, 30, 3), 3, np.uint8))
    assert int(world.view(world.get_component(eid, RGB).ref).max()) == 3


def test_add_component_rejects_non_components(world: World) -> None:
    eid = world.spawn()
    with pytest.raises(MissingComponentError, match="expects a Component"):
        world.add_component(eid, 3)  # type: ignore[arg-type]
