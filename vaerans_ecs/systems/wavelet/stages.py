"""The wavelet stages: ``WaveletCDF53`` and ``WaveletHaar`` (YUVW4 <-> WaveletPyr), batched over entities.

They are registered under their wavelet names too (:func:`wavelet_stage`, :func:`wavelet_names`),
the one list of wavelet options the API, the configuration and the evaluation harness read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.latent import YUVW4
from vaerans_ecs.components.wavelet import WaveletPyr
from vaerans_ecs.core.batching import group_by_key, parse_mode, stacked_view
from vaerans_ecs.core.system import Mode, StageKind, System, register_system
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError
from vaerans_ecs.systems.wavelet.transform import MAX_LEVELS, band_layout, wavelet_forward, wavelet_inverse

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import Geometry, StreamContext
    from vaerans_ecs.core.world import World

__all__ = ["WaveletCDF53", "WaveletHaar", "wavelet_names", "wavelet_stage"]


#: Scattered (non-adjacent) inputs are gathered into one block for a single batched call when a
#: plane has at most this many pixels; above it the per-call overhead is negligible and a gather
#: copy would only cost time.
_GATHER_MAX_PIXELS = 128 * 128


class _WaveletSystem(System):
    """YUVW4 -> WaveletPyr (forward) or WaveletPyr -> YUVW4 (inverse); ``wavelet`` set by subclasses."""

    wavelet: ClassVar[str] = ""
    config_fields: ClassVar[tuple[str, ...]] = ("levels", "mode")
    stage_kind: ClassVar[StageKind | None] = StageKind.SPATIAL

    def __init__(self, levels: int = 3, mode: Mode | str = Mode.FORWARD) -> None:
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 0 <= levels <= MAX_LEVELS:
            raise ConfigError(f"{type(self).__name__}: levels must be an integer in 0..{MAX_LEVELS}, got {levels!r}")
        self.levels = int(levels)
        self.mode = parse_mode(mode)

    def required_components(self) -> tuple[type[Component], ...]:
        return (YUVW4,) if self.mode is Mode.FORWARD else (WaveletPyr,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (WaveletPyr,) if self.mode is Mode.FORWARD else (YUVW4,)

    def inverse(self) -> System:
        return type(self)(levels=self.levels, mode=self.mode.opposite)

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        if geom.source not in ("YUVW4", "Latent4") or geom.bands:
            raise BitstreamError(f"{self.name} transforms a latent, not this stream's {geom.source or 'pixels'}")
        return replace(geom, bands=band_layout(geom.height, geom.width, self.levels), source="WaveletPyr")

    def run(self, world: World, eids: Sequence[int]) -> None:
        if self.mode is Mode.FORWARD:
            self._run_forward(world, eids)
        else:
            self._run_inverse(world, eids)

    def _run_forward(self, world: World, eids: Sequence[int]) -> None:
        refs = [world.get_component(e, YUVW4).ref for e in eids]
        for idx in group_by_key([r.shape for r in refs]).values():
            group = [refs[i] for i in idx]
            c, h, w = group[0].shape
            n = len(idx)
            block = world.alloc((n, c, h * w), np.float32)
            out = world.view(block)
            inp = stacked_view(world, group)
            if inp is None and n > 1 and h * w <= _GATHER_MAX_PIXELS:
                inp = np.stack([world.view(r) for r in group])
            if inp is not None:
                wavelet_forward(inp.reshape(n * c, h, w), self.wavelet, self.levels, out=out.reshape(n * c, h * w))
            else:
                for j, ref in enumerate(group):
                    wavelet_forward(world.view(ref), self.wavelet, self.levels, out=out[j])
            bands = band_layout(h, w, self.levels)
            for j, i in enumerate(idx):
                pyr = WaveletPyr(
                    ref=world.arena.subref(block, j),
                    height=h,
                    width=w,
                    wavelet=self.wavelet,
                    levels=self.levels,
                    bands=bands,
                )
                world.add_component(eids[i], pyr)

    def _run_inverse(self, world: World, eids: Sequence[int]) -> None:
        pyrs = [world.get_component(e, WaveletPyr) for e in eids]
        for eid, pyr in zip(eids, pyrs, strict=True):
            if pyr.wavelet != self.wavelet or pyr.levels != self.levels:
                raise VaeransError(
                    f"{self!r} cannot invert entity {eid}: its WaveletPyr was made by "
                    f"wavelet={pyr.wavelet!r}, levels={pyr.levels}"
                )
        keys = [(p.height, p.width, p.ref.shape, p.ref.dtype) for p in pyrs]
        for idx in group_by_key(keys).values():
            group = [pyrs[i].ref for i in idx]
            h, w = pyrs[idx[0]].height, pyrs[idx[0]].width
            c = group[0].shape[0]
            n = len(idx)
            integer = bool(np.issubdtype(np.dtype(group[0].dtype), np.integer))
            block = world.alloc((n, c, h, w), np.float32)
            out = world.view(block)
            inp = stacked_view(world, group)
            if inp is None and n > 1 and h * w <= _GATHER_MAX_PIXELS:
                inp = np.stack([world.view(r) for r in group])
            if inp is not None:
                flat = inp.reshape(n * c, h * w)
                if integer:  # reversible 5/3 coefficients: exact int32 inverse, then float32
                    out.reshape(n * c, h, w)[...] = wavelet_inverse(flat, h, w, self.wavelet, self.levels)
                else:
                    wavelet_inverse(flat, h, w, self.wavelet, self.levels, out=out.reshape(n * c, h, w))
            else:
                for j, ref in enumerate(group):
                    if integer:
                        out[j] = wavelet_inverse(world.view(ref), h, w, self.wavelet, self.levels)
                    else:
                        wavelet_inverse(world.view(ref), h, w, self.wavelet, self.levels, out=out[j])
            for j, i in enumerate(idx):
                world.add_component(eids[i], YUVW4(ref=world.arena.subref(block, j)))


_STAGES: dict[str, type[_WaveletSystem]] = {}


def _wavelet_system(cls: type[_WaveletSystem]) -> type[_WaveletSystem]:
    register_system(cls)
    _STAGES[cls.wavelet] = cls
    return cls


def wavelet_names() -> tuple[str, ...]:
    """The wavelet options a pipeline accepts: every registered wavelet stage, and "none"."""
    return (*_STAGES, "none")


def wavelet_stage(wavelet: str) -> type[_WaveletSystem]:
    """The stage class of wavelet ``wavelet`` (see :func:`wavelet_names`)."""
    try:
        return _STAGES[wavelet]
    except KeyError:
        raise ConfigError(f"unknown wavelet {wavelet!r}; use one of {', '.join(wavelet_names())}") from None


@_wavelet_system
class WaveletCDF53(_WaveletSystem):
    """LeGall/CDF 5/3 (JPEG 2000 filters, float): YUVW4 <-> WaveletPyr, ``levels`` decompositions."""

    name: ClassVar[str] = "WaveletCDF53"
    wavelet: ClassVar[str] = "cdf53"
    stream_code: ClassVar[int] = 3


@_wavelet_system
class WaveletHaar(_WaveletSystem):
    """Orthonormal Haar: YUVW4 <-> WaveletPyr, ``levels`` decompositions."""

    name: ClassVar[str] = "WaveletHaar"
    wavelet: ClassVar[str] = "haar"
    stream_code: ClassVar[int] = 4
