"""Hadamard4 rotation: matrix properties, the array function, and the Hadamard4 system."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.components.latent import YUVW4, Latent4
from vaerans_ecs.core.system import SYSTEMS, Mode, system_from_config
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import ConfigError, MissingComponentError, VaeransError
from vaerans_ecs.systems.hadamard import H4, Hadamard4, hadamard4

FAST = settings(derandomize=True, deadline=None, max_examples=40)


def test_h4_orthonormal_symmetric_self_inverse() -> None:
    h = H4.astype(np.float64)
    np.testing.assert_array_equal(h, h.T)
    np.testing.assert_allclose(h @ h.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(h @ h, np.eye(4), atol=1e-12)
    expected = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    np.testing.assert_array_equal(h, expected)
    assert H4.dtype == np.float32
    with pytest.raises(ValueError):
        H4[0, 0] = 3.0  # read-only constant


@FAST
@given(
    batch=st.one_of(st.none(), st.integers(1, 3)),
    h=st.integers(1, 17),
    w=st.integers(1, 17),
    seed=st.integers(0, 999),
)
def test_matches_matrix_and_self_inverse(batch: int | None, h: int, w: int, seed: int) -> None:
    shape = (4, h, w) if batch is None else (batch, 4, h, w)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    y = hadamard4(x)
    assert y.shape == x.shape and y.dtype == np.float32
    ref = np.einsum("ck,...khw->...chw", H4.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(y, ref, atol=1e-6)
    np.testing.assert_allclose(hadamard4(y), x, atol=1e-6)  # its own inverse
    # orthonormal: energy preserved
    assert float((y.astype(np.float64) ** 2).sum()) == pytest.approx(float((x.astype(np.float64) ** 2).sum()), rel=1e-6)


def test_out_parameter_and_in_place() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5)).astype(np.float32)
    expected = hadamard4(x)
    out = np.empty_like(x)
    assert hadamard4(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
    y = x.copy()
    assert hadamard4(y, out=y) is y  # in place
    np.testing.assert_array_equal(y, expected)
    with pytest.raises(VaeransError):
        hadamard4(x, out=np.empty((2, 4, 6, 6), np.float32))


def test_dtypes_and_shape_errors() -> None:
    x64 = np.ones((4, 2, 2))
    assert hadamard4(x64).dtype == np.float64
    xi = np.ones((4, 2, 2), dtype=np.int16)
    y = hadamard4(xi)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[0], 2.0)
    np.testing.assert_array_equal(y[1:], 0.0)
    for bad in [np.ones((3, 2, 2)), np.ones((4, 4)), np.ones((1, 2, 4, 2, 2))]:
        with pytest.raises(VaeransError):
            hadamard4(bad)


# ----------------------------------------------------------------------------------------------
# System
# ----------------------------------------------------------------------------------------------
def test_system_forward_inverse_mixed_shapes() -> None:
    world = World(arena_bytes=1 << 20)
    rng = np.random.default_rng(1)
    lats = [rng.standard_normal((4, h, w)).astype(np.float32) for h, w in [(8, 6), (3, 5), (8, 6), (1, 1)]]
    eids = [world.spawn(Latent4(ref=world.arena.copy_in(z))) for z in lats]
    yuvw = (world.pipe(eids) | Hadamard4()).outs(YUVW4)
    for z, comp in zip(lats, yuvw, strict=True):
        np.testing.assert_allclose(world.view(comp.ref), hadamard4(z), atol=1e-7)
    for e in eids:
        world.remove_component(e, Latent4)
    back = (world.pipe(eids) | Hadamard4(mode="inverse")).outs(Latent4)
    for z, lat in zip(lats, back, strict=True):
        np.testing.assert_allclose(world.view(lat.ref), z, atol=1e-6)


def test_system_batch_block() -> None:
    world = World(arena_bytes=1 << 20)
    data = np.random.default_rng(2).standard_normal((3, 4, 5, 7)).astype(np.float32)
    block = world.arena.copy_in(data)
    eids = [world.spawn(Latent4(ref=world.arena.subref(block, j))) for j in range(3)]
    out = (world.pipe(eids) | Hadamard4() | Hadamard4().inverse()).outs(Latent4)
    for j, comp in enumerate(out):
        np.testing.assert_allclose(world.view(comp.ref), data[j], atol=1e-6)


def test_system_registry_and_config() -> None:
    assert SYSTEMS.get("Hadamard4") is Hadamard4
    fwd = Hadamard4()
    assert fwd.mode is Mode.FORWARD
    assert fwd.get_config() == {"id": "Hadamard4", "mode": "forward"}
    inv = fwd.inverse()
    assert inv == Hadamard4(mode=Mode.INVERSE) and inv != fwd
    assert inv.inverse() == fwd
    assert system_from_config(inv.get_config()) == inv
    assert fwd.required_components() == (Latent4,) and fwd.produced_components() == (YUVW4,)
    assert inv.required_components() == (YUVW4,) and inv.produced_components() == (Latent4,)
    with pytest.raises(ConfigError):
        Hadamard4(mode="backward")


def test_system_missing_input() -> None:
    world = World(arena_bytes=1 << 20)
    e = world.spawn(Latent4(ref=world.arena.copy_in(np.zeros((4, 2, 2), np.float32))))
    with pytest.raises(MissingComponentError):
        world.pipe(e) | Hadamard4(mode="inverse")
