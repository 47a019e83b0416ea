"""Plugins from other distributions: stages, entropy coders and models found through entry points.

A distribution extends vaerans_ecs by declaring entry points in one of three groups (as
numcodecs codecs do), each entry named like the thing it registers::

    [project.entry-points."vaerans_ecs.systems"]
    Negate = "my_plugin.stages:Negate"          # a System subclass
    [project.entry-points."vaerans_ecs.coders"]
    my-coder = "my_plugin.coders:MyCoder"       # an EntropyCoder subclass
    [project.entry-points."vaerans_ecs.models"]
    my-vae = "my_plugin.models:folder"          # a ModelSpec, a model folder, or a callable giving one

Nothing is imported until a name is missing from its registry (or every name is listed), so
plugins cost nothing to programs that do not use them. Streams record which distribution
provided each plugin they name (:func:`providers_of`), so a decoder that lacks one can say which
distribution to install.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["GROUPS", "load_plugins", "missing_plugin_hint", "provider", "providers_of", "refresh"]

log = logging.getLogger(__name__)

#: Registry family -> entry-point group.
GROUPS: dict[str, str] = {
    "systems": "vaerans_ecs.systems",
    "coders": "vaerans_ecs.coders",
    "models": "vaerans_ecs.models",
}

_lock = threading.RLock()
_loaded: set[str] = set()
_providers: dict[tuple[str, str], str] = {}


def _register(family: str, name: str, obj: Any) -> None:
    if family == "systems":
        from vaerans_ecs.core.system import SYSTEMS, register_system

        if name not in SYSTEMS:
            register_system(obj)
    elif family == "coders":
        from vaerans_ecs.systems.entropy import coder_names, register_coder

        if name not in coder_names():
            register_coder(obj)
    else:
        from vaerans_ecs.models import ModelSpec, register_model

        value = obj() if callable(obj) else obj
        if isinstance(value, ModelSpec):
            register_model(value, replace_existing=True)
        else:  # a folder holding encoder.onnx and decoder.onnx
            register_model(name, value, replace_existing=True)


def load_plugins(family: str) -> None:
    """Import and register every entry point of ``family`` ("systems", "coders", "models"), once."""
    with _lock:
        if family in _loaded:
            return
        _loaded.add(family)
        for ep in importlib.metadata.entry_points(group=GROUPS[family]):
            dist = ep.dist.name if ep.dist is not None else ""
            try:
                _register(family, ep.name, ep.load())
            except Exception as exc:  # a broken plugin must not break the codec
                log.warning("plugin %s from %s could not be loaded: %s", ep.name, dist or "?", exc)
                continue
            if dist:
                _providers[(family, ep.name)] = dist


def refresh() -> None:
    """Look for entry points again on the next miss (after installing a plugin in this process)."""
    from vaerans_ecs.core.system import SYSTEMS
    from vaerans_ecs.systems.entropy import CODERS

    with _lock:
        _loaded.clear()
    SYSTEMS.set_loader(lambda: load_plugins("systems"))
    CODERS.set_loader(lambda: load_plugins("coders"))


def provider(family: str, name: str, obj: Any = None) -> str | None:
    """The distribution that provides ``name`` (from its entry point, else its module), or None."""
    found = _providers.get((family, name))
    if found is not None or obj is None:
        return found
    module = getattr(obj, "__module__", "") or ""
    top = module.split(".")[0]
    if not top or top == "vaerans_ecs" or top not in sys.modules:
        return None
    dists = importlib.metadata.packages_distributions().get(top, [])
    return dists[0] if dists else None


def providers_of(items: Iterable[tuple[str, str, Any]]) -> dict[tuple[str, str], str]:
    """``{(family, name): distribution}`` for the plugin-provided items among ``items``."""
    out: dict[tuple[str, str], str] = {}
    for family, name, obj in items:
        dist = provider(family, name, obj)
        if dist:
            out[(family, name)] = dist
    return out


def missing_plugin_hint(family: str, name: str, recorded: dict[tuple[str, str], str] | None = None) -> str:
    """The end of an error message about a missing ``name``: which distribution to install."""
    dist = (recorded or {}).get((family, name))
    if dist:
        return f"; it comes from the plugin distribution {dist!r}: install it (pip install {dist})"
    return f"; install the plugin that provides it (it would register {name!r} in the {GROUPS[family]!r} group)"
