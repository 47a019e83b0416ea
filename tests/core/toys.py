"""Toy systems over tiny components, so core tests do not depend on the codec stages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vaerans_ecs.components import RGB, YUVW4, Component, Latent4
from vaerans_ecs.core import Mode, System, World, register_system


class Counter(Component):
    """A scalar counter component used by the toy systems."""

    value: int


@register_system
class AddOne(System):
    """Counter -> Counter + step (inverse subtracts)."""

    name = "test.add_one"
    config_fields = ("step", "mode")

    def __init__(self, step: int = 1, mode: Mode | str = Mode.FORWARD) -> None:
        self.step = step
        self.mode = Mode(mode)

    def required_components(self) -> tuple[type[Component], ...]:
        return (Counter,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Counter,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        sign = 1 if self.mode is Mode.FORWARD else -1
        for e in eids:
            world.add_component(e, Counter(value=world.get_component(e, Counter).value + sign * self.step))

    def inverse(self) -> System:
        return AddOne(self.step, Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)


@register_system
class FakeEncode(System):
    """RGB -> Latent4 of zeros (shape-only stand-in for a VAE)."""

    name = "test.fake_encode"

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Latent4,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for e in eids:
            h, w, _ = world.get_component(e, RGB).ref.shape
            ref = world.alloc((4, max(1, h // 8), max(1, w // 8)), np.float32)
            world.view(ref)[...] = 1.0
            world.add_component(e, Latent4(ref=ref))


@register_system
class Rotate(System):
    """Latent4 -> YUVW4 (copy), the shape of Hadamard4."""

    name = "test.rotate"

    def required_components(self) -> tuple[type[Component], ...]:
        return (Latent4,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (YUVW4,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for e in eids:
            src = world.get_component(e, Latent4).ref
            ref = world.alloc(src.shape, np.float32)
            world.view(ref)[...] = world.view(src) * 2
            world.add_component(e, YUVW4(ref=ref))


@register_system
class Tally(System):
    """Reads either Latent4 or YUVW4 (input_choices) and stores the sum in a Counter."""

    name = "test.tally"

    def input_choices(self) -> tuple[type[Component], ...]:
        return (YUVW4, Latent4)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Counter,)

    def run(self, world: World, eids: Sequence[int]) -> None:
        assert self.source is not None
        for e in eids:
            comp = world.get_component(e, self.source)
            world.add_component(e, Counter(value=int(world.view(comp.ref).sum())))  # type: ignore[attr-defined]


__all__ = ["AddOne", "Counter", "FakeEncode", "Rotate", "Tally"]
