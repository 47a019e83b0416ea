"""Entropy-coding stage: bands of uint8 quantizer symbols <-> one compact payload.

Coders are registered by name (:func:`register_coder`, :func:`get_coder`, :func:`coder_names`):

``"rans"``
    rANS (constriction's ``AnsCoder``) with the cheapest of several compact models per band and
    all side information coded in the same stream (see :mod:`vaerans_ecs.systems._tables`).
``"rans-ctx"`` (default, :data:`DEFAULT_CODER`)
    rANS with the same models, applied per band to groups of coefficients sorted by a context
    computed from the bands already decoded (:mod:`vaerans_ecs.systems._context`): about 7 %
    fewer bits than ``"rans"`` on VAE latents. It needs the bands' 2-D layout, which
    :class:`ANSEncode` / :class:`ANSDecode` pass on (:meth:`EntropyCoder.encode_layout`);
    without one every band is a single group.
``"range"``
    The same models and stream plan as ``"rans"`` with constriction's range coder (FIFO).
``"zlib"``, ``"lzma"``
    Stdlib baselines over the concatenated bands.

Systems: :class:`ANSEncode` (SymbolsU8 + QuantParams -> ANSBitstream) and :class:`ANSDecode`
(ANSBitstream -> SymbolsU8), bands taken channel-major (channel 0's bands in layout order, then
channel 1's, ...), the same order as QuantParams.

Payload of the table coders: the coder's 32-bit words, little-endian, with up to three trailing
zero bytes of the last word dropped (the decoder restores them and rejects non-canonical
lengths). The payload length is the word count, so the payload must be stored with its exact
length. The last symbol decoded is a 20-bit CRC of the band sizes and all symbols (it fills the
coder's initial state, so it costs about nothing); with the requirement that the coder ends
exactly empty it catches wrong sizes, truncation and corruption. All bands empty -> empty
payload. There is no version field inside the payload: a format change needs a new coder name.
"""

from __future__ import annotations

import lzma
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import constriction
import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.quant import ANSBitstream, QuantParams, SymbolsU8
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.core.system import System, register_system
from vaerans_ecs.errors import BitstreamError, ComponentError, VaeransError
from vaerans_ecs.systems import _context, _tables

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = [
    "ANSDecode",
    "ANSEncode",
    "ContextRansCoder",
    "DEFAULT_CODER",
    "Layout",
    "MAX_BANDS",
    "MAX_SYMBOLS",
    "EntropyCoder",
    "LzmaCoder",
    "RangeCoder",
    "RansCoder",
    "ZlibCoder",
    "coder_names",
    "empirical_entropy_bound_bytes",
    "get_coder",
    "register_coder",
]

#: The coder of :class:`ANSEncode` and of ``compress`` unless configured otherwise.
DEFAULT_CODER: Final = "rans-ctx"

#: Upper bounds the decoders enforce on the caller's ``sizes`` before allocating anything.
MAX_BANDS: Final = 1 << 16
MAX_SYMBOLS: Final = 1 << 28

U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class Layout:
    """Geometry of the bands a coder is given: ``channels`` x ``bands``, channel-major."""

    channels: int
    bands: tuple[Band, ...]

    @property
    def sizes(self) -> list[int]:
        """Band sizes in coding order (channel 0's bands, then channel 1's, ...)."""
        return [b.size for _ in range(self.channels) for b in self.bands]


class EntropyCoder(ABC):
    """Lossless coder of a list of uint8 bands; the decoder is told the band sizes."""

    name: ClassVar[str]

    @abstractmethod
    def encode(self, bands: Sequence[NDArray[np.uint8]]) -> bytes:
        """Encode 1-D uint8 bands (any may be empty) to a self-checking payload."""

    @abstractmethod
    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
        """Decode a payload into bands of the given sizes; malformed data raises BitstreamError."""

    def encode_layout(self, bands: Sequence[NDArray[np.uint8]], layout: Layout) -> bytes:
        """Encode bands that tile ``layout``; coders that model 2-D context override this."""
        return self.encode(bands)

    def decode_layout(self, data: bytes, layout: Layout) -> list[NDArray[np.uint8]]:
        """Decode what :meth:`encode_layout` wrote for the same ``layout``."""
        return self.decode(data, layout.sizes)


