"""The entropy-coding systems: ANSEncode (SymbolsU8 + QuantParams -> ANSBitstream) and ANSDecode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.quant import ANSBitstream, QuantParams, SymbolsU8
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.container import register_section
from vaerans_ecs.core.stream import Geometry, geometry_check
from vaerans_ecs.core.system import StageKind, System, register_system
from vaerans_ecs.errors import BitstreamError, ComponentError, VaeransError
from vaerans_ecs.systems.entropy.coders import DEFAULT_CODER, Layout, get_coder

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import StreamContext
    from vaerans_ecs.core.world import World

register_section(0x05, "payload", "the entropy coder's payload (format owned by the coder)")

__all__ = ["ANSDecode", "ANSEncode"]


class _CoderStage(System):
    """What both stages share: a registered entropy coder chosen by name."""

    config_fields: ClassVar[tuple[str, ...]] = ("coder",)

    def __init__(self, coder: str = DEFAULT_CODER) -> None:
        self.coder = str(coder)
        self._impl = get_coder(self.coder)  # unknown names raise RegistryError here


@register_system
class ANSEncode(_CoderStage):
    """SymbolsU8 (+ QuantParams) -> ANSBitstream with a registered entropy coder (default ``"rans-ctx"``).

    Each entity is coded on its own; the bitstream records the coder name and the symbol layout.
    """

    name: ClassVar[str] = "ANSEncode"
    stream_code: ClassVar[int] = 6
    stage_kind: ClassVar[StageKind | None] = StageKind.CODER
    data_section: ClassVar[str] = "payload"
    data_required: ClassVar[bool] = True

    def stream_data(self, world: World, eid: int) -> bytes:
        """A geometry check byte (:func:`geometry_check`), then the coder's payload."""
        bits = world.get_component(eid, ANSBitstream)
        geom = Geometry(bits.channels, bits.height, bits.width, bits.bands)
        return bytes([geometry_check(geom)]) + bits.data

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        g = ctx.geometry
        if ctx.version >= 2:  # v1 payloads have no check byte
            if not data or data[0] != geometry_check(g):
                raise BitstreamError("the entropy payload was made for another image size (corrupted header)")
            data = data[1:]
        bands = g.bands or (Band(name="LL0", level=0, h=g.height, w=g.width, offset=0),)
        try:
            bits = ANSBitstream(
                data=data or b"", coder=self.coder, channels=g.channels, height=g.height, width=g.width, bands=bands
            )
        except VaeransError as exc:
            raise BitstreamError(f"inconsistent stream header: {exc}") from None
        world.add_component(eid, bits)

    def names_used(self) -> list[tuple[str, str, Any]]:
        return [("coders", self.coder, type(self._impl))]

    def required_components(self) -> tuple[type[Component], ...]:
        return (SymbolsU8, QuantParams)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (ANSBitstream,)

    def inverse(self) -> ANSDecode:
        return ANSDecode(coder=self.coder)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            sym = world.get_component(eid, SymbolsU8)
            params = world.get_component(eid, QuantParams)
            arr = world.view(sym.ref)
            channels = int(arr.shape[0])
            if len(params.steps) != channels * len(sym.bands):
                raise ComponentError(
                    f"ANSEncode: QuantParams has {len(params.steps)} bands, the symbols have "
                    f"{channels} channels x {len(sym.bands)} bands"
                )
            bands = [arr[c, b.offset : b.offset + b.size] for c in range(channels) for b in sym.bands]
            data = self._impl.encode_layout(bands, Layout(channels, sym.bands))
            world.add_component(
                eid,
                ANSBitstream(
                    data=data,
                    coder=self.coder,
                    channels=channels,
                    height=sym.height,
                    width=sym.width,
                    bands=sym.bands,
                ),
            )


@register_system
class ANSDecode(_CoderStage):
    """ANSBitstream -> SymbolsU8; malformed payloads raise BitstreamError."""

    name: ClassVar[str] = "ANSDecode"

    def required_components(self) -> tuple[type[Component], ...]:
        return (ANSBitstream,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (SymbolsU8,)

    def inverse(self) -> ANSEncode:
        return ANSEncode(coder=self.coder)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for eid in eids:
            bits = world.get_component(eid, ANSBitstream)
            if bits.coder != self.coder:
                raise BitstreamError(f"ANSDecode({self.coder!r}) got a payload made by coder {bits.coder!r}")
            decoded = self._impl.decode_layout(bits.data, Layout(bits.channels, bits.bands))
            ref = world.alloc((bits.channels, bits.height * bits.width), np.uint8)
            # ANSBitstream guarantees that the bands tile each channel in order (check_layout), so the
            # channel-major bands, concatenated, are the tensor itself (a fresh arena tensor is
            # C-contiguous, so the flat view below is the tensor's memory): one copy.
            np.concatenate(decoded, out=world.view(ref).reshape(-1))
            world.add_component(eid, SymbolsU8(ref=ref, height=bits.height, width=bits.width, bands=bits.bands))
