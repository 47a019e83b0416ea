"""The fluent Pipe: ``world.pipe(e) | SystemA() | SystemB()`` then ``.out(Component)``.

A Pipe is lazy and immutable: ``|`` / ``.to`` return a new Pipe with one more planned system,
after checking (before anything runs) that the system's inputs will be there. ``.run()`` or
``.out(C)`` executes the plan once. ``.select(C)`` keeps only the entities that have (or will
have) ``C`` - a branch; ``.use(C)`` tells the next system which of its alternative inputs to read.
When a needed component is missing but a default producer is registered as a bridge (e.g. the
default quantizer in front of an entropy coder), the Pipe inserts it and logs that it did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from vaerans_ecs.components.base import Component
from vaerans_ecs.core.system import BRIDGES, System
from vaerans_ecs.errors import MissingComponentError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = ["Pipe"]

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Component)


def _names(types: Sequence[type[Component]] | set[type[Component]]) -> str:
    return ", ".join(sorted(t.__name__ for t in types)) or "none"


@dataclass(frozen=True)
class _Step:
    system: System | None = None  # a system to run ...
    select: type[Component] | None = None  # ... or a filter on the entity set


@dataclass(frozen=True)
class Pipe:
    """A lazily evaluated chain of systems over a batch of entities of one World."""

    world: World
    eids: tuple[int, ...]
    steps: tuple[_Step, ...] = ()
    produced: frozenset[type[Component]] = frozenset()
    selected: tuple[int, ...] | None = None
    pending_use: type[Component] | None = None
    base: frozenset[type[Component]] | None = None  # components common to the active entities
    _state: dict[str, bool] = field(default_factory=lambda: {"done": False}, compare=False, repr=False)

    # -- planning -------------------------------------------------------------------------------
    @property
    def active(self) -> tuple[int, ...]:
        """The entities the next system will run on."""
        return self.eids if self.selected is None else self.selected

    def available(self) -> set[type[Component]]:
        """Components every active entity will have at this point of the plan."""
        base = self.base if self.base is not None else self.world.common_components(self.active)
        return set(base) | self.produced

    def to(self, system: System) -> Pipe:
        """Plan ``system`` next; raises :class:`MissingComponentError` if its inputs will be missing."""
        if not isinstance(system, System):
            raise VaeransError(f"Pipe.to() expects a System instance, got {type(system).__name__}")
        pipe = self
        avail = pipe.available()
        missing = [c for c in system.required_components() if c not in avail]
        bridged: list[System] = []
        for comp in list(missing):
            if comp.__name__ in BRIDGES:
                bridge = BRIDGES.get(comp.__name__)()
                if bridge.input_choices() and not any(c in avail for c in bridge.input_choices()):
                    continue
                if all(c in avail for c in bridge.required_components()):
                    log.info("Pipe: inserting default %r to produce %s for %r", bridge, comp.__name__, system)
                    bridged.append(bridge)
                    avail |= set(bridge.produced_components())
                    missing = [c for c in missing if c not in avail]
        for bridge in bridged:
            pipe = pipe._plan(pipe._resolve(bridge, pipe.available()))
        system = pipe._resolve(system, avail)
        if missing:
            raise MissingComponentError(
                f"{system!r} cannot run: entities lack {_names(missing)} "
                f"(available: {_names(avail)})"
            )
        return pipe._plan(system)

    def _resolve(self, system: System, avail: set[type[Component]]) -> System:
        choices = system.input_choices()
        if not choices:
            if self.pending_use is not None:
                raise VaeransError(f"use({self.pending_use.__name__}): {system!r} has no alternative inputs")
            return system
        if self.pending_use is not None:
            if self.pending_use not in avail:
                raise MissingComponentError(
                    f"{system!r} cannot read {self.pending_use.__name__}: not available (available: {_names(avail)})"
                )
            return system.with_source(self.pending_use)
        if system.source is not None:
            if system.source not in avail:
                raise MissingComponentError(f"{system!r} cannot run: entities lack {system.source.__name__}")
            return system
        for choice in choices:
            if choice in avail:
                return system.with_source(choice)
        raise MissingComponentError(
            f"{system!r} cannot run: entities lack any of {_names(list(choices))} (available: {_names(avail)})"
        )

    def _plan(self, system: System) -> Pipe:
        return replace(
            self,
            steps=(*self.steps, _Step(system=system)),
            produced=self.produced | set(system.produced_components()),
            pending_use=None,
            _state={"done": False},
        )

    def __or__(self, system: System) -> Pipe:
        return self.to(system)

    def select(self, component: type[Component]) -> Pipe:
        """Branch: keep only the entities that have (or will have) ``component``."""
        if component in self.produced:
            return self
        keep = tuple(e for e in self.active if self.world.has_component(e, component))
        return replace(
            self,
            selected=keep,
            base=self.world.common_components(keep),
            steps=(*self.steps, _Step(select=component)),
            _state={"done": False},
        )

    def use(self, component: type[Component]) -> Pipe:
        """Make the next system read ``component`` (one of its ``input_choices()``)."""
        return replace(self, pending_use=component)

    # -- execution ------------------------------------------------------------------------------
    def run(self) -> Pipe:
        """Execute the plan (once) and return this Pipe."""
        if self._state["done"]:
            return self
        world = self.world
        eids: tuple[int, ...] = self.eids
        for step in self.steps:
            if step.select is not None:
                sel = step.select
                eids = tuple(e for e in eids if world.has_component(e, sel))
                continue
            system = step.system
            assert system is not None
            if not eids:
                continue
            lacking = world.lacking(eids, system.requirements())
            if lacking:
                eid, comps = lacking
                raise MissingComponentError(f"{system!r} cannot run on entity {eid}: lacks {_names(comps)}")
            t0 = time.perf_counter()
            system.run(world, eids)
            world.record(eids, system, time.perf_counter() - t0)
        self._state["done"] = True
        return self

    def out(self, component: type[C]) -> C:
        """Run the plan and return ``component`` of the (single) entity."""
        self.run()
        if len(self.active) != 1:
            raise VaeransError(f"out() needs exactly one entity, the pipe has {len(self.active)}; use outs()")
        return self.world.get_component(self.active[0], component)

    def outs(self, component: type[C]) -> list[C]:
        """Run the plan and return ``component`` of every active entity, in order."""
        self.run()
        return [self.world.get_component(e, component) for e in self.active]