_CODERS: Final[Registry[type[EntropyCoder]]] = Registry("entropy coder")

C = TypeVar("C", bound=type[EntropyCoder])


def register_coder(cls: C) -> C:
    """Class decorator registering an :class:`EntropyCoder` subclass under ``cls.name``."""
    _CODERS.add(cls.name, cls)
    return cls


def get_coder(name: str) -> EntropyCoder:
    """A coder instance by name; unknown names raise RegistryError listing the known ones."""
    return _CODERS.get(name)()


def coder_names() -> list[str]:
    """Registered coder names, sorted."""
    return _CODERS.names()


def empirical_entropy_bound_bytes(bands: Sequence[NDArray[np.uint8]]) -> float:
    """Sum over bands of ``n * H(band) / 8``: the per-band order-0 empirical entropy in bytes."""
    total = 0.0
    for b in bands:
        arr = np.asarray(b)
        if arr.size == 0:
            continue
        c = np.bincount(arr.ravel(), minlength=256)
        c = c[c > 0].astype(np.float64)
        n = float(arr.size)
        total += float(-(c * np.log2(c / n)).sum())
    return total / 8.0


# ----------------------------------------------------------------------------- validation


def _check_bands(bands: Sequence[NDArray[np.uint8]]) -> list[U8]:
    out: list[U8] = []
    for i, b in enumerate(bands):
        if not isinstance(b, np.ndarray) or b.dtype != np.uint8 or b.ndim != 1:
            what = f"{type(b).__name__}" if not isinstance(b, np.ndarray) else f"{b.dtype} {b.ndim}-d array"
            raise VaeransError(f"entropy coder: band {i} must be a 1-D uint8 array, got {what}")
        out.append(np.ascontiguousarray(b))
    if len(out) > MAX_BANDS or sum(b.size for b in out) > MAX_SYMBOLS:
        raise VaeransError(f"entropy coder: at most {MAX_BANDS} bands and {MAX_SYMBOLS} symbols")
    return out


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    try:
        out = [int(s) for s in sizes]
        ok = all(int(s) == s for s in sizes)
    except (TypeError, ValueError, OverflowError):
        ok = False
        out = []
    if not ok or any(s < 0 for s in out):
        raise BitstreamError("entropy payload: band sizes must be non-negative integers")
    if len(out) > MAX_BANDS or sum(out) > MAX_SYMBOLS:
        raise BitstreamError(f"entropy payload: at most {MAX_BANDS} bands and {MAX_SYMBOLS} symbols")
    return out


def _words_to_bytes(words: NDArray[np.uint32]) -> bytes:
    raw = words.astype("<u4").tobytes()
    keep = max(len(raw.rstrip(b"\0")), len(raw) - 3)
    return raw[:keep]


def _bytes_to_words(data: bytes) -> NDArray[np.uint32]:
    pad = (-len(data)) % 4
    words = np.frombuffer(bytes(data) + b"\0" * pad, dtype="<u4").astype(np.uint32)
    if len(_words_to_bytes(words)) != len(data):
        raise BitstreamError("entropy payload: non-canonical length (extra trailing bytes)")
    return words


# ----------------------------------------------------------------------------- table coders


