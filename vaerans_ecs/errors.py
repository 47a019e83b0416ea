"""Exception hierarchy: every error the library raises on purpose derives from :class:`VaeransError`."""

from __future__ import annotations

__all__ = [
    "ArenaExhaustedError",
    "BitstreamError",
    "ComponentError",
    "ConfigError",
    "ImageInputError",
    "MissingComponentError",
    "ModelError",
    "OnnxRuntimeInstallError",
    "RegistryError",
    "StaleReferenceError",
    "VaeransError",
]


class VaeransError(ValueError):
    """Base class of every vaerans_ecs error (a ValueError, so generic handlers still catch it)."""


class StaleReferenceError(VaeransError):
    """A TensorRef was used after its arena was reset (its generation no longer matches)."""


class ArenaExhaustedError(VaeransError, MemoryError):
    """The arena cannot satisfy an allocation within its configured maximum size."""


class ComponentError(VaeransError):
    """A component was constructed with an invalid shape, dtype or metadata."""


class MissingComponentError(VaeransError, KeyError):
    """An entity lacks a component that a system or query needs."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class RegistryError(VaeransError, KeyError):
    """A name is not registered (system, entropy coder, model), or registered twice.

    ``family`` and ``name`` say what was looked up, when the error is about a missing name.
    """

    def __init__(self, message: str, *, family: str = "", name: str = "") -> None:
        super().__init__(message)
        self.family = family
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(VaeransError):
    """A configuration file or value is invalid; the message names the file and key."""


class BitstreamError(VaeransError):
    """A compressed stream is malformed, truncated, corrupted or from an unsupported version."""


class ImageInputError(VaeransError):
    """An input image has a type, mode, dtype or shape the codec does not accept."""


class ModelError(VaeransError):
    """A model is missing, malformed, or does not match the stream being decoded."""


class OnnxRuntimeInstallError(ModelError, ImportError):
    """onnxruntime is missing, broken, or installed twice (CPU and GPU packages together)."""
