"""The encoder's model search: kinds it picks, the one-pass paths against the public plan, histograms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.entropy.helpers import FAST, SLACK_BYTES, band, band_specs, make, same, words
from vaerans_ecs.systems.entropy import empirical_entropy_bound_bytes, get_coder
from vaerans_ecs.systems.entropy.bandmodel import SPARSE, TABLE, TABLES
from vaerans_ecs.systems.entropy.plan import Chunk, plan_chunks, table_model
from vaerans_ecs.systems.entropy.priors import categorical
from vaerans_ecs.systems.entropy.search import cheapest_plans, choose, choose_models, encode_chunks, histograms


@pytest.mark.parametrize(("kind", "expected"), [("bimodal", TABLE), ("sparse", SPARSE)])
def test_table_kinds_for_odd_histograms(kind: str, expected: int) -> None:
    # no geometric model fits these: a dense table (two bumps) or a sparse one (5 spread values)
    x = band(kind, 5000, 3)
    model = choose_models([x])[0]
    assert model is not None and model.kind == expected
    data = get_coder("rans").encode([x])
    assert same(get_coder("rans").decode(data, [x.size]), [x])
    assert len(data) <= 1.03 * empirical_entropy_bound_bytes([x]) + SLACK_BYTES


@FAST
@given(specs=band_specs)
def test_encode_chunks_matches_public_plan(specs: list[tuple[str, int, int]]) -> None:
    # the one-pass encoder path equals choose_models + plan_chunks, chunk by chunk
    bands = make(specs)
    fast = encode_chunks(bands)
    slow = plan_chunks(bands, choose_models(bands))
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.symbols, b.symbols)
        np.testing.assert_array_equal(words([a]), words([Chunk(a.symbols, b.model)]))
    if fast:
        np.testing.assert_array_equal(words(fast), words(slow))


@FAST
@given(specs=st.lists(band_specs, min_size=1, max_size=3))
def test_cheapest_plans_match_separate_plans(specs: list[list[tuple[str, int, int]]]) -> None:
    # per item: option 0 is its bands concatenated, option 1 the same bands as given; the batched
    # choice must pick the option whose separately planned cost is lower and plan it identically
    items = []
    for spec in specs:
        bands = make(spec)
        whole = [np.concatenate(bands)] if bands else []
        items.append([whole, bands])
    for (index, chunks), options in zip(cheapest_plans(items), items, strict=True):
        costs = [float(choose(o).bits.sum()) for o in options]
        assert costs[index] == min(costs) and (index == 0 or costs[0] > costs[1])
        alone = encode_chunks(options[index], check=False)
        assert len(chunks) == len(alone)
        if chunks:
            np.testing.assert_array_equal(words(chunks), words(alone))


@FAST
@given(specs=band_specs)
def test_table_weights_from_costs_match_band_model(specs: list[tuple[str, int, int]]) -> None:
    # the encoder takes table weights from its quantised logs; the decoder rebuilds them from
    # the coded entries: both must be BandModel.weights() exactly
    bands = make([*specs, ("bimodal", 3000, 5), ("sparse", 3000, 6)])
    models, _, table_w = choose(bands)
    assert table_w, "the bimodal and sparse bands take tables"
    for i, w in table_w.items():
        m = models[i]
        assert m is not None and m.kind in TABLES and m.entries is not None
        np.testing.assert_array_equal(w, m.weights())
        model, absent, _ = table_model(m.mode - m.lo, m.entries, m.prec)
        assert (absent is None) == bool(np.all(m.entries != 0))
        if absent is not None:
            np.testing.assert_array_equal(absent, w == 0)
        sym = bands[i].astype(np.int32) - m.lo
        ours = words([Chunk(sym, model)])
        np.testing.assert_array_equal(ours, words([Chunk(sym, categorical(w))]))


def test_histograms_both_paths() -> None:
    bands = make([("lap", 700, 1), ("uniform", 300, 2), ("const", 9, 3)])
    sizes = [b.size for b in bands]
    cat = np.concatenate(bands)
    expected = np.stack([np.bincount(b, minlength=256) for b in bands])
    np.testing.assert_array_equal(histograms(cat, sizes), expected)  # one keyed bincount
    many = [np.full(2, i % 256, np.uint8) for i in range(300)]  # more bands than uint16 keys hold: per band
    np.testing.assert_array_equal(
        histograms(np.concatenate(many), [2] * 300), np.stack([np.bincount(b, minlength=256) for b in many])
    )
