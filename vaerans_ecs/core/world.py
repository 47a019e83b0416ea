"""The World: integer entities, their typed components, and the arena backing their tensors."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB
from vaerans_ecs.core.arena import Arena, TensorRef
from vaerans_ecs.core.pipeline import Pipe
from vaerans_ecs.core.system import System
from vaerans_ecs.errors import ImageInputError, MissingComponentError

if TYPE_CHECKING:
    from vaerans_ecs.config import Config

__all__ = ["World"]

C = TypeVar("C", bound=Component)
C1 = TypeVar("C1", bound=Component)
C2 = TypeVar("C2", bound=Component)
C3 = TypeVar("C3", bound=Component)


def _as_rgb_array(img: Any) -> npt.NDArray[np.uint8]:
    """Accept an HxWx3 uint8 array or a PIL image (converted by the documented rules)."""
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
            raise ImageInputError(
                f"spawn_image accepts an HxWx3 uint8 array or a PIL image, got an array of shape "
                f"{img.shape} and dtype {img.dtype}; vaerans_ecs.imaging.to_rgb_uint8() converts "
                "grayscale, alpha, 16-bit and float images"
            )
        return img
    from vaerans_ecs.imaging import is_pil_image, to_rgb_uint8

    if is_pil_image(img):
        return to_rgb_uint8(img)
    raise ImageInputError(
        f"spawn_image accepts an HxWx3 uint8 numpy array or a PIL image, got {type(img).__name__}"
    )


class World:
    """Entities (ints), components stored per type (like esper), and one :class:`Arena`."""

    def __init__(
        self, arena: Arena | None = None, *, arena_bytes: int | None = None, config: Config | None = None
    ) -> None:
        if arena is None:
            arena = Arena(arena_bytes) if arena_bytes is not None else Arena()
        self.arena = arena
        self._config = config
        self._next_id = itertools.count(1)
        self._entities: dict[int, dict[type[Component], Component]] = {}
        self._by_type: dict[type[Component], dict[int, Component]] = {}
        self._history: dict[int, list[System]] = {}
        #: (system name, batch size, seconds) of every system run through a Pipe, in order.
        self.timings: list[tuple[str, int, float]] = []

    @property
    def config(self) -> Config:
        """The configuration systems of this world read (a resource, as in Bevy).

        Given at construction, or else the process-wide one at the time of reading: a library
        call that passes its own configuration never changes what other calls see.
        """
        if self._config is not None:
            return self._config
        from vaerans_ecs.config import get_config

        return get_config()

    # -- entities -------------------------------------------------------------------------------
    def spawn(self, *components: Component) -> int:
        """Create an entity with the given components and return its id."""
        eid = next(self._next_id)
        self._entities[eid] = {}
        self._history[eid] = []
        for comp in components:
            self.add_component(eid, comp)
        return eid

    def spawn_image(self, img: Any, *, copy: bool = True) -> int:
        """Spawn an entity holding an image as :class:`RGB`, copied into the arena.

        ``copy=False`` references a C-contiguous array in place (read-only, see
        :meth:`Arena.adopt`) instead of copying it: for a large image the copy would double the
        memory. The caller must then not modify the array while the world uses it.
        """
        arr = _as_rgb_array(img)
        if not copy and arr.flags.c_contiguous:
            return self.spawn(RGB(ref=self.arena.adopt(arr)))
        return self.spawn(RGB(ref=self.arena.copy_in(arr)))

    def spawn_batch_images(self, images: Iterable[Any], *, copy: bool = True) -> list[int]:
        """Spawn many images; equal shapes share one contiguous (N, H, W, 3) block in the arena.

        ``copy=False`` references each C-contiguous array in place instead (see :meth:`spawn_image`).
        """
        arrays = [_as_rgb_array(img) for img in images]
        if not copy:
            return [self.spawn_image(arr, copy=False) for arr in arrays]
        eids: list[int] = [0] * len(arrays)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, arr in enumerate(arrays):
            groups.setdefault(arr.shape, []).append(i)
        for shape, idx in groups.items():
            block = self.arena.alloc_tensor((len(idx), *shape), np.uint8)
            view = self.arena.view(block)
            for j, i in enumerate(idx):
                view[j] = arrays[i]
                eids[i] = self.spawn(RGB(ref=self.arena.subref(block, j)))
        return eids

    def destroy_entity(self, eid: int) -> None:
        """Remove an entity and all its components (its arena memory is freed on ``clear()``)."""
        comps = self._entities.pop(self._check(eid))
        for ctype in comps:
            del self._by_type[ctype][eid]
        del self._history[eid]

    @property
    def entities(self) -> list[int]:
        """Ids of all live entities, in creation order."""
        return list(self._entities)

    def _check(self, eid: int) -> int:
        if eid not in self._entities:
            raise MissingComponentError(f"entity {eid} does not exist")
        return eid

    # -- components -----------------------------------------------------------------------------
    def add_component(self, eid: int, component: Component) -> None:
        """Attach ``component`` to ``eid``, replacing one of the same type."""
        if not isinstance(component, Component):
            raise MissingComponentError(f"add_component expects a Component, got {type(component).__name__}")
        ctype = type(component)
        self._entities[self._check(eid)][ctype] = component
        self._by_type.setdefault(ctype, {})[eid] = component

    def get_component(self, eid: int, ctype: type[C]) -> C:
        """Return the ``ctype`` component of ``eid``; raises :class:`MissingComponentError`."""
        comps = self._entities[self._check(eid)]
        try:
            comp = comps[ctype]
        except KeyError:
            have = ", ".join(sorted(t.__name__ for t in self._entities[eid])) or "none"
            raise MissingComponentError(f"entity {eid} has no {ctype.__name__} (has: {have})") from None
        assert isinstance(comp, ctype)
        return comp

    def has_component(self, eid: int, ctype: type[Component]) -> bool:
        """True when ``eid`` exists and has a ``ctype`` component."""
        comps = self._entities.get(eid)
        return comps is not None and ctype in comps

    def remove_component(self, eid: int, ctype: type[Component]) -> None:
        """Detach the ``ctype`` component of ``eid`` (missing ones raise)."""
        self.get_component(eid, ctype)
        del self._entities[eid][ctype]
        del self._by_type[ctype][eid]

    def component_types(self, eid: int) -> list[type[Component]]:
        """Types of the components ``eid`` has."""
        return list(self._entities[self._check(eid)])

    @overload
    def query(self, c1: type[C1], /) -> Iterator[tuple[int, tuple[C1]]]: ...
    @overload
    def query(self, c1: type[C1], c2: type[C2], /) -> Iterator[tuple[int, tuple[C1, C2]]]: ...
    @overload
    def query(
        self, c1: type[C1], c2: type[C2], c3: type[C3], /
    ) -> Iterator[tuple[int, tuple[C1, C2, C3]]]: ...
    @overload
    def query(self, *ctypes: type[Component]) -> Iterator[tuple[int, tuple[Component, ...]]]: ...
    def query(self, *ctypes: type[Component]) -> Iterator[tuple[int, tuple[Component, ...]]]:
        """Yield ``(eid, (c1, c2, ...))`` for entities having all ``ctypes``, in creation order."""
        if not ctypes:
            return
        stores = [self._by_type.get(t, {}) for t in ctypes]
        smallest = min(stores, key=len)
        for eid in [e for e in self._entities if e in smallest]:
            if all(eid in s for s in stores):
                yield eid, tuple(s[eid] for s in stores)

    # -- tensors and pipelines ------------------------------------------------------------------
    def alloc(self, shape: Sequence[int], dtype: npt.DTypeLike) -> TensorRef:
        """Allocate an uninitialised tensor in the arena."""
        return self.arena.alloc_tensor(tuple(shape), dtype)

    def view(self, ref: TensorRef) -> npt.NDArray[Any]:
        """Zero-copy numpy view of ``ref``."""
        return self.arena.view(ref)

    def pipe(self, eids: int | Sequence[int]) -> Pipe:
        """Start a fluent pipeline over one entity or a batch of entities."""
        batch = (eids,) if isinstance(eids, int) else tuple(eids)
        for eid in batch:
            self._check(eid)
        return Pipe(self, batch, base=self.common_components(batch))

    def common_components(self, eids: Sequence[int]) -> frozenset[type[Component]]:
        """Component types that every entity in ``eids`` has."""
        return frozenset(t for t, store in self._by_type.items() if store and all(e in store for e in eids))

    def lacking(
        self, eids: Sequence[int], ctypes: Sequence[type[Component]]
    ) -> tuple[int, list[type[Component]]] | None:
        """First entity of ``eids`` missing one of ``ctypes``, with what it lacks; None if none."""
        for ctype in ctypes:
            store = self._by_type.get(ctype, {})
            for eid in eids:
                if eid not in store:
                    return eid, [c for c in ctypes if not self.has_component(eid, c)]
        return None

    def record(self, eids: Sequence[int], system: System, seconds: float = 0.0) -> None:
        """Append ``system`` to the history of ``eids`` (read by the serializer) and log its time."""
        self.timings.append((system.name, len(eids), seconds))
        for eid in eids:
            self._history[eid].append(system)

    def set_history(self, eid: int, systems: Sequence[System]) -> None:
        """Replace the recorded history of ``eid`` (e.g. to retry the last stages with new settings)."""
        self._history[self._check(eid)] = list(systems)

    def history(self, eid: int) -> list[System]:
        """Systems that ran on ``eid`` through pipes, in order."""
        return list(self._history[self._check(eid)])

    def clear(self) -> None:
        """Destroy every entity and reset the arena (all TensorRefs become stale)."""
        self._entities.clear()
        self._by_type.clear()
        self._history.clear()
        self.timings.clear()
        self.arena.reset()
