"""The stream plan's decoder: batched narrowing and forged side information."""

from __future__ import annotations

import constriction
import numpy as np
import pytest

from tests.systems.entropy.helpers import TABLE_CODERS, band, make, same
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.entropy import get_coder
from vaerans_ecs.systems.entropy.bandmodel import CONST, SAME, TABLE, BandModel
from vaerans_ecs.systems.entropy.plan import NARROW_BATCH, Chunk, canary, chunk
from vaerans_ecs.systems.entropy.priors import MODE_START, PRIORS, categorical


def test_decoder_narrows_in_batches() -> None:
    # more symbols than one narrowing batch, constant bands between the others, an empty band
    bands = make([("lap", 700_000, 1), ("const", 300_000, 2), ("lap_wide", 400_000, 3), ("lap", 0, 4)])
    bands += [band("heavy", 5, 5), band("const", 7, 6)]
    assert sum(b.size for b in bands) > NARROW_BATCH
    for name in TABLE_CODERS:
        coder = get_coder(name)
        assert same(coder.decode(coder.encode(bands), [b.size for b in bands]), bands)


def _forge(chunks: list[Chunk]) -> bytes:
    coder = constriction.stream.stack.AnsCoder()
    for c in reversed(chunks):
        coder.encode_reverse(c.symbols, c.model)
    raw = np.asarray(coder.get_compressed(), dtype="<u4").tobytes()
    return raw[: max(len(raw.rstrip(b"\0")), len(raw) - 3)]


def test_forged_tables_raise() -> None:
    pr = PRIORS
    x = np.array([10, 11, 12, 11, 10, 11], dtype=np.uint8)
    sizes = [x.size]
    can = chunk([canary(sizes, x)], pr.canary)
    rans = get_coder("rans")

    def table_stream(mode: int, lo: int, hi: int, entries: list[int], q: int = 2) -> bytes:
        model = BandModel(TABLE, mode, q, lo=lo, hi=hi, entries=np.array(entries, dtype=np.int64))
        w = model.weights()
        return _forge(
            [
                chunk([TABLE], pr.kind),
                chunk([mode - MODE_START + 255], pr.mode),
                chunk([q], pr.prec),
                chunk([mode - lo], pr.dist),
                chunk([hi - mode], pr.dist),
                chunk(entries, pr.ent[q]),
                Chunk((x.astype(np.int32) - lo).clip(0, hi - lo), categorical(w)),
                can,
            ]
        )

    off = pr.e_off[2] + 1
    ok = table_stream(11, 10, 12, [off - 4, off - 4])
    assert same(rans.decode(ok, sizes), [x])  # the forging helper itself is sound
    bad_streams = [
        table_stream(11, 10, 12, [off + 3, off - 4]),  # log ratio above the mode's (L > 0)
        table_stream(11, 10, 12, [0, off - 4]),  # range ends on an absent symbol
        table_stream(11, 9, 12, [off - 40, off - 40, off - 4]),  # absurdly small probability
        table_stream(11, 10, 13, [off - 4, 0, off - 4]),  # a symbol with zero probability decoded
        table_stream(11, 10, 17, [off - 4, 0, 0, 0, 0, 0, off - 4]),  # ... one of many absent symbols
        _forge([chunk([SAME], pr.kind), chunk([255], pr.mode), can]),  # SAME first
        _forge([chunk([CONST], pr.kind), chunk([510], pr.mode), can]),  # mode 255+127
        _forge([chunk([CONST], pr.kind), chunk([255], pr.mode)]),  # no check value
        ok + b"\x00\x00\x00\x01",  # trailing word
    ]
    for bad in bad_streams:
        with pytest.raises(BitstreamError):
            rans.decode(bad, sizes)
