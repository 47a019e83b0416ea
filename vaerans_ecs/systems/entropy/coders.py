"""Entropy coders: the :class:`EntropyCoder` interface, its registry and the built-in coders.

``"rans"`` and ``"range"`` code each band with the cheapest table model (:mod:`.search`,
:mod:`.plan`); ``"rans-ctx"`` first splits detail bands into context groups (:mod:`.context`);
``"zlib"`` and ``"lzma"`` are stdlib baselines. See the package docstring for the payloads.
"""

from __future__ import annotations

import lzma
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

import constriction
import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.entropy.context import N_CLASSES, ContextModel
from vaerans_ecs.systems.entropy.plan import BitsLeft, Chunk, Decode, canary_chunk, check_canary, decode_plan
from vaerans_ecs.systems.entropy.priors import categorical
from vaerans_ecs.systems.entropy.search import cheapest_plans, encode_chunks

__all__ = [
    "CODERS",
    "DEFAULT_CODER",
    "MAX_BANDS",
    "MAX_SYMBOLS",
    "ContextRansCoder",
    "EntropyCoder",
    "Layout",
    "LzmaCoder",
    "RangeCoder",
    "RansCoder",
    "TableCoder",
    "ZlibCoder",
    "bytes_to_words",
    "coder_names",
    "empirical_entropy_bound_bytes",
    "get_coder",
    "register_coder",
    "words_to_bytes",
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


def _load_coder_plugins() -> None:
    from vaerans_ecs.plugins import load_plugins

    load_plugins("coders")


CODERS: Final[Registry[type[EntropyCoder]]] = Registry("entropy coder", _load_coder_plugins, family="coders")

C = TypeVar("C", bound=type[EntropyCoder])


def register_coder(cls: C) -> C:
    """Class decorator registering an :class:`EntropyCoder` subclass under ``cls.name``."""
    CODERS.add(cls.name, cls)
    return cls


def get_coder(name: str) -> EntropyCoder:
    """A coder instance by name; unknown names raise RegistryError listing the known ones."""
    return CODERS.get(name)()


def coder_names() -> list[str]:
    """Registered coder names, sorted."""
    return CODERS.names()


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


def check_bands(bands: Sequence[NDArray[np.uint8]]) -> list[U8]:
    out: list[U8] = []
    for i, b in enumerate(bands):
        if not isinstance(b, np.ndarray) or b.dtype != np.uint8 or b.ndim != 1:
            what = f"{type(b).__name__}" if not isinstance(b, np.ndarray) else f"{b.dtype} {b.ndim}-d array"
            raise VaeransError(f"entropy coder: band {i} must be a 1-D uint8 array, got {what}")
        out.append(np.ascontiguousarray(b))
    if len(out) > MAX_BANDS or sum(b.size for b in out) > MAX_SYMBOLS:
        raise VaeransError(f"entropy coder: at most {MAX_BANDS} bands and {MAX_SYMBOLS} symbols")
    return out


def check_sizes(sizes: Sequence[int]) -> list[int]:
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


def words_to_bytes(words: NDArray[np.uint32]) -> bytes:
    raw = words.astype("<u4").tobytes()
    keep = max(len(raw.rstrip(b"\0")), len(raw) - 3)
    return raw[:keep]


def bytes_to_words(data: bytes) -> NDArray[np.uint32]:
    pad = (-len(data)) % 4
    words = np.frombuffer(bytes(data) + b"\0" * pad, dtype="<u4").astype(np.uint32)
    if len(words_to_bytes(words)) != len(data):
        raise BitstreamError("entropy payload: non-canonical length (extra trailing bytes)")
    return words


# ----------------------------------------------------------------------------- table coders


class TableCoder(EntropyCoder):
    """Shared plumbing of the coders driven by table models (:mod:`.search` chooses one per band, :mod:`.plan`
    lays out the stream)."""

    @abstractmethod
    def chunks_to_words(self, chunks: list[Chunk]) -> NDArray[np.uint32]:
        """Code the chunks (in decode order) into the coder's 32-bit words."""

    @abstractmethod
    def open_decoder(self, words: NDArray[np.uint32]) -> tuple[Decode, Callable[[], bool], BitsLeft]:
        """(decode(model, amount), finished(), bits_left()) over the words; ``bits_left`` may
        overestimate (a coder that cannot tell gives the whole payload)."""

    def _plan(self, bands: list[U8], layout: Layout | None) -> list[Chunk]:
        """The stream's chunks in decode order."""
        return encode_chunks(bands)

    def _unplan(self, decode: Decode, sizes: list[int], layout: Layout | None, bits_left: BitsLeft) -> list[U8]:
        """Decode what :meth:`_plan` wrote."""
        return decode_plan(decode, sizes, bits_left=bits_left)

    def encode(self, bands: Sequence[NDArray[np.uint8]]) -> bytes:
        return self._encode(bands, None)

    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
        return self._decode(data, sizes, None)

    def encode_layout(self, bands: Sequence[NDArray[np.uint8]], layout: Layout) -> bytes:
        return self._encode(bands, layout)

    def decode_layout(self, data: bytes, layout: Layout) -> list[NDArray[np.uint8]]:
        return self._decode(data, layout.sizes, layout)

    def _encode(self, bands: Sequence[NDArray[np.uint8]], layout: Layout | None) -> bytes:
        checked = check_bands(bands)
        if layout is not None and [b.size for b in checked] != layout.sizes:
            raise VaeransError(f"entropy coder: the bands do not tile the layout ({len(checked)} bands given)")
        chunks = self._plan(checked, layout)
        if not chunks:
            return b""
        return words_to_bytes(self.chunks_to_words(chunks))

    def _decode(self, data: bytes, sizes: Sequence[int], layout: Layout | None) -> list[NDArray[np.uint8]]:
        checked = check_sizes(sizes)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BitstreamError(f"entropy payload must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if sum(checked) == 0:
            if data:
                raise BitstreamError("entropy payload: data present but all bands are empty")
            return [np.empty(0, dtype=np.uint8) for _ in checked]
        if not data:
            raise BitstreamError("entropy payload: empty")
        words = bytes_to_words(data)
        try:
            decode, finished, bits_left = self.open_decoder(words)
            bands = self._unplan(decode, checked, layout, bits_left)
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


def _decode_with(coder: Any) -> Decode:
    """``decode(model, amount)`` over a constriction decoder, returning int32 symbols."""

    def decode(model: Any, amount: int) -> NDArray[np.int32]:
        return np.asarray(coder.decode(model, amount), dtype=np.int32)

    return decode


@register_coder
class RansCoder(TableCoder):
    """rANS (constriction ``AnsCoder``, a stack: chunks are pushed in reverse decode order)."""

    name: ClassVar[str] = "rans"

    def chunks_to_words(self, chunks: list[Chunk]) -> NDArray[np.uint32]:
        coder = constriction.stream.stack.AnsCoder()
        for c in reversed(chunks):
            coder.encode_reverse(c.symbols, c.model)
        return _as_words(coder.get_compressed())

    def open_decoder(self, words: NDArray[np.uint32]) -> tuple[Decode, Callable[[], bool], BitsLeft]:
        coder = constriction.stream.stack.AnsCoder(words)
        return _decode_with(coder), lambda: bool(coder.is_empty()), lambda: int(coder.num_valid_bits())


@register_coder
class ContextRansCoder(RansCoder):
    """rANS over context groups: each detail band is split by :class:`ContextModel` into
    classes of similar local activity, and each band's groups are coded with the table models (:mod:`.search`).

    Payload: per band in decode order, where the context splits it into two or more classes, a
    flag (model :data:`SPLIT_FLAG`) saying whether the encoder did split it (it does when the
    groups' estimated cost, side information included, is lower); then the table plan (:mod:`.plan`) of
    its groups (class 0 first) or of the whole band, without a check value. Last, one check value
    over all band sizes and symbols (in band order). Without a layout every band is one group.
    """

    name: ClassVar[str] = "rans-ctx"
    #: Model of the per-band split flag (1 = split), part of the format: splitting is the rule.
    SPLIT_FLAG: ClassVar[Any] = categorical(np.array([1.0, 3.0]))

    @staticmethod
    def _walk(sizes: list[int], layout: Layout | None) -> tuple[ContextModel | None, list[tuple[int, int]]]:
        """The context model (None without a layout) and (channel, band index) per band."""
        if layout is None:
            return None, [(0, i) for i in range(len(sizes))]
        nb = len(layout.bands)
        return ContextModel(layout.bands), [(k // nb, k % nb) for k in range(len(sizes))]

    def _plan(self, bands: list[U8], layout: Layout | None) -> list[Chunk]:
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
                ends = np.cumsum(np.bincount(cls, minlength=N_CLASSES))[:-1]
                items[-1].append(np.split(band[perm], ends))
            if model is not None:
                model.record(c, i, band)
        chunks: list[Chunk] = []
        for options, (split, plan) in zip(items, cheapest_plans(items), strict=True):
            if len(options) > 1:
                chunks.append(Chunk(np.array([split], dtype=np.int32), self.SPLIT_FLAG))
            chunks += plan
        chunks.append(canary_chunk(sizes, np.concatenate(bands)))
        return chunks

    def _unplan(self, decode: Decode, sizes: list[int], layout: Layout | None, bits_left: BitsLeft) -> list[U8]:
        """Band by band, each checked against the payload left before it is allocated."""
        bands: list[U8] = []
        model, order = self._walk(sizes, layout)
        for size, (c, i) in zip(sizes, order, strict=True):
            cls = model.classes(c, i) if model is not None else None
            if cls is None or not decode(self.SPLIT_FLAG, 1)[0]:
                band = np.concatenate(decode_plan(decode, [size], check=False, bits_left=bits_left))
            else:
                counts = np.bincount(cls, minlength=N_CLASSES).tolist()
                band = np.empty(size, dtype=np.uint8)
                band[np.argsort(cls, kind="stable")] = np.concatenate(
                    decode_plan(decode, counts, check=False, bits_left=bits_left)
                )
            bands.append(band)
            if model is not None:
                model.record(c, i, band)
        out = np.concatenate(bands) if bands else np.empty(0, dtype=np.uint8)
        check_canary(decode, sizes, out)
        starts = np.cumsum([0, *sizes]).tolist()
        return [out[starts[k] : starts[k + 1]] for k in range(len(sizes))]


@register_coder
class RangeCoder(TableCoder):
    """Range coding (constriction ``RangeEncoder``/``RangeDecoder``, a queue) with the same models."""

    name: ClassVar[str] = "range"

    def chunks_to_words(self, chunks: list[Chunk]) -> NDArray[np.uint32]:
        coder = constriction.stream.queue.RangeEncoder()
        for c in chunks:
            coder.encode(c.symbols, c.model)
        return _as_words(coder.get_compressed())

    def open_decoder(self, words: NDArray[np.uint32]) -> tuple[Decode, Callable[[], bool], BitsLeft]:
        coder = constriction.stream.queue.RangeDecoder(words)
        total = 32 * len(words)  # a range decoder cannot tell what is left: the whole payload bounds it
        return _decode_with(coder), lambda: bool(coder.maybe_exhausted()), lambda: total


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
        checked = check_bands(bands)
        return _sizes_check([b.size for b in checked]) + self._compress(b"".join(b.tobytes() for b in checked))

    def decode(self, data: bytes, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
        checked = check_sizes(sizes)
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
