"""Batching helpers shared by the systems that process many entities in one numpy call.

A batched system groups its entities by a key (usually the tensor shape), processes each group as
one ``(N, ...)`` block, and reads its input without a gather copy when the tensors already lie back
to back in the arena. ``parse_mode`` validates the direction argument of the two-way systems.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.core.system import Mode
from vaerans_ecs.errors import ConfigError

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = ["group_by_key", "parse_mode", "stacked_view"]


def group_by_key(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Indices of ``keys`` grouped by equal key, groups in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


def stacked_view(world: World, refs: Sequence[TensorRef]) -> npt.NDArray[Any] | None:
    """One ``(N, *shape)`` view over ``refs`` when they lie back to back in one arena chunk.

    That is the case for tensors produced together by a batched system (sub-references of one
    block); it lets the next system process the batch in one numpy call without a gather copy.
    Returns ``None`` when the tensors are scattered.
    """
    first = refs[0]
    same = (first.arena_id, first.generation, first.chunk, first.shape, first.dtype)
    step = first.nbytes
    for j, ref in enumerate(refs):
        if (
            ref.arena_id,
            ref.generation,
            ref.chunk,
            ref.shape,
            ref.dtype,
        ) != same or ref.offset != first.offset + j * step:
            return None
    block = TensorRef(
        first.arena_id, first.generation, first.chunk, first.offset, (len(refs), *first.shape), first.dtype
    )
    return world.view(block)


def parse_mode(mode: Mode | str) -> Mode:
    """``Mode`` from a Mode or its string value; unknown values raise :class:`ConfigError`."""
    try:
        return Mode(mode)
    except ValueError:
        raise ConfigError(f"mode must be 'forward' or 'inverse', got {mode!r}") from None
