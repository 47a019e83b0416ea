"""MACs counted from ONNX graphs with known costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaerans_ecs.errors import ModelError
from vaerans_ecs.models import ModelSpec

onnx = pytest.importorskip("onnx")

from vaerans_ecs.eval.macs import count_macs, model_macs_per_pixel  # noqa: E402


def tiny_graph() -> Any:
    """Conv 3->8 3x3 | ConvTranspose 8->4 2x2 s2 | grouped Conv 4->4 3x3 g2 | Flatten | Gemm | MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    def w(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["y1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["y1"], ["a1"]),
        helper.make_node("ConvTranspose", ["a1", "w2"], ["y2"], strides=[2, 2], kernel_shape=[2, 2]),
        helper.make_node("Conv", ["y2", "w3"], ["y3"], pads=[1, 1, 1, 1], group=2, kernel_shape=[3, 3]),
        helper.make_node("Flatten", ["y3"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w4"], ["g"]),
        helper.make_node("MatMul", ["g", "w5"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])],
        initializer=[w("w1", 8, 3, 3, 3), w("w2", 8, 4, 2, 2), w("w3", 4, 2, 3, 3), w("w4", 4096, 10), w("w5", 10, 5)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_tiny_graph_hand_counted(tmp_path: Path) -> None:
    conv1 = 8 * 16 * 16 * 3 * 9  # out channels * out pixels * in channels * kernel
    convt = 8 * 16 * 16 * 4 * 4  # in channels * in pixels * out channels * kernel
    grouped = 4 * 32 * 32 * 2 * 9  # in channels per group = 2
    gemm = 1 * 10 * 4096
    matmul = 1 * 5 * 10
    report = count_macs(tiny_graph(), {"x": (1, 3, 16, 16)})
    assert report.by_op == {"Conv": conv1 + grouped, "ConvTranspose": convt, "Gemm": gemm, "MatMul": matmul}
    assert report.total == conv1 + convt + grouped + gemm + matmul == 202802
    assert report.unresolved == []
    assert report.nodes == 5
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_graph(), path)
    assert count_macs(path, (1, 3, 16, 16)).total == 202802  # single-input shorthand, from a file


def test_batch_scales_macs() -> None:
    one = count_macs(tiny_graph(), {"x": (1, 3, 16, 16)})
    # Gemm and MatMul see the flattened batch as M.
    assert count_macs(tiny_graph(), {"x": (2, 3, 16, 16)}).total == 2 * one.total


def test_bad_input_names_and_ranks() -> None:
    with pytest.raises(ModelError, match="no graph input"):
        count_macs(tiny_graph(), {"image": (1, 3, 16, 16)})
    with pytest.raises(ModelError, match="rank"):
        count_macs(tiny_graph(), {"x": (1, 3, 16)})


def test_synthetic_vae_macs_per_pixel(synthetic_model: ModelSpec, make_synthetic_model: Any) -> None:
    # 1x1 conv of the stride^2 * 3 block to 4 channels: 4 * 3 * 64 MACs per 64 pixels = 12 per pixel.
    info = model_macs_per_pixel(synthetic_model, (64, 64))
    assert info["encoder_macs_per_pixel"] == pytest.approx(12.0)
    assert info["decoder_macs_per_pixel"] == pytest.approx(12.0)
    # The smooth variant adds a depthwise 3x3 blur (3 channels * 9 taps per pixel) on each side.
    smooth = make_synthetic_model("synthetic-macs-smooth", stride=8, smooth=True)
    info = model_macs_per_pixel(smooth, (64, 64))
    assert info["encoder_macs_per_pixel"] == pytest.approx(12.0 + 27.0)
    assert info["decoder_macs_per_pixel"] == pytest.approx(12.0 + 27.0)
