"""Orthonormal 4-point Hadamard rotation across the 4 latent channels.

``H4`` decorrelates the VAE latent channels: the first output channel is the (scaled) channel mean,
the other three are contrasts. ``H4`` is symmetric and orthonormal, hence its own inverse, so the
same function performs the forward and the inverse rotation and the quantisation error energy is
the same before and after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.latent import YUVW4, Latent4
from vaerans_ecs.core.batching import group_by_key, parse_mode, stacked_view
from vaerans_ecs.core.system import Mode, StageKind, System, register_system
from vaerans_ecs.errors import BitstreamError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import Geometry, StreamContext
    from vaerans_ecs.core.world import World

__all__ = ["H4", "Hadamard4", "hadamard4"]

#: Orthonormal 4x4 Hadamard matrix (symmetric, ``H4 @ H4 == I``).
H4: npt.NDArray[np.float32] = np.array(
    [
        [1, 1, 1, 1],
        [1, -1, 1, -1],
        [1, 1, -1, -1],
        [1, -1, -1, 1],
    ],
    dtype=np.float32,
) / np.float32(2.0)
H4.setflags(write=False)


def hadamard4(
    x: npt.ArrayLike,
    out: npt.NDArray[np.floating] | None = None,
) -> npt.NDArray[np.floating]:
    """Apply ``H4`` across the channel axis: ``out[c] = sum_k H4[c, k] * x[k]``.

    ``x`` is ``(4, h, w)`` or ``(N, 4, h, w)``; the channel axis is the one of length 4 right before
    the two spatial axes. Floating input keeps its dtype, anything else becomes float32. ``out``
    (same shape, a floating dtype) receives the result and may be ``x`` itself (in-place rotation).
    The rotation is a butterfly of 8 whole-plane additions and one scaling, no per-pixel loop.
    """
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if arr.ndim not in (3, 4) or arr.shape[-3] != 4:
        raise VaeransError(f"hadamard4 expects a (4, h, w) or (N, 4, h, w) array, got shape {arr.shape}")
    if out is None:
        out = np.empty(arr.shape, dtype=arr.dtype)
    elif out.shape != arr.shape or not np.issubdtype(out.dtype, np.floating):
        raise VaeransError(f"hadamard4: out has shape {out.shape} dtype {out.dtype}, expected {arr.shape} float")
    x0, x1, x2, x3 = (arr[..., k, :, :] for k in range(4))
    # First butterfly stage into fresh temporaries, so `out` may alias `x`.
    a = np.add(x0, x1)
    b = np.subtract(x0, x1)
    c = np.add(x2, x3)
    d = np.subtract(x2, x3)
    np.add(a, c, out=out[..., 0, :, :])
    np.add(b, d, out=out[..., 1, :, :])
    np.subtract(a, c, out=out[..., 2, :, :])
    np.subtract(b, d, out=out[..., 3, :, :])
    out *= out.dtype.type(0.5)
    return out


# ----------------------------------------------------------------------------------------------
# System
# ----------------------------------------------------------------------------------------------
@register_system
class Hadamard4(System):
    """Latent4 -> YUVW4 (``mode="forward"``) or YUVW4 -> Latent4 (``mode="inverse"``).

    The rotation is its own inverse; the mode only picks which component is read and which is
    written. Entities whose tensors have equal shapes share one output block in the arena.
    """

    name: ClassVar[str] = "Hadamard4"
    config_fields: ClassVar[tuple[str, ...]] = ("mode",)
    stream_code: ClassVar[int] = 2
    stage_kind: ClassVar[StageKind | None] = StageKind.CHANNEL

    def __init__(self, mode: Mode | str = Mode.FORWARD) -> None:
        self.mode = parse_mode(mode)

    def _io(self) -> tuple[type[Latent4] | type[YUVW4], type[Latent4] | type[YUVW4]]:
        return (Latent4, YUVW4) if self.mode is Mode.FORWARD else (YUVW4, Latent4)

    def required_components(self) -> tuple[type[Component], ...]:
        return (self._io()[0],)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (self._io()[1],)

    def inverse(self) -> Hadamard4:
        return Hadamard4(mode=self.mode.opposite)

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        if geom.channels != 4 or geom.source != "Latent4":
            raise BitstreamError(f"Hadamard4 rotates a 4-channel latent, the stream has {geom.channels} channels here")
        return replace(geom, source="YUVW4")

    def run(self, world: World, eids: Sequence[int]) -> None:
        src_type, dst_type = self._io()
        refs = [world.get_component(e, src_type).ref for e in eids]
        for idx in group_by_key([r.shape for r in refs]).values():
            group = [refs[i] for i in idx]
            block = world.alloc((len(idx), *group[0].shape), np.float32)
            out = world.view(block)
            inp = stacked_view(world, group)
            if inp is not None:
                hadamard4(inp, out=out)
            else:
                for j, ref in enumerate(group):
                    hadamard4(world.view(ref), out=out[j])
            for j, i in enumerate(idx):
                world.add_component(eids[i], dst_type(ref=world.arena.subref(block, j)))
