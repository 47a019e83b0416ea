"""Name -> class registries (systems, entropy coders, models), in the style of numcodecs.

A registered class is found by name, so pipelines can be written as data (TOML, stream headers)
and rebuilt with ``from_config``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from vaerans_ecs.errors import RegistryError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to registered objects of one family (``what`` names the family)."""

    def __init__(self, what: str, loader: Callable[[], None] | None = None, *, family: str = "") -> None:
        self.what = what
        #: Plugin family of the registered things ("systems", "coders", "models"; "" for none).
        self.family = family
        self._items: dict[str, T] = {}
        #: Run once, when a name is first missed or all names are listed (loads plugins lazily).
        self._loader = loader

    def set_loader(self, loader: Callable[[], None] | None) -> None:
        """Arm ``loader`` to run once more on the next miss (e.g. after installing a plugin)."""
        self._loader = loader

    def _load(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader()

    def _miss(self, name: str) -> bool:
        """After a failed lookup: load the plugins once; True when ``name`` is now known."""
        self._load()
        return name in self._items

    def add(self, name: str, item: T, *, replace: bool = False) -> T:
        """Register ``item`` under ``name``; re-registering a different object needs ``replace``."""
        if not replace and name in self._items and self._items[name] is not item:
            raise RegistryError(f"{self.what} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """Class decorator form of :meth:`add`."""

        def register(item: T) -> T:
            return self.add(name, item)

        return register

    def get(self, name: str) -> T:
        """Look ``name`` up; unknown names raise :class:`RegistryError` listing the known ones."""
        if name in self._items or self._miss(name):
            return self._items[name]
        known = ", ".join(sorted(self._items)) or "none"
        raise RegistryError(f"unknown {self.what} {name!r}; registered: {known}", family=self.family, name=name)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (mainly for tests and plugins)."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        """Registered names (plugins included), sorted."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or (isinstance(name, str) and self._miss(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
