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

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

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
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"unknown {self.what} {name!r}; registered: {known}") from None

    def remove(self, name: str) -> None:
        """Unregister ``name`` (mainly for tests and plugins)."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
