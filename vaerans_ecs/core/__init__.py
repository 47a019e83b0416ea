"""Core ECS: arena, world, systems, pipe, registry and bitstream serialization."""

from vaerans_ecs.core.arena import Arena, TensorRef
from vaerans_ecs.core.pipeline import Pipe
from vaerans_ecs.core.registry import Registry
from vaerans_ecs.core.system import (
    SYSTEMS,
    Mode,
    System,
    register_bridge,
    register_system,
    system_from_config,
)
from vaerans_ecs.core.world import World

__all__ = [
    "SYSTEMS",
    "Arena",
    "Mode",
    "Pipe",
    "Registry",
    "System",
    "TensorRef",
    "World",
    "register_bridge",
    "register_system",
    "system_from_config",
]
