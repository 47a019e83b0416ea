"""The encoder's model search: kinds it picks, the one-pass paths against the public plan, histograms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.entropy.helpers import FAST, SLACK_BYTES, band, band_specs, make, same, words
from vaerans_ecs.systems.entropy import empirical_entropy_bound_bytes, get_coder
from vaerans_ecs.systems.entropy.bandmodel import GEOM, SAME, SPARSE, TABLE, TABLES, a_centre
from vaerans_ecs.systems.entropy.plan import Chunk, plan_chunks, table_model
from vaerans_ecs.systems.entropy.priors import CUT8, PRIORS, UNITS, categorical
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


def _geom_bits_reference(x: np.ndarray, kind: int, prec: int, a: int, t: int) -> float:
    """Bits of band ``x`` as GEOM/SAME with the given parameters: the closed form written out per
    band (scalar floats), as the search evaluated it before its per-``t`` tables."""
    h = np.bincount(x, minlength=256)
    mode = int(h.argmax())
    n, hm = int(x.size), int(h[mode])
    steps = np.maximum(np.abs(np.arange(256) - mode) - 1, 0)
    s1 = int((h * steps).sum())
    unit = UNITS[prec]
    s = 8.0 / unit
    ab, tb, t8 = a / s, t / s, t * unit
    reach = min(255, 1 + (CUT8 + t8 - 1) // t8) if t8 > 0 else 255
    left, right = min(mode, reach), min(255 - mode, reach)
    th = 2.0**-tb
    sl = (1.0 - th**left) / (1.0 - th) if t8 > 0 else float(left)
    sr = (1.0 - th**right) / (1.0 - th) if t8 > 0 else float(right)
    payload = -hm * ab + tb * s1 + n * math.log2(2.0**ab + sl + sr)
    pr = PRIORS
    if kind == SAME:
        return payload + float(pr.kind_bits[SAME])
    side = pr.kind_bits[GEOM] + pr.prec_bits[prec] + pr.a_bits[prec][a_centre(n, unit) - a + pr.a_off[prec]]
    return payload + float(side + pr.t_bits[prec][t])


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_geom_costs_match_closed_form(seed: int) -> None:
    # the search's GEOM and SAME estimates (looked up from per-t tables) equal the closed form
    # evaluated band by band; modes near 0 and 255 exercise the truncated tails
    rng = np.random.default_rng(seed)
    bands = []
    for _ in range(24):
        mode = int(rng.choice([0, 1, 3, int(rng.integers(0, 256)), 128, 252, 255]))
        size = int(rng.choice([2, 9, 60, 400, 3000]))
        sign = rng.choice([-1, 1], size)
        steps = rng.geometric(float(rng.uniform(0.02, 0.95)), size) - 1
        bands.append(np.clip(mode + sign * steps, 0, 255).astype(np.uint8))
    models, bits, _ = choose(bands)
    seen = set()
    for m, b, x in zip(models, bits, bands, strict=True):
        assert m is not None
        if m.kind in (GEOM, SAME):
            seen.add(m.kind)
            assert b == pytest.approx(_geom_bits_reference(x, m.kind, m.prec, m.a, m.t), rel=1e-12, abs=1e-9)
    assert GEOM in seen
