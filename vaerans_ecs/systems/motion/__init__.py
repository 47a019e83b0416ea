"""Inter-frame stages of image sequences: motion search and compensation, residual coders, control.

Frames are entities; each stage is a registered :class:`~vaerans_ecs.core.system.System`
(swap one by passing another to :class:`vaerans_ecs.sequence.SequenceWriter`):

* :class:`BlockMotion` (search; its vectors are the ``motion`` section), :class:`MotionCompensate`
  (integer bilinear sub-pel prediction with OBMC), :class:`TransformResidual` (lossy, the wavelet
  transform coder) and :class:`PixelResidual` (lossless / l-infinity, the pixel coder with the
  prediction as base): :mod:`.stages`;
* :class:`SceneCut` and the rate controllers :class:`ConstantQuality`, :class:`TargetRate`,
  :class:`FixedStep` (encoder-only): :mod:`.control`.
"""

from vaerans_ecs.systems.motion.components import (
    CodingParams,
    CutScore,
    FrameCode,
    FrameMeta,
    MotionField,
    Prediction,
    Reference,
)
from vaerans_ecs.systems.motion.control import (
    ConstantQuality,
    FixedStep,
    FrameStats,
    RateControl,
    SceneCut,
    TargetRate,
)
from vaerans_ecs.systems.motion.stages import (
    BlockMotion,
    MotionCompensate,
    PixelResidual,
    PriorMotion,
    TransformResidual,
)

__all__ = [
    "BlockMotion",
    "CodingParams",
    "ConstantQuality",
    "CutScore",
    "FixedStep",
    "FrameCode",
    "FrameMeta",
    "FrameStats",
    "MotionCompensate",
    "MotionField",
    "PixelResidual",
    "Prediction",
    "PriorMotion",
    "RateControl",
    "Reference",
    "SceneCut",
    "TargetRate",
    "TransformResidual",
]
