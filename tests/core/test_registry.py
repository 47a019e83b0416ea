"""System registry: name lookup, get_config/from_config round trip, inverse, errors."""

from __future__ import annotations

import pytest

from tests.core.toys import AddOne
from vaerans_ecs.core import SYSTEMS, Mode, Registry, register_system, system_from_config
from vaerans_ecs.core.system import System
from vaerans_ecs.errors import ConfigError, RegistryError, VaeransError


def test_round_trip() -> None:
    sys_ = AddOne(step=4, mode="inverse")
    cfg = sys_.get_config()
    assert cfg == {"id": "test.add_one", "step": 4, "mode": "inverse"}
    back = system_from_config(cfg)
    assert back == sys_ and back.mode is Mode.INVERSE
    assert repr(back) == "AddOne(step=4, mode='inverse')"
    assert sys_.inverse().inverse() == sys_
    assert "test.add_one" in SYSTEMS.names()


def test_errors() -> None:
    with pytest.raises(RegistryError, match=r"unknown system 'nope'.*registered:"):
        system_from_config({"id": "nope"})
    with pytest.raises(ConfigError, match="no 'id'"):
        system_from_config({"step": 1})
    with pytest.raises(ConfigError, match="unknown option"):
        system_from_config({"id": "test.add_one", "bogus": 1})
    with pytest.raises(RegistryError, match="already registered"):

        @register_system
        class Clash(System):
            name = "test.add_one"

            def run(self, world: object, eids: object) -> None: ...

    with pytest.raises(VaeransError, match="non-empty"):

        @register_system
        class Nameless(System):
            def run(self, world: object, eids: object) -> None: ...


def test_generic_registry() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    reg.add("a", 1)  # same object again is fine
    with pytest.raises(RegistryError):
        reg.add("a", 2)
    reg.add("a", 2, replace=True)
    assert reg.get("a") == 2 and "a" in reg and list(reg) == ["a"]
    reg.remove("a")
    with pytest.raises(RegistryError, match="registered: none"):
        reg.get("a")


def test_no_inverse_by_default() -> None:
    class OneWay(System):
        name = "test.one_way"

        def run(self, world: object, eids: object) -> None: ...

    with pytest.raises(VaeransError, match="no inverse"):
        OneWay().inverse()
