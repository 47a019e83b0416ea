"""The stream plan of the table coders: every (symbols, model) chunk in decode order, and its decoder.

:func:`plan_chunks` writes a band list's side information (kinds, modes, precisions, GEOM
parameters, table ranges, gaps and entries, each under its fixed prior) and then the symbols,
ending with a 20-bit check value (:func:`canary`). :func:`decode_plan` reads it back, validating
every decoded value before it sizes anything.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.entropy.bandmodel import (
    CONST,
    E8_FLOOR,
    GEOM,
    SAME,
    SPARSE,
    TABLE,
    TABLES,
    W8,
    BandModel,
    a_centre,
    dense_to_sparse,
    geom_model,
    geom_support,
    sparse_to_dense,
)
from vaerans_ecs.systems.entropy.priors import (
    A_HI8,
    A_LO8,
    CANARY_BITS,
    F64,
    I64,
    MAX_LOG8,
    MODE_START,
    N_PREC,
    PRIORS,
    T_HI8,
    UNITS,
    categorical,
)

__all__ = [
    "NARROW_BATCH",
    "Chunk",
    "Decode",
    "canary",
    "canary_chunk",
    "check_canary",
    "chunk",
    "concat_bands",
    "decode_plan",
    "check_capacity",
    "geom_band",
    "min_bits",
    "plan_chunks",
    "plan_concat",
    "table_model",
]

Decode = Callable[[Any, int], NDArray[np.int32]]


@dataclass(frozen=True)
class Chunk:
    """Symbols coded with one model, in decode order."""

    symbols: NDArray[np.int32]
    model: Any


def chunk(values: Sequence[int] | I64, model: Any) -> Chunk:
    return Chunk(np.asarray(values, dtype=np.int32), model)


def concat_bands(bands: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    if len(bands) == 1:
        return np.ascontiguousarray(bands[0])
    return np.concatenate(bands) if bands else np.empty(0, dtype=np.uint8)


def _crc_sizes(sizes: Sequence[int]) -> int:
    return zlib.crc32(np.asarray(sizes, dtype="<u8").tobytes(), 0x5EC5)


def _crc_to_canary(crc: int) -> int:
    return (crc & ((1 << CANARY_BITS) - 1)) or 1


def canary(sizes: Sequence[int], symbols: NDArray[np.uint8]) -> int:
    """Non-zero 20-bit check value (CRC-32) of the band sizes and all symbols (bands concatenated).

    It is the first symbol encoded, so it fills the coder's initial state nearly for free, and
    the last decoded: it catches wrong sizes, truncation, and corruption that an ANS decoder
    would otherwise resynchronise from after a burst of wrong symbols.
    """
    return _crc_to_canary(zlib.crc32(np.ascontiguousarray(symbols).data, _crc_sizes(sizes)))


def canary_chunk(sizes: Sequence[int], symbols: NDArray[np.uint8]) -> Chunk:
    """The check-value chunk that ends a plan (:func:`canary` of ``sizes`` and ``symbols``)."""
    return chunk([canary(sizes, symbols)], PRIORS.canary)


def check_canary(decode: Decode, sizes: Sequence[int], symbols: NDArray[np.uint8]) -> None:
    """Decode the check value of :func:`canary_chunk`; raise BitstreamError unless it matches."""
    if int(decode(PRIORS.canary, 1)[0]) != canary(sizes, symbols):
        raise bad_payload("check value mismatch (wrong band sizes, truncated or corrupted data)")


def plan_chunks(bands: Sequence[NDArray[np.uint8]], models: Sequence[BandModel | None]) -> list[Chunk]:
    """Every (symbols, model) chunk of the stream in decode order.

    Order: kinds, mode deltas, precisions (GEOM and table bands), GEOM ``a`` then ``t`` per precision, table ranges,
    SPARSE used counts and gaps, table entries per precision, the band symbols (band order), the canary.
    """
    return plan_concat(concat_bands(bands), [int(b.size) for b in bands], models)


def plan_concat(
    cat: NDArray[np.uint8],
    sizes: list[int],
    models: Sequence[BandModel | None],
    table_w: dict[int, F64] | None = None,
    *,
    check: bool = True,
) -> list[Chunk]:
    """:func:`plan_chunks` over the concatenated bands; ``table_w`` holds table weights that
    :func:`.search.choose` already has (the others are rebuilt from the entries, as the decoder does)."""
    pr = PRIORS
    live = [(i, m) for i, m in enumerate(models) if m is not None]
    if not live:
        return []
    chunks = [chunk([m.kind for _, m in live], pr.kind)]
    modes = [m.mode for _, m in live]
    chunks.append(chunk([m - p + 255 for m, p in zip(modes, [MODE_START, *modes[:-1]], strict=True)], pr.mode))
    coded = [(i, m) for i, m in live if m.kind in (GEOM, TABLE, SPARSE)]
    if coded:
        chunks.append(chunk([m.prec for _, m in coded], pr.prec))
    geo = [(i, m) for i, m in coded if m.kind == GEOM]
    for q, unit in enumerate(UNITS):
        grp = [(i, m) for i, m in geo if m.prec == q]
        if grp:
            chunks.append(chunk([a_centre(sizes[i], unit) - m.a + pr.a_off[q] for i, m in grp], pr.a[q]))
            chunks.append(chunk([m.t for _, m in grp], pr.t[q]))
    tab = [m for _, m in coded if m.kind in TABLES]
    if tab:
        chunks.append(chunk([m.mode - m.lo for m in tab], pr.dist))
        chunks.append(chunk([m.hi - m.mode for m in tab], pr.dist))
    coded_entries: list[I64] = []
    sparse_gaps: list[I64] = []
    for m in tab:
        assert m.entries is not None
        if m.kind == SPARSE:
            gaps, used = dense_to_sparse(m.mode - m.lo, m.entries)
            sparse_gaps.append(gaps)
            coded_entries.append(used)
        else:
            coded_entries.append(m.entries)
    if sparse_gaps:
        chunks.append(chunk([g.size for g in sparse_gaps], pr.dist))
        chunks.append(chunk(np.concatenate(sparse_gaps), pr.gap))
    for q in range(N_PREC):
        ents = [e for m, e in zip(tab, coded_entries, strict=True) if m.prec == q]
        if ents:
            chunks.append(chunk(np.concatenate(ents), pr.ent[q]))
    symbols = cat.astype(np.int32)  # one conversion; each band is shifted in place below
    starts = list(accumulate(sizes, initial=0))
    for i, m in live:
        if m.kind == CONST:
            continue
        seg = symbols[starts[i] : starts[i + 1]]
        if m.lo:
            seg -= m.lo
        w = table_w.get(i) if table_w else None
        chunks.append(Chunk(seg, m.model() if w is None else categorical(w)))
    if check:
        chunks.append(canary_chunk(sizes, cat))
    return chunks


# ----------------------------------------------------------------------------- decoder side


def bad_payload(msg: str) -> BitstreamError:
    return BitstreamError(f"entropy payload: {msg}")


#: What the decoder needs per live band: (kind, mode, lo, constriction model or None for CONST,
#: mask of the absent symbols of a table with escapes, else None, the fewest bits a symbol costs).
BandSpec = tuple[int, int, int, Any, NDArray[np.bool_] | None, float]

#: Remaining payload bits of an open decoder (None: unknown, no capacity check).
BitsLeft = Callable[[], int]


def min_bits(weights: F64) -> float:
    """The fewest bits one symbol can cost under a model of these weights.

    constriction quantises probabilities to 24 bits, and every symbol keeps at least one unit, so
    the most probable symbol gains at most one unit per symbol of the alphabet.
    """
    p = float(weights.max() / weights.sum()) + (weights.size + 1) * 2.0**-24
    return -math.log2(min(p, 1.0))


def check_capacity(specs: Sequence[BandSpec], sizes: Sequence[int], bits_left: BitsLeft | None) -> None:
    """Refuse band sizes the rest of the payload cannot hold, before anything of their size is allocated.

    Why: a stream whose image size was forged would otherwise make the decoder produce every
    declared symbol (seconds, hundreds of MiB) before its check value fails.
    """
    if bits_left is None:
        return
    need = sum(n * spec[5] for spec, n in zip(specs, sizes, strict=True))
    if need * 0.98 > bits_left() + 128:
        raise bad_payload(f"too short for its declared symbols (they need at least {need / 8:.0f} bytes)")


def table_model(left: int, entries: I64, prec: int) -> tuple[Any, NDArray[np.bool_] | None, float]:
    """Validated model of decoded dense table entries, the mask of its absent symbols (or ``None``
    if every symbol of the range may occur) and :func:`min_bits`; the same floats as
    :meth:`BandModel.weights`.

    Escapes carry the previous log along the chain, so the extremes of the unmarked running
    sums are the extremes of the real logs: one max/min validates the whole table.
    """
    e_off = PRIORS.e_off[prec]
    unit = UNITS[prec]
    absent = entries == 0
    delta = entries - (1 + e_off)
    delta[absent] = 0
    logs = np.empty(entries.size + 1, dtype=np.int64)
    logs[left] = 0
    np.cumsum(delta[:left], out=logs[:left][::-1])
    np.cumsum(delta[left:], out=logs[left + 1 :])
    if int(logs.max()) > 0 or int(logs.min()) < -(MAX_LOG8 // unit):
        raise bad_payload("table entry out of range")
    if (left and absent[left - 1]) or (entries.size > left and absent[-1]):
        raise bad_payload("table range ends on an absent symbol")
    logs *= unit
    logs -= E8_FLOOR  # every exponent is >= -MAX_LOG8 > E8_FLOOR: no clamping needed
    w = W8[logs]
    if not absent.any():
        return categorical(w), None, min_bits(w)
    mask = np.empty(entries.size + 1, dtype=np.bool_)
    mask[:left] = absent[:left][::-1]
    mask[left] = False
    mask[left + 1 :] = absent[left:]
    w[mask] = 0.0
    return categorical(w), mask, min_bits(w)


@lru_cache(maxsize=4096)
def geom_band(prec: int, a: int, t: int, mode: int) -> tuple[int, Any, float]:
    """(lo, constriction model, :func:`min_bits`) of a GEOM band: one cached call per band on the decoder side."""
    lo, hi = geom_support(mode, t * UNITS[prec])
    w, model = geom_model(prec, a, t, mode - lo, hi - mode)
    return lo, model, min_bits(w)


def _decode_models(decode: Decode, sizes: list[int]) -> list[BandSpec]:
    pr = PRIORS
    nl = len(sizes)
    kinds = decode(pr.kind, nl).tolist()
    modes = list(accumulate([v - 255 for v in decode(pr.mode, nl).tolist()], initial=MODE_START))[1:]
    if min(modes) < 0 or max(modes) > 255:
        raise bad_payload("band mode out of range")
    coded = [r for r in range(nl) if kinds[r] in (GEOM, TABLE, SPARSE)]
    prec = [0] * nl
    if coded:
        precs = decode(pr.prec, len(coded)).tolist()
        if max(precs) >= N_PREC:
            raise bad_payload("invalid precision")
        for r, p in zip(coded, precs, strict=True):
            prec[r] = p
    geom: dict[int, tuple[int, int]] = {}
    geo = [r for r in coded if kinds[r] == GEOM]
    for q, unit in enumerate(UNITS):
        grp = [r for r in geo if prec[r] == q]
        if grp:
            ca = decode(pr.a[q], len(grp)).tolist()
            ta = decode(pr.t[q], len(grp)).tolist()
            a_lo, a_hi, t_hi = A_LO8 // unit, A_HI8 // unit, T_HI8 // unit
            for r, c, t in zip(grp, ca, ta, strict=True):
                a = a_centre(sizes[r], unit) + pr.a_off[q] - c
                if not a_lo <= a <= a_hi or t > t_hi:
                    raise bad_payload("geometric model parameter out of range")
                geom[r] = (a, t)
    tab = [r for r in coded if kinds[r] in TABLES]
    bounds: dict[int, tuple[int, int]] = {}
    counts: dict[int, int] = {}
    if tab:
        dl = decode(pr.dist, len(tab)).tolist()
        dr = decode(pr.dist, len(tab)).tolist()
        for r, a_, b_ in zip(tab, dl, dr, strict=True):
            lo, hi = modes[r] - a_, modes[r] + b_
            if lo < 0 or hi > 255 or lo == hi:
                raise bad_payload("table range out of bounds")
            bounds[r] = (lo, hi)
            counts[r] = hi - lo
    gaps: dict[int, I64] = {}
    sparse = [r for r in tab if kinds[r] == SPARSE]
    if sparse:
        used = decode(pr.dist, len(sparse)).tolist()
        for r, u in zip(sparse, used, strict=True):
            if not 1 <= u <= counts[r]:
                raise bad_payload("sparse table with an impossible number of symbols")
            counts[r] = u
        g = decode(pr.gap, sum(used)).astype(np.int64)
        ends = list(accumulate(used))
        gaps.update((r, g[e - u : e]) for r, u, e in zip(sparse, used, ends, strict=True))
    entries: dict[int, I64] = {}
    for q in range(N_PREC):
        grp = [r for r in tab if prec[r] == q]
        if grp:
            sizes_q = [counts[r] for r in grp]
            ent = decode(pr.ent[q], sum(sizes_q)).astype(np.int64)
            ends = list(accumulate(sizes_q))
            entries.update((r, ent[e - u : e]) for r, u, e in zip(grp, sizes_q, ends, strict=True))
    for r in sparse:
        m = modes[r]
        dense = (
            None if not entries[r].all() else sparse_to_dense(m - bounds[r][0], bounds[r][1] - m, gaps[r], entries[r])
        )
        if dense is None:
            raise bad_payload("sparse table gaps do not match its range")
        entries[r] = dense
    specs: list[BandSpec] = []
    last = -1  # the most recent GEOM band, whose parameters SAME bands reuse
    for r in range(nl):
        m = modes[r]
        kind = kinds[r]
        if kind in (GEOM, SAME):
            if kind == GEOM:
                last = r
            elif last < 0:
                raise bad_payload("band reuses parameters before any geometric band")
            a, t = geom[last]
            lo, model, bits = geom_band(prec[last], a, t, m)
            specs.append((GEOM, m, lo, model, None, bits))
        elif kind == CONST:
            specs.append((CONST, m, m, None, None, 0.0))
        elif kind in TABLES:
            lo = bounds[r][0]
            model, absent, bits = table_model(m - lo, entries[r], prec[r])
            specs.append((kind, m, lo, model, absent, bits))
        else:
            raise bad_payload("invalid model kind")
    return specs


def _hits(sym: NDArray[np.int32], absent: NDArray[np.bool_]) -> bool:
    """Whether any decoded symbol is one the table marks absent (a valid stream never has one).

    A few absent symbols are tested one by one (a comparison pass each beats a gather).
    """
    values = np.flatnonzero(absent)
    if values.size <= 3:
        return any(bool((sym == v).any()) for v in values.tolist())
    return bool(np.take(absent, sym).any())


#: Decoded int32 symbols are narrowed to uint8 in batches of about this many symbols: few numpy
#: calls for a typical image, and no more than ~4 MiB of int32 arrays alive for a huge one.
NARROW_BATCH: Final = 1 << 20


def _narrow(out: NDArray[np.uint8], parts: list[NDArray[np.int32]], shifts: list[int]) -> None:
    """Write the concatenated int32 ``parts``, each plus its shift, into ``out`` as uint8 (exact:
    every symbol plus its shift is below 256)."""
    np.concatenate(parts, out=out, casting="unsafe")
    out += np.repeat(np.array(shifts, dtype=np.uint8), [p.size for p in parts])


def decode_plan(
    decode: Decode, sizes: Sequence[int], *, check: bool = True, bits_left: BitsLeft | None = None
) -> list[NDArray[np.uint8]]:
    """Decode the chunks of :func:`plan_chunks` with ``decode(model, amount) -> int32 array``.

    Every decoded value is validated before it sizes anything; the caller checks that the coder
    ends exactly empty (and, with ``check=False``, the check value: :func:`check_canary`). The
    bands come back as consecutive views of one buffer; the decoded
    symbols are narrowed to uint8 and shifted a batch of bands at a time (:func:`_narrow`). With
    ``bits_left``, sizes the payload cannot hold are refused before the output is allocated.
    """
    n_all = [int(s) for s in sizes]
    live = [n for n in n_all if n > 0]
    specs = _decode_models(decode, live) if live else []
    check_capacity(specs, live, bits_left)
    out = np.empty(sum(n_all), dtype=np.uint8)
    starts = list(accumulate(n_all, initial=0))
    bands = [out[starts[i] : starts[i + 1]] for i in range(len(n_all))]
    if not live:
        return bands
    parts: list[NDArray[np.int32]] = []
    shifts: list[int] = []
    done = pending = 0  # symbols written to out / decoded but not yet written
    for (kind, mode, lo, model, absent, _), n in zip(specs, live, strict=True):
        if kind == CONST:  # written in place, after the bands before it
            if parts:
                _narrow(out[done : done + pending], parts, shifts)
                done, pending, parts, shifts = done + pending, 0, [], []
            out[done : done + n] = mode
            done += n
            continue
        for start in range(0, n, NARROW_BATCH):  # big bands in pieces: int32 temporaries stay small
            sym = decode(model, min(NARROW_BATCH, n - start))
            if absent is not None and _hits(sym, absent):
                raise bad_payload("symbol with zero probability")
            parts.append(sym)
            shifts.append(lo)
            pending += sym.size
            if pending >= NARROW_BATCH:
                _narrow(out[done : done + pending], parts, shifts)
                done, pending, parts, shifts = done + pending, 0, [], []
    if parts:
        _narrow(out[done:], parts, shifts)
    if check:
        check_canary(decode, n_all, out)
    return bands
