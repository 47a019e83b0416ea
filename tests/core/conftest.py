"""Fixtures for the core tests."""

from __future__ import annotations

import pytest

from vaerans_ecs.core import World


@pytest.fixture
def world() -> World:
    return World(arena_bytes=1 << 22)
