"""Entropy-coding stage: bands of uint8 quantizer symbols <-> one compact payload.

Coders are registered by name (:func:`register_coder`, :func:`get_coder`, :func:`coder_names`):

``"rans"`` (default)
    rANS (constriction's ``AnsCoder``) with the cheapest of several compact models per band and
    all side information coded in the same stream (see :mod:`vaerans_ecs.systems._tables`).
``"range"``
    The same models and stream plan with constriction's range coder (FIFO).
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
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import constriction
import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.quant import ANSBitstream, QuantParams, SymbolsU8
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.core.system import System, register_system
from vaerans_ecs.errors import BitstreamError, ComponentError, VaeransError
from vaerans_ecs.systems import _tables

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = [
    "ANSDecode",
    "ANSEncode",
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

#: Upper bounds the decoders enforce on the caller's ``sizes`` before allocating anything.
MAX_BANDS: Final = 1 << 16
MAX_SYMBOLS: Final = 1 << 28

U8 = NDArray[np.uint8]


class EntropyCoder(ABC):
    """Lossless coder of a list of uint8 bands; the decoder is told the band sizes."""

    name: ClassVar[str]

    @abstractmethod
    def encode(self, bands: Sequence[NDArray[np.uint8]]) -> bytes:
        """Encode 1-D uint8 bands (any may be empty) to a self-checking payload."""

    @abstractmethod
    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
        """Decode a payload into bands of the given sizes; malformed data raises BitstreamError."""


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

    def encode(self, bands: Sequence[NDArray[np.uint8]]) -> bytes:
        checked = _check_bands(bands)
        chunks = _tables.encode_chunks(checked)
        if not chunks:
            return b""
        return _words_to_bytes(self._encode_chunks(chunks))

    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
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
            bands = _tables.decode_plan(decode, checked)
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


def _band_sizes(channels: int, bands: Sequence[Any]) -> list[int]:
    return [int(b.size) for _ in range(channels) for b in bands]


@register_system
class ANSEncode(System):
    """SymbolsU8 (+ QuantParams) -> ANSBitstream with a registered entropy coder (default rANS).

    Each entity is coded on its own; the bitstream records the coder name and the symbol layout.
    """

    name: ClassVar[str] = "ANSEncode"
    config_fields: ClassVar[tuple[str, ...]] = ("coder",)

    def __init__(self, coder: str = "rans") -> None:
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
            data = self._impl.encode(bands)
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

    def __init__(self, coder: str = "rans") -> None:
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
            sizes = _band_sizes(bits.channels, bits.bands)
            decoded = self._impl.decode(bits.data, sizes)
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
