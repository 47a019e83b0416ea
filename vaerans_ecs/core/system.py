"""System base class and the system registry.

A System transforms components of a batch of entities in one ``run(world, eids)`` call. It
declares what it reads and writes (like Bevy's system params), so a Pipe can check a whole
chain before running anything, and it is registered by name so a chain can be written as data
(``get_config`` / ``from_config``, like numcodecs codecs) and inverted for decoding.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from vaerans_ecs.components.base import Component
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.errors import ConfigError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = [
    "BRIDGES",
    "SYSTEMS",
    "Mode",
    "System",
    "register_bridge",
    "register_system",
    "system_from_config",
]


class Mode(str, Enum):
    """Direction of a system: ``forward`` (encode) or ``inverse`` (decode)."""

    FORWARD = "forward"
    INVERSE = "inverse"


class System(ABC):
    """Base class of every pipeline stage.

    Subclasses set ``name`` (registry key) and ``config_fields`` (constructor arguments that
    ``get_config`` reports and ``from_config`` passes back), and implement ``run``. A system
    that can read one of several components lists them in ``input_choices()``; the Pipe picks
    the first available one, or the one named with ``Pipe.use(C)``, and stores it in ``source``.
    """

    name: ClassVar[str] = ""
    config_fields: ClassVar[tuple[str, ...]] = ()
    #: Config fields a stream header records (what decoding needs); None = all but ``mode``.
    stream_fields: ClassVar[tuple[str, ...] | None] = None
    mode: Mode = Mode.FORWARD
    source: type[Component] | None = None

    def required_components(self) -> tuple[type[Component], ...]:
        """Components every entity must have before this system runs (besides ``source``)."""
        return ()

    def produced_components(self) -> tuple[type[Component], ...]:
        """Components this system adds (or replaces) on each entity."""
        return ()

    def input_choices(self) -> tuple[type[Component], ...]:
        """Alternative inputs, in order of preference; empty when the input is fixed."""
        return ()

    def requirements(self) -> tuple[type[Component], ...]:
        """All components needed, including the resolved ``source`` if any."""
        req = self.required_components()
        return (*req, self.source) if self.source is not None and self.source not in req else req

    def with_source(self, source: type[Component]) -> System:
        """Copy of this system reading ``source`` (one of ``input_choices()``)."""
        if source not in self.input_choices():
            choices = ", ".join(c.__name__ for c in self.input_choices()) or "none"
            raise VaeransError(f"{self!r} cannot read {source.__name__}; it reads one of: {choices}")
        clone = copy.copy(self)
        clone.source = source
        return clone

    def can_run(self, world: World, eid: int) -> bool:
        """True when entity ``eid`` has every component this system needs."""
        choices = self.input_choices()
        if self.source is None and choices and not any(world.has_component(eid, c) for c in choices):
            return False
        return all(world.has_component(eid, c) for c in self.requirements())

    @abstractmethod
    def run(self, world: World, eids: Sequence[int]) -> None:
        """Process the batch ``eids`` in one call, adding ``produced_components()`` to each."""

    def inverse(self) -> System:
        """The system that undoes this one (used to rebuild a decoder from a stream header)."""
        raise VaeransError(f"{type(self).__name__} has no inverse")

    def get_config(self) -> dict[str, Any]:
        """JSON/TOML-friendly description: ``{"id": name, **config_fields}``."""
        cfg: dict[str, Any] = {"id": self.name}
        for field in self.config_fields:
            value = getattr(self, field)
            cfg[field] = value.value if isinstance(value, Enum) else value
        return cfg

    @classmethod
    def stream_field_names(cls) -> tuple[str, ...]:
        """The config fields stored in a bitstream header for this system."""
        if cls.stream_fields is not None:
            return cls.stream_fields
        return tuple(f for f in cls.config_fields if f != "mode")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> System:
        """Rebuild a system from :meth:`get_config` output."""
        kwargs = {k: v for k, v in config.items() if k != "id"}
        unknown = set(kwargs) - set(cls.config_fields)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}; known: {list(cls.config_fields)}")
        return cls(**kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, System) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))


SYSTEMS: Registry[type[System]] = Registry("system")

#: Default producers the Pipe may insert to bridge a missing component (component -> factory).
BRIDGES: Registry[Callable[[], System]] = Registry("bridge")

S = TypeVar("S", bound=type[System])


def register_system(cls: S) -> S:
    """Class decorator: register a System subclass under its ``name``."""
    if not cls.name:
        raise VaeransError(f"{cls.__name__} needs a non-empty `name` to be registered")
    SYSTEMS.add(cls.name, cls)
    return cls


def register_bridge(component: type[Component], factory: Callable[[], System]) -> None:
    """Let a Pipe insert ``factory()`` when a system needs ``component`` and nothing produced it."""
    BRIDGES.add(component.__name__, factory, replace=True)


def system_from_config(config: Mapping[str, Any]) -> System:
    """Instantiate a registered system from ``{"id": name, **options}``."""
    if "id" not in config:
        raise ConfigError(f"system config {dict(config)!r} has no 'id'")
    return SYSTEMS.get(str(config["id"])).from_config(config)
