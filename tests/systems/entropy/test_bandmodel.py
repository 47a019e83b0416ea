"""Band models: the cached GEOM weights are exactly the documented formula."""

from __future__ import annotations

import numpy as np

from vaerans_ecs.systems.entropy.bandmodel import geom_model, weights_e8
from vaerans_ecs.systems.entropy.priors import A_HI8, A_LO8, T_HI8, UNITS


def test_geom_weights_match_the_formula() -> None:
    # _geom_model reads weights from a table (strided tail slices); the definition is weights_e8
    for prec, unit in enumerate(UNITS):
        for t in sorted({0, 1, 2, 7, T_HI8 // unit}):
            for a in (A_LO8 // unit, 0, A_HI8 // unit):
                for left, right in ((0, 3), (5, 0), (17, 40), (128, 127), (255, 0)):
                    j = np.abs(np.arange(-left, right + 1))
                    e8 = np.where(j == 0, a * unit, -(j - 1) * (t * unit))
                    w, _ = geom_model(prec, a, t, left, right)
                    np.testing.assert_array_equal(w, weights_e8(e8))
