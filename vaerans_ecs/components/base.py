"""Component base class: a frozen pydantic model, optionally wrapping TensorRefs it validates."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.errors import ComponentError

__all__ = ["Component", "check_ref"]


def check_ref(
    ref: TensorRef,
    *,
    what: str,
    ndim: int | None = None,
    dtypes: tuple[str, ...] | None = None,
    dims: dict[int, int] | None = None,
) -> None:
    """Raise :class:`ComponentError` unless ``ref`` has the given rank, dtype and fixed axes."""
    if ndim is not None and len(ref.shape) != ndim:
        raise ComponentError(f"{what}: expected a {ndim}-d tensor, got shape {ref.shape}")
    if dtypes is not None and np.dtype(ref.dtype).name not in dtypes:
        raise ComponentError(f"{what}: expected dtype {' or '.join(dtypes)}, got {np.dtype(ref.dtype).name}")
    for axis, size in (dims or {}).items():
        if ref.shape[axis] != size:
            raise ComponentError(f"{what}: expected size {size} on axis {axis}, got shape {ref.shape}")
    if any(s <= 0 for s in ref.shape):
        raise ComponentError(f"{what}: empty dimension in shape {ref.shape}")


class Component(BaseModel):
    """Base of all components: immutable, validated on construction, comparable by value."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise ComponentError(f"invalid {type(self).__name__}: {details}") from None

    def _validate(self) -> None:
        """Override to check shapes/dtypes; raise :class:`ComponentError` on mismatch."""

    @model_validator(mode="after")
    def _run_validate(self) -> Any:
        self._validate()
        return self
