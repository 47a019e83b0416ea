"""Components of frame entities in a sequence: the reference, the motion field, the prediction."""

from __future__ import annotations

from vaerans_ecs.components.base import Component, check_ref
from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.errors import ComponentError

__all__ = [
    "CodingParams",
    "CutScore",
    "FrameCode",
    "FrameMeta",
    "FutureReference",
    "MotionField",
    "Prediction",
    "Reference",
]


class Reference(Component):
    """The decoded previous frame that this frame is predicted from: HxWxC uint8."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="Reference", ndim=3, dtypes=("uint8",))


class FutureReference(Reference):
    """A B-frame's second reference: the next anchor frame in display order, already decoded."""


class MotionField(Component):
    """One (dy, dx) vector per ``block`` x ``block`` block, in 1/``subpel`` pixels: (ny, nx, 2) int32."""

    ref: TensorRef
    block: int
    subpel: int

    def _validate(self) -> None:
        check_ref(self.ref, what="MotionField", ndim=3, dtypes=("int32",), dims={2: 2})
        if self.block < 1 or self.subpel not in (1, 2, 4, 8):
            raise ComponentError(f"MotionField: block {self.block} / subpel {self.subpel} not supported")


class Prediction(Component):
    """Motion-compensated prediction of the frame from its reference: HxWxC uint8."""

    ref: TensorRef

    def _validate(self) -> None:
        check_ref(self.ref, what="Prediction", ndim=3, dtypes=("uint8",))


class CodingParams(Component):
    """What rate control chose for this frame: the residual's quantiser ``step`` (lossy modes)."""

    step: float

    def _validate(self) -> None:
        if not self.step > 0:
            raise ComponentError(f"CodingParams: step must be positive, got {self.step}")


class FrameCode(Component):
    """A stage's coded bytes for this frame (the residual coder's payload)."""

    data: bytes


class FrameMeta(Component):
    """A frame's place and size in its sequence."""

    number: int
    height: int
    width: int
    channels: int = 3

    def _validate(self) -> None:
        if self.number < 0 or self.height < 1 or self.width < 1 or not 1 <= self.channels <= 4:
            size = f"{self.height}x{self.width}x{self.channels}"
            raise ComponentError(f"FrameMeta: invalid frame {self.number} of {size}")


class CutScore(Component):
    """Scene-cut detection: how badly the reference predicts the frame (0 = perfectly), and the verdict."""

    score: float
    cut: bool