class _TableCoder(EntropyCoder):
    """Shared plumbing of the coders driven by :mod:`_tables` (models chosen per band)."""

    @abstractmethod
    def _encode_chunks(self, chunks: list[_tables.Chunk]) -> NDArray[np.uint32]: ...

    @abstractmethod
    def _decoder(self, words: NDArray[np.uint32]) -> tuple[Callable[[Any, int], NDArray[np.int32]], Callable[[], bool]]:
        """(decode(model, amount), finished()) over the words."""

    def _plan(self, bands: list[U8], layout: Layout | None) -> list[_tables.Chunk]:
        """The stream's chunks in decode order."""
        return _tables.encode_chunks(bands)

    def _unplan(self, decode: _tables.Decode, sizes: list[int], layout: Layout | None) -> list[U8]:
        """Decode what :meth:`_plan` wrote."""
        return _tables.decode_plan(decode, sizes)

    def encode(self, bands: Sequence[NDArray[np.uint8]]) -> bytes:
        return self._encode(bands, None)

    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
        return self._decode(data, sizes, None)

    def encode_layout(self, bands: Sequence[NDArray[np.uint8]], layout: Layout) -> bytes:
        return self._encode(bands, layout)

    def decode_layout(self, data: bytes, layout: Layout) -> list[NDArray[np.uint8]]:
        return self._decode(data, layout.sizes, layout)

    def _encode(self, bands: Sequence[NDArray[np.uint8]], layout: Layout | None) -> bytes:
        checked = _check_bands(bands)
        if layout is not None and [b.size for b in checked] != layout.sizes:
            raise VaeransError(f"entropy coder: the bands do not tile the layout ({len(checked)} bands given)")
        chunks = self._plan(checked, layout)
        if not chunks:
            return b""
        return _words_to_bytes(self._encode_chunks(chunks))

    def _decode(self, data: bytes, sizes: Sequence[int], layout: Layout | None) -> list[NDArray[np.uint8]]:
        checked = _check_sizes(sizes)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BitstreamError(f"entropy payload must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if sum(checked) == 0:
            if data:
                raise BitstreamError("entropy payload: data present but all bands are empty")
            return [np.empty(0, dtype=np.uint8) for _ in checked]
        if not data:
            raise BitstreamError("entropy payload: empty")
        words = _bytes_to_words(data)
        try:
            decode, finished = self._decoder(words)
            bands = self._unplan(decode, checked, layout)
            done = finished()
        except BitstreamError:
            raise
        except Exception as exc:  # constriction reports malformed data as ValueError & co.
            raise BitstreamError(f"entropy payload: corrupted ({exc})") from None
        if not done:
            raise BitstreamError("entropy payload: trailing data after the last symbol")
        return bands


def _as_words(x: Any) -> NDArray[np.uint32]:
    return np.asarray(x, dtype=np.uint32)


@register_coder
class RansCoder(_TableCoder):
    """rANS (constriction ``AnsCoder``, a stack: chunks are pushed in reverse decode order)."""

    name: ClassVar[str] = "rans"

    def _encode_chunks(self, chunks: list[_tables.Chunk]) -> NDArray[np.uint32]:
        coder = constriction.stream.stack.AnsCoder()
        for c in reversed(chunks):
            coder.encode_reverse(c.symbols, c.model)
        return _as_words(coder.get_compressed())

    def _decoder(self, words: NDArray[np.uint32]) -> tuple[Callable[[Any, int], NDArray[np.int32]], Callable[[], bool]]:
        coder = constriction.stream.stack.AnsCoder(words)

        def decode(model: Any, amount: int) -> NDArray[np.int32]:
            return np.asarray(coder.decode(model, amount), dtype=np.int32)

        return decode, lambda: bool(coder.is_empty())


@register_coder
class ContextRansCoder(RansCoder):
    """rANS over context groups: each detail band is split by :class:`_context.ContextModel` into
    classes of similar local activity, and each band's groups are coded with :mod:`_tables` models.

    Payload: per band in decode order, where the context splits it into two or more classes, a
    flag (model :data:`SPLIT_FLAG`) saying whether the encoder did split it (it does when the
    groups' estimated cost, side information included, is lower); then the ``_tables`` plan of
    its groups (class 0 first) or of the whole band, without a check value. Last, one check value
    over all band sizes and symbols (in band order). Without a layout every band is one group.
    """

    name: ClassVar[str] = "rans-ctx"
    #: Model of the per-band split flag (1 = split), part of the format: splitting is the rule.
    SPLIT_FLAG: ClassVar[Any] = _tables.categorical(np.array([1.0, 3.0]))

    @staticmethod
    def _walk(sizes: list[int], layout: Layout | None) -> tuple[_context.ContextModel | None, list[tuple[int, int]]]:
        """The context model (None without a layout) and (channel, band index) per band."""
        if layout is None:
            return None, [(0, i) for i in range(len(sizes))]
        nb = len(layout.bands)
        return _context.ContextModel(layout.bands), [(k // nb, k % nb) for k in range(len(sizes))]

    def _plan(self, bands: list[U8], layout: Layout | None) -> list[_tables.Chunk]:
        sizes = [b.size for b in bands]
        if sum(sizes) == 0:
            return []
        model, order = self._walk(sizes, layout)
        items: list[list[list[U8]]] = []  # per band: [whole band] or [whole band, its groups]
        for band, (c, i) in zip(bands, order, strict=True):
            cls = model.classes(c, i) if model is not None else None
            items.append([[band]])
            if cls is not None:
                perm = np.argsort(cls, kind="stable")
                ends = np.cumsum(np.bincount(cls, minlength=_context.N_CLASSES))[:-1]
                items[-1].append(np.split(band[perm], ends))
            if model is not None:
                model.record(c, i, band)
        chunks: list[_tables.Chunk] = []
        for options, (split, plan) in zip(items, _tables.cheapest_plans(items), strict=True):
            if len(options) > 1:
                chunks.append(_tables.Chunk(np.array([split], dtype=np.int32), self.SPLIT_FLAG))
            chunks += plan
        chunks.append(_tables.canary_chunk(sizes, np.concatenate(bands)))
        return chunks

    def _unplan(self, decode: _tables.Decode, sizes: list[int], layout: Layout | None) -> list[U8]:
        out = np.empty(sum(sizes), dtype=np.uint8)
        starts = np.cumsum([0, *sizes]).tolist()
        bands = [out[starts[k] : starts[k + 1]] for k in range(len(sizes))]
        model, order = self._walk(sizes, layout)
        for band, (c, i) in zip(bands, order, strict=True):
            cls = model.classes(c, i) if model is not None else None
            if cls is None or not decode(self.SPLIT_FLAG, 1)[0]:
                band[:] = np.concatenate(_tables.decode_plan(decode, [band.size], check=False))
            else:
                counts = np.bincount(cls, minlength=_context.N_CLASSES).tolist()
                band[np.argsort(cls, kind="stable")] = np.concatenate(_tables.decode_plan(decode, counts, check=False))
            if model is not None:
                model.record(c, i, band)
        _tables.check_canary(decode, sizes, out)
        return bands


@register_coder
class RangeCoder(_TableCoder):
    """Range coding (constriction ``RangeEncoder``/``RangeDecoder``, a queue) with the same models."""

    name: ClassVar[str] = "range"

    def _encode_chunks(self, chunks: list[_tables.Chunk]) -> NDArray[np.uint32]:
        coder = constriction.stream.queue.RangeEncoder()
        for c in chunks:
            coder.encode(c.symbols, c.model)
        return _as_words(coder.get_compressed())

    def _decoder(self, words: NDArray[np.uint32]) -> tuple[Callable[[Any, int], NDArray[np.int32]], Callable[[], bool]]:
        coder = constriction.stream.queue.RangeDecoder(words)

        def decode(model: Any, amount: int) -> NDArray[np.int32]:
            return np.asarray(coder.decode(model, amount), dtype=np.int32)

        return decode, lambda: bool(coder.maybe_exhausted())


# ----------------------------------------------------------------------------- stdlib baselines


def _sizes_check(sizes: Sequence[int]) -> bytes:
    return zlib.crc32(np.asarray(sizes, dtype="<u8").tobytes()).to_bytes(4, "little")


class _ByteCoder(EntropyCoder):
    """Baselines compressing the concatenated bands with a stdlib codec (no tables to speak of).

    Payload: CRC-32 of the band sizes (4 bytes, little-endian), then the compressed bytes.
    """

    @abstractmethod
    def _compress(self, raw: bytes) -> bytes: ...

    @abstractmethod
    def _decompressor(self) -> Any: ...

    def encode(self, bands: Sequence[NDArray[np.uint8]]) -> bytes:
        checked = _check_bands(bands)
        return _sizes_check([b.size for b in checked]) + self._compress(b"".join(b.tobytes() for b in checked))

    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
        checked = _check_sizes(sizes)
        total = sum(checked)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BitstreamError(f"{self.name} payload must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if data[:4] != _sizes_check(checked):
            raise BitstreamError(f"{self.name} payload: band sizes do not match (or corrupted header)")
        d = self._decompressor()
        try:
            raw = d.decompress(data[4:], total + 1)
            ok = len(raw) == total and d.eof and not d.unused_data
        except Exception as exc:  # zlib.error, lzma.LZMAError, EOFError
            raise BitstreamError(f"{self.name} payload: corrupted ({exc})") from None
        if not ok:
            raise BitstreamError(f"{self.name} payload: wrong length or trailing data")
        buf = np.frombuffer(raw, dtype=np.uint8)
        out, pos = [], 0
        for s in checked:
            out.append(buf[pos : pos + s].copy())
            pos += s
        return out


@register_coder
class ZlibCoder(_ByteCoder):
    """zlib (deflate, level 9) over the concatenated bands; a baseline."""

    name: ClassVar[str] = "zlib"

    def _compress(self, raw: bytes) -> bytes:
        return zlib.compress(raw, 9)

    def _decompressor(self) -> Any:
        return zlib.decompressobj()


@register_coder
class LzmaCoder(_ByteCoder):
    """LZMA (xz container, CRC32 check) over the concatenated bands; a baseline."""

    name: ClassVar[str] = "lzma"

    def _compress(self, raw: bytes) -> bytes:
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)

    def _decompressor(self) -> Any:
        # a forged header could otherwise ask for a dictionary of up to 4 GiB
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=128 << 20)


# ----------------------------------------------------------------------------- systems


@register_system
class ANSEncode(System):
    """SymbolsU8 (+ QuantParams) -> ANSBitstream with a registered entropy coder (default ``"rans-ctx"``).

    Each entity is coded on its own; the bitstream records the coder name and the symbol layout.
    """

    name: ClassVar[str] = "ANSEncode"
    config_fields: ClassVar[tuple[str, ...]] = ("coder",)

    def __init__(self, coder: str = DEFAULT_CODER) -> None:
        self.coder = str(coder)
        self._impl = get_coder(self.coder)  # unknown names raise RegistryError here

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
class ANSDecode(System):
    """ANSBitstream -> SymbolsU8; malformed payloads raise BitstreamError."""

    name: ClassVar[str] = "ANSDecode"
    config_fields: ClassVar[tuple[str, ...]] = ("coder",)

    def __init__(self, coder: str = DEFAULT_CODER) -> None:
        self.coder = str(coder)
        self._impl = get_coder(self.coder)

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
            out = world.view(ref)
            if out.flags.c_contiguous:
                # ANSBitstream guarantees that the bands tile each channel in order (check_layout),
                # so the channel-major bands, concatenated, are the tensor itself: one copy.
                np.concatenate(decoded, out=out.reshape(-1))
            else:
                i = 0
                for c in range(bits.channels):
                    for b in bits.bands:
                        out[c, b.offset : b.offset + b.size] = decoded[i]
                        i += 1
            world.add_component(eid, SymbolsU8(ref=ref, height=bits.height, width=bits.width, bands=bits.bands))
