"""The quantizer systems: QuantizeU8 (WaveletPyr / YUVW4 / Latent4 -> SymbolsU8 + QuantParams) and Dequantize."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.latent import YUVW4, Latent4
from vaerans_ecs.components.quant import QuantParams, SymbolsU8
from vaerans_ecs.components.wavelet import Band, WaveletPyr
from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.core.batching import group_by_key, stacked_view
from vaerans_ecs.core.container import register_section
from vaerans_ecs.core.system import StageKind, System, register_bridge, register_system
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError
from vaerans_ecs.systems.quantize.kernels import BandParams, BandTable, decode_rows, encode_rows
from vaerans_ecs.systems.quantize.sideinfo import (
    base_step_of,
    make_params,
    pack_quant_params,
    params_anchors,
    unpack_quant_params,
)
from vaerans_ecs.systems.quantize.steps import (
    RECON_GRID,
    SOURCES,
    band_gains,
    check_band_weights,
    check_range,
    compose_steps,
    step_for_quality,
    weight_vector,
)

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import Geometry, StreamContext
    from vaerans_ecs.core.world import World

register_section(0x04, "quant", "QuantizeU8: per-band steps, zero points and offsets")

__all__ = ["Dequantize", "QuantizeU8"]

_SOURCE_TYPES: Final[dict[str, type[WaveletPyr] | type[YUVW4] | type[Latent4]]] = {
    "WaveletPyr": WaveletPyr,
    "YUVW4": YUVW4,
    "Latent4": Latent4,
}


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"QuantizeU8: {name} must be a positive finite number, got {value!r}")
    return float(value)


def _rows_view(world: World, refs: list[TensorRef], n: int) -> npt.NDArray[Any]:
    """All channels of ``refs`` as one (R, n) array, without a copy when they are adjacent."""
    stacked = stacked_view(world, refs)
    if stacked is None:
        stacked = np.stack([world.view(r) for r in refs])
    return stacked.reshape(-1, n)


def _layout(geom: Geometry) -> tuple[Band, ...]:
    """The bands a stream's geometry gives the quantizer: the wavelet's, or one plane band."""
    return geom.bands or (Band(name="LL0", level=0, h=geom.height, w=geom.width, offset=0),)


def _read_params(data: bytes | None, ctx: StreamContext) -> QuantParams:
    """The side information, checked against what the pipeline before the quantizer gives."""
    if data is None:
        raise BitstreamError("the stream lacks the quantizer's side information")
    params = unpack_quant_params(data, ctx.geometry.channels, _layout(ctx.geometry))
    if params.source != ctx.geometry.source:
        raise BitstreamError(
            f"the quantizer's side information says it read {params.source}, its pipeline gives {ctx.geometry.source}"
        )
    return params


@register_system
class QuantizeU8(System):
    """Per-band uint8 quantizer: WaveletPyr / YUVW4 / Latent4 -> SymbolsU8 + QuantParams."""

    name: ClassVar[str] = "QuantizeU8"
    #: Nothing: the stream's QuantParams side information carries all that decoding needs.
    stream_fields: ClassVar[tuple[str, ...] | None] = ()
    stream_code: ClassVar[int] = 5
    stage_kind: ClassVar[StageKind | None] = StageKind.QUANTIZER
    data_section: ClassVar[str] = "quant"
    data_required: ClassVar[bool] = True
    config_fields: ClassVar[tuple[str, ...]] = (
        "quality",
        "step",
        "step_min",
        "step_max",
        "band_weights",
        "recon_offsets",
    )

    def __init__(
        self,
        quality: float = 75.0,
        step: float | None = None,
        step_min: float = 0.05,
        step_max: float = 4.0,
        band_weights: Mapping[str, float] | None = None,
        recon_offsets: bool = True,
    ) -> None:
        self.step_min = _positive("step_min", step_min)
        self.step_max = _positive("step_max", step_max)
        check_range(self.step_min, self.step_max)
        if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 1.0 <= quality <= 100.0:
            raise ConfigError(f"QuantizeU8: quality must be a number in [1, 100], got {quality!r}")
        self.quality = float(quality)
        self.step = None if step is None else _positive("step", step)
        if self.step is not None and not np.float32(self.step) > 0:
            raise ConfigError(f"QuantizeU8: step {step!r} underflows float32")
        self.band_weights = check_band_weights(band_weights)
        if not isinstance(recon_offsets, bool):
            raise ConfigError(f"QuantizeU8: recon_offsets must be a bool, got {recon_offsets!r}")
        self.recon_offsets = recon_offsets

    @property
    def base_step(self) -> float:
        """The base step actually used (float32-rounded, as stored in the side information)."""
        step = self.step if self.step is not None else step_for_quality(self.quality, self.step_min, self.step_max)
        return float(np.float32(step))

    def input_choices(self) -> tuple[type[Component], ...]:
        return (WaveletPyr, YUVW4, Latent4)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (SymbolsU8, QuantParams)

    def inverse(self) -> System:
        return Dequantize(target=self.source.__name__ if self.source is not None else None)

    def stream_data(self, world: World, eid: int) -> bytes:
        params = world.get_component(eid, QuantParams)
        sym = world.get_component(eid, SymbolsU8)
        return pack_quant_params(params, sym.ref.shape[0], sym.bands, self.base_step, band_weights=self.band_weights)

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        world.add_component(eid, _read_params(data, ctx))

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        if geom.source not in SOURCES:
            raise BitstreamError(f"QuantizeU8 quantizes a latent or its wavelet bands, not {geom.source or 'pixels'}")
        return geom

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        params = _read_params(data, ctx)
        return {
            "stage": self.name,
            "step": base_step_of(data or b""),
            "wavelet": params.wavelet,
            "levels": params.levels,
            "dpcm_bands": sum(params.dpcm),
        }

    def _source_of(self, world: World, eid: int) -> type[WaveletPyr] | type[YUVW4] | type[Latent4]:
        if self.source is not None:
            return _SOURCE_TYPES[self.source.__name__]
        for kind in _SOURCE_TYPES.values():
            if world.has_component(eid, kind):
                return kind
        raise VaeransError(f"{self!r}: entity {eid} has none of WaveletPyr, YUVW4, Latent4")

    def run(self, world: World, eids: Sequence[int]) -> None:
        base = self.base_step
        items: list[tuple[str, TensorRef, int, int, tuple[Band, ...], str, int]] = []
        for eid in eids:
            kind = self._source_of(world, eid)
            comp = world.get_component(eid, kind)
            if isinstance(comp, WaveletPyr):
                items.append(("WaveletPyr", comp.ref, comp.height, comp.width, comp.bands, comp.wavelet, comp.levels))
            else:
                _, h, w = comp.ref.shape
                band = Band(name="LL0", level=0, h=h, w=w, offset=0)
                items.append((kind.__name__, comp.ref, h, w, (band,), "none", 0))
        keys = [(it[0], it[1].shape, it[1].dtype, it[2], it[3], it[4], it[5], it[6]) for it in items]
        for idx in group_by_key(keys).values():
            source, ref0, h, w, bands, wavelet, levels = items[idx[0]]
            c = ref0.shape[0]
            n = h * w
            gains = band_gains(bands, source, wavelet, levels, h, w)
            weights = weight_vector(bands, self.band_weights)
            x = _rows_view(world, [items[i][1] for i in idx], n)
            block = world.alloc((len(idx), c, n), np.uint8)
            out = world.view(block)
            table = BandTable(bands, base, weights, gains, self.recon_offsets)
            rows = encode_rows(x, table, out.reshape(-1, n))
            nb = len(bands)
            steps = compose_steps(base, weights, gains, rows.factors)
            for j, i in enumerate(idx):
                rs = slice(j * c, (j + 1) * c)
                dp = np.zeros((c, nb), dtype=bool)
                dp[:, 0] = rows.dpcm[rs]
                params = make_params(
                    steps[rs].ravel().tolist(),
                    rows.zeros[rs].ravel().tolist(),
                    dp.ravel().tolist(),
                    (rows.recon[rs] / RECON_GRID).ravel().tolist(),
                    rows.anchors[rs].ravel().tolist(),
                    source,
                    wavelet,
                    levels,
                )
                sym = SymbolsU8(ref=world.arena.subref(block, j), height=h, width=w, bands=bands)
                world.add_component(eids[i], sym)
                world.add_component(eids[i], params)


@register_system
class Dequantize(System):
    """SymbolsU8 + QuantParams -> the recorded source kind (WaveletPyr, YUVW4 or Latent4), float32.

    ``target`` (a component name) declares what a Pipe should expect after this system and is
    checked against each entity's QuantParams; ``None`` declares all three kinds, and each entity
    gets the kind recorded in its QuantParams.
    """

    name: ClassVar[str] = "Dequantize"
    config_fields: ClassVar[tuple[str, ...]] = ("target",)

    def __init__(self, target: str | None = None) -> None:
        if target is not None and target not in SOURCES:
            raise ConfigError(f"Dequantize: target must be one of {', '.join(SOURCES)} or None, got {target!r}")
        self.target = target

    def required_components(self) -> tuple[type[Component], ...]:
        return (SymbolsU8, QuantParams)

    def produced_components(self) -> tuple[type[Component], ...]:
        if self.target is None:
            return tuple(_SOURCE_TYPES.values())
        return (_SOURCE_TYPES[self.target],)

    def inverse(self) -> System:
        q = QuantizeU8()
        return q.with_source(_SOURCE_TYPES[self.target]) if self.target is not None else q

    def run(self, world: World, eids: Sequence[int]) -> None:
        syms = [world.get_component(e, SymbolsU8) for e in eids]
        params = [world.get_component(e, QuantParams) for e in eids]
        for eid, sym, par in zip(eids, syms, params, strict=True):
            if self.target is not None and par.source != self.target:
                raise VaeransError(f"{self!r}: entity {eid} was quantized from {par.source}")
            c = sym.ref.shape[0]
            if len(par.steps) != c * len(sym.bands):
                raise VaeransError(
                    f"entity {eid}: QuantParams has {len(par.steps)} bands, SymbolsU8 has "
                    f"{c} channels x {len(sym.bands)} bands"
                )
            if par.source != "WaveletPyr" and (len(sym.bands) != 1 or c != 4):
                raise VaeransError(f"entity {eid}: a {par.source} source needs 4 channels of one band")
        keys = [
            (p.source, p.wavelet, p.levels, s.ref.shape, s.height, s.width, s.bands)
            for s, p in zip(syms, params, strict=True)
        ]
        for idx in group_by_key(keys).values():
            sym0, par0 = syms[idx[0]], params[idx[0]]
            c, n = sym0.ref.shape
            nb = len(sym0.bands)
            h, w = sym0.height, sym0.width
            shape: tuple[int, ...] = (len(idx), c, n) if par0.source == "WaveletPyr" else (len(idx), c, h, w)
            block = world.alloc(shape, np.float32)
            out = world.view(block).reshape(-1, n)
            x = _rows_view(world, [syms[i].ref for i in idx], n)
            ps = [params[i] for i in idx]
            steps = np.array([p.steps for p in ps], dtype=np.float64).reshape(-1, nb)
            zeros = np.array([p.zeros for p in ps], dtype=np.int64).reshape(-1, nb)
            dpcm = np.array([p.dpcm for p in ps], dtype=bool).reshape(-1, nb)
            anchors = np.array([params_anchors(p) for p in ps], dtype=np.int64).reshape(-1, nb)
            recon = np.array([p.recon for p in ps], dtype=np.float64).reshape(-1, nb)
            decode_rows(x, sym0.bands, BandParams(steps, zeros, dpcm, anchors, recon), out)
            for j, i in enumerate(idx):
                ref = world.arena.subref(block, j)
                comp: Component
                if par0.source == "WaveletPyr":
                    comp = WaveletPyr(
                        ref=ref, height=h, width=w, wavelet=par0.wavelet, levels=par0.levels, bands=sym0.bands
                    )
                elif par0.source == "YUVW4":
                    comp = YUVW4(ref=ref)
                else:
                    comp = Latent4(ref=ref)
                world.add_component(eids[i], comp)


register_bridge(SymbolsU8, QuantizeU8)
