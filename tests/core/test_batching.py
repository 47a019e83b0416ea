"""Batching helpers: grouping by key, zero-copy stacked views, mode parsing."""

from __future__ import annotations

import numpy as np
import pytest

from vaerans_ecs.core import Mode, World
from vaerans_ecs.core.batching import group_by_key, parse_mode, stacked_view
from vaerans_ecs.errors import ConfigError


def test_group_by_key_keeps_first_appearance_order() -> None:
    assert group_by_key(["b", "a", "b", "c", "a"]) == {"b": [0, 2], "a": [1, 4], "c": [3]}
    assert list(group_by_key([(2, 3), (1, 1), (2, 3)])) == [(2, 3), (1, 1)]


def test_stacked_view_shares_memory_with_a_block(world: World) -> None:
    block = world.alloc((3, 2, 4), np.float32)
    world.view(block)[...] = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    refs = [world.arena.subref(block, j) for j in range(3)]
    view = stacked_view(world, refs)
    assert view is not None and view.shape == (3, 2, 4)
    assert np.shares_memory(view, world.view(block))
    np.testing.assert_array_equal(view, world.view(block))


def test_stacked_view_refuses_gaps_and_order(world: World) -> None:
    block = world.alloc((3, 2, 4), np.float32)
    refs = [world.arena.subref(block, j) for j in range(3)]
    assert stacked_view(world, [refs[0], refs[2]]) is None
    assert stacked_view(world, [refs[1], refs[0]]) is None
    other = world.alloc((4, 2), np.float32)
    assert stacked_view(world, [refs[0], other]) is None


def test_parse_mode() -> None:
    assert parse_mode("inverse") is Mode.INVERSE
    assert parse_mode(Mode.FORWARD) is Mode.FORWARD
    with pytest.raises(ConfigError):
        parse_mode("sideways")
