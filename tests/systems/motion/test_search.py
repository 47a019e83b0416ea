"""Motion search finds known motion; the stages are registered and swappable by name."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sequence.conftest import canvas
from vaerans_ecs.core.system import SYSTEMS, system_from_config
from vaerans_ecs.errors import ConfigError
from vaerans_ecs.systems.motion.search import estimate_motion, luma, pad_to_blocks
from vaerans_ecs.systems.motion.stages import BlockMotion


@pytest.mark.parametrize(("dy", "dx", "subpel"), [(3, -5, 1), (-12, 9, 2), (20, 17, 4), (0, 0, 2)])
def test_global_shift_is_found(dy: int, dx: int, subpel: int) -> None:
    big = canvas(160, 200, 4)
    cur = big[40:104, 48:128]
    ref = big[40 + dy: 104 + dy, 48 + dx: 128 + dx]
    mv = estimate_motion(pad_to_blocks(luma(cur), 16), pad_to_blocks(luma(ref), 16), block=16, subpel=subpel)
    inner = mv[1:-1, 1:-1].reshape(-1, 2)  # the border blocks may see the edge
    assert np.all(inner == [-dy * subpel, -dx * subpel])  # cur[p] = ref[p + v]


def test_half_pel_motion_is_found_at_half_pel() -> None:
    big = canvas(128, 160, 6).astype(np.int32)
    # the reference is the average of two pixel-shifted copies: a half-pel displacement
    ref = ((big[:-1] + big[1:] + 1) >> 1)[16:80, 16:112].astype(np.uint8)
    cur = big[16:80, 16:112].astype(np.uint8)
    mv = estimate_motion(pad_to_blocks(luma(cur), 16), pad_to_blocks(luma(ref), 16), block=16, subpel=2, lam=0)
    assert np.median(mv[1:-1, 1:-1, 0]) == -1 and np.median(mv[1:-1, 1:-1, 1]) == 0


def test_stages_are_registered_and_rebuilt_from_config() -> None:
    for name in ("BlockMotion", "MotionCompensate", "TransformResidual", "PixelResidual", "SceneCut",
                 "ConstantQuality", "TargetRate", "FixedStep"):
        cls = SYSTEMS.get(name)
        stage = cls()
        assert system_from_config(stage.get_config()) == stage
    with pytest.raises(ConfigError):
        BlockMotion(block=12)
    with pytest.raises(ConfigError):
        BlockMotion(subpel=3)
