"""vaerans_ecs: learned image compression (VAE + classical entropy coding) as an ECS.

``compress(img) -> bytes`` and ``decompress(data) -> ndarray`` are the one-liners; the
``World`` / ``Pipe`` API composes any transform, quantizer and entropy coder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vaerans_ecs.core import Arena, Pipe, System, TensorRef, World, register_system
from vaerans_ecs.errors import (
    ArenaExhaustedError,
    BitstreamError,
    ConfigError,
    ImageInputError,
    MissingComponentError,
    ModelError,
    StaleReferenceError,
    VaeransError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from vaerans_ecs.api import compress, compress_batch, decompress, decompress_batch
    from vaerans_ecs.sequence import compress_sequence, decompress_frame, decompress_sequence, inspect_sequence

_LAZY = {"compress", "compress_batch", "decompress", "decompress_batch"}
_SEQUENCE = {"compress_sequence", "decompress_frame", "decompress_sequence", "inspect_sequence"}


def __getattr__(name: str) -> Any:
    """Load the codec (and onnxruntime) only when the one-liners are first used."""
    if name in _LAZY:
        from vaerans_ecs import api

        return getattr(api, name)
    if name in _SEQUENCE:
        from vaerans_ecs import sequence

        return getattr(sequence, name)
    raise AttributeError(f"module 'vaerans_ecs' has no attribute {name!r}")


__all__ = [
    "Arena",
    "ArenaExhaustedError",
    "BitstreamError",
    "ConfigError",
    "ImageInputError",
    "MissingComponentError",
    "ModelError",
    "Pipe",
    "StaleReferenceError",
    "System",
    "TensorRef",
    "VaeransError",
    "World",
    "__version__",
    "compress",
    "compress_batch",
    "compress_sequence",
    "decompress",
    "decompress_batch",
    "decompress_frame",
    "decompress_sequence",
    "inspect_sequence",
    "register_system",
]
