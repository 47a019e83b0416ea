"""System base class, the stream stage protocol and the system registry.

A System transforms components of a batch of entities in one ``run(world, eids)`` call. It
declares what it reads and writes (like Bevy's system params), so a Pipe can check a whole
chain before running anything, and it is registered by name so a chain can be written as data
(``get_config`` / ``from_config``, like numcodecs codecs) and inverted for decoding.

A system that can be recorded in a stream (a *stage*) also declares its ``stage_kind`` (where
it may sit in a pipeline) and owns its per-image stream data through four methods:
``stream_data`` (encoder: the bytes of its section), ``stream_shape`` (the tensor geometry it
makes, inferred from the header alone), ``load_stream_data`` (decoder: validate those bytes and
add the components its inverse reads) and ``stream_settings`` (what ``vaerans info`` shows).
The container (:mod:`vaerans_ecs.core.stream`) needs nothing else to write or rebuild a decoder.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from vaerans_ecs.components.base import Component
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.stream import Geometry, StreamContext
    from vaerans_ecs.core.world import World

__all__ = [
    "BRIDGES",
    "KIND_LIMITS",
    "SYSTEMS",
    "Mode",
    "StageKind",
    "System",
    "register_bridge",
    "register_system",
    "system_by_code",
    "system_from_config",
]


class Mode(str, Enum):
    """Direction of a system: ``forward`` (encode) or ``inverse`` (decode)."""

    FORWARD = "forward"
    INVERSE = "inverse"

    @property
    def opposite(self) -> Mode:
        """The other direction (what a system's ``inverse()`` runs in)."""
        return Mode.INVERSE if self is Mode.FORWARD else Mode.FORWARD


class StageKind(IntEnum):
    """Where a stage sits in a stream's pipeline; a layer lists its stages in non-decreasing kind."""

    RESIDUAL = 5  # starts an enhancement layer: the source minus what the layers below decode to
    MODEL = 10  # image -> latent (a VAE)
    CHANNEL = 20  # transforms across channels (Hadamard, colour)
    SPATIAL = 30  # spatial transforms (wavelets)
    QUANTIZER = 40
    CODER = 50  # entropy coding: the last stage of a layer


#: How many stages of each kind one layer may hold.
KIND_LIMITS: dict[StageKind, int] = {
    StageKind.RESIDUAL: 1,
    StageKind.MODEL: 1,
    StageKind.CHANNEL: 2,
    StageKind.SPATIAL: 1,
    StageKind.QUANTIZER: 1,
    StageKind.CODER: 1,
}


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
    #: Stable byte naming this stage in stream pipelines (built-ins; 0 = stored by its name).
    stream_code: ClassVar[int] = 0
    #: Where the stage may sit in a stream's pipeline; None = it cannot be recorded in a stream.
    stage_kind: ClassVar[StageKind | None] = None
    #: Registered section type of this stage's per-image data ("stage": the generic, indexed one).
    data_section: ClassVar[str] = "stage"
    #: Whether a stream must hold data for this stage (a stream without it is refused at parsing).
    data_required: ClassVar[bool] = False

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

    # -- the stream stage protocol ---------------------------------------------------------------
    def for_stream(self, world: World, eid: int) -> System:
        """This stage as a stream records it for ``eid`` (e.g. with "default" resolved to a name)."""
        return self

    def stream_data(self, world: World, eid: int) -> bytes | None:
        """Encoder side: the per-image bytes this stage stores for ``eid`` (None: nothing)."""
        return None

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        """The geometry this stage makes from ``geom``, from header facts alone (O(1) work).

        Raise :class:`BitstreamError` when the input cannot come from an encoder.
        """
        return geom

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        """Decoder side: validate this stage's bytes and add the components its inverse reads.

        ``ctx.geometry`` is the geometry of the stage's input. Work must stay O(header) until
        the data is known to be consistent with the declared sizes.
        """
        if data is not None:
            raise BitstreamError(f"stage {self.name} stores no data, but the stream holds {len(data)} bytes for it")

    def names_used(self) -> list[tuple[str, str, Any]]:
        """Registered things this stage names in a stream: ``(family, name, object)``.

        Streams record the plugin distributions that provide them (:mod:`vaerans_ecs.plugins`).
        """
        return [] if self.stream_code else [("systems", self.name, type(self))]

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        """What ``vaerans info`` shows about this stage: its recorded settings plus its data's."""
        cfg = self.get_config()
        return {"stage": self.name, **{k: cfg[k] for k in self.stream_field_names() if k in cfg}}

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


def _load_system_plugins() -> None:
    from vaerans_ecs.plugins import load_plugins

    load_plugins("systems")


SYSTEMS: Registry[type[System]] = Registry("system", _load_system_plugins, family="systems")

#: Default producers the Pipe may insert to bridge a missing component (component -> factory).
BRIDGES: Registry[Callable[[], System]] = Registry("bridge")

S = TypeVar("S", bound=type[System])


def register_system(cls: S) -> S:
    """Class decorator: register a System subclass under its ``name``."""
    if not cls.name:
        raise VaeransError(f"{cls.__name__} needs a non-empty `name` to be registered")
    if not 0 <= cls.stream_code <= 127:
        raise VaeransError(f"{cls.__name__}: stream codes are 1..127 (0 = stored by name), got {cls.stream_code}")
    other = system_by_code(cls.stream_code) if cls.stream_code else None
    if other is not None and other.name != cls.name:
        raise VaeransError(f"{cls.__name__}: stream code {cls.stream_code} already belongs to {other.name!r}")
    SYSTEMS.add(cls.name, cls)
    if cls.stream_code:
        _BY_CODE[cls.stream_code] = cls
    return cls


def register_bridge(component: type[Component], factory: Callable[[], System]) -> None:
    """Let a Pipe insert ``factory()`` when a system needs ``component`` and nothing produced it."""
    BRIDGES.add(component.__name__, factory, replace=True)


_BY_CODE: dict[int, type[System]] = {}


def system_by_code(code: int) -> type[System] | None:
    """The registered stage whose ``stream_code`` is ``code``, or None."""
    return _BY_CODE.get(code)


def system_from_config(config: Mapping[str, Any]) -> System:
    """Instantiate a registered system from ``{"id": name, **options}``."""
    if "id" not in config:
        raise ConfigError(f"system config {dict(config)!r} has no 'id'")
    return SYSTEMS.get(str(config["id"])).from_config(config)
