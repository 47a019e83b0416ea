"""Evaluation harness: rate-distortion and speed of vaerans pipelines against Pillow codecs.

Entry points: :func:`main` (``vaerans eval ...`` / ``python -m vaerans_ecs.eval``),
:func:`run_eval` + :func:`write_report` for programmatic use, :func:`bd_rate` (Bjontegaard) and
:func:`count_macs` (static MACs of an ONNX graph). Plots need matplotlib and MACs need onnx
(the ``eval`` extra); both are imported only when used.
"""

from vaerans_ecs.eval.bdrate import bd_quality, bd_rate
from vaerans_ecs.eval.cli import main
from vaerans_ecs.eval.codecs import DEFAULT_GRIDS, Codec, parse_codec
from vaerans_ecs.eval.harness import EvalConfig, PointResult, run_eval
from vaerans_ecs.eval.macs import count_macs, model_macs_per_pixel
from vaerans_ecs.eval.report import write_report

__all__ = [
    "DEFAULT_GRIDS",
    "Codec",
    "EvalConfig",
    "PointResult",
    "bd_quality",
    "bd_rate",
    "count_macs",
    "main",
    "model_macs_per_pixel",
    "parse_codec",
    "run_eval",
    "write_report",
]
