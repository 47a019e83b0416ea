"""Static cost of an ONNX model: multiply-accumulates (MACs) counted from the graph.

The graph's inputs get a concrete shape (e.g. a 512x512 image), ``onnx.shape_inference`` (with
data propagation) fills in every intermediate shape, and each compute-heavy node is counted:

* ``Conv``: ``N * M * prod(out_spatial) * (C / group) * prod(kernel)`` (output-centric);
* ``ConvTranspose``: ``N * C * prod(in_spatial) * (M / group) * prod(kernel)`` (each input value
  is scattered through the whole kernel);
* ``Gemm``: ``M * N * K``; ``MatMul``: ``prod(broadcast batch) * M * N * K`` (numpy semantics,
  1-D operands promoted);
* ``Einsum``: product of the sizes of all distinct letters (one MAC per term of the sum).

Bias additions, activations, normalisations and element-wise ops are not counted (they are a small
fraction of a convolutional model's cost). Nodes whose shapes shape inference could not resolve
are listed in :attr:`MacReport.unresolved`. ``onnx`` is an evaluation/test dependency and is
imported lazily.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaerans_ecs.errors import ModelError

__all__ = ["COUNTED_OPS", "MacReport", "count_macs", "model_macs_per_pixel"]

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum")


@dataclass
class MacReport:
    """MACs of one graph for the given input shapes."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    unresolved: list[str] = field(default_factory=list)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def per_pixel(self, pixels: int) -> float:
        """MACs per image pixel for an image of ``pixels`` pixels."""
        return self.total / pixels


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the environment
        raise ModelError("counting MACs needs the 'onnx' package: pip install onnx") from None
    return onnx


def _dims(type_proto: Any) -> tuple[int, ...] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _set_input_shapes(model: Any, shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    unknown = set(shapes) - {i.name for i in inputs} - {""}
    if unknown:
        raise ModelError(f"no graph input named {sorted(unknown)}; inputs: {[i.name for i in inputs]}")
    used: dict[str, tuple[int, ...]] = {}
    for inp in inputs:
        shape = shapes.get(inp.name)
        if shape is None and len(inputs) == 1 and len(shapes) == 1 and "" in shapes:
            shape = shapes[""]
        if shape is None:
            dims = _dims(inp.type)
            if dims is None:
                raise ModelError(f"input {inp.name!r} has a symbolic shape; give it a concrete shape")
            used[inp.name] = dims
            continue
        dim_protos = inp.type.tensor_type.shape.dim
        if len(dim_protos) != len(shape):
            raise ModelError(f"input {inp.name!r} has rank {len(dim_protos)}, got shape {tuple(shape)}")
        for proto, value in zip(dim_protos, shape, strict=True):
            proto.Clear()
            proto.dim_value = int(value)
        used[inp.name] = tuple(int(v) for v in shape)
    return used


def _attr(node: Any, name: str, default: Any) -> Any:
    onnx = _onnx()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _matmul_macs(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    m, k = a2[-2], a2[-1]
    n = b2[-1]
    batch_a, batch_b = a2[:-2], b2[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch_a = (1,) * (rank - len(batch_a)) + batch_a
    batch_b = (1,) * (rank - len(batch_b)) + batch_b
    batch = math.prod(max(x, y) for x, y in zip(batch_a, batch_b, strict=True))
    return batch * m * n * k


def _einsum_macs(node: Any, shapes: list[tuple[int, ...] | None]) -> int | None:
    raw = _attr(node, "equation", b"")
    eq = raw.decode() if isinstance(raw, bytes) else str(raw)
    lhs = eq.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    if "." in lhs or len(terms) != len(shapes) or any(s is None for s in shapes):
        return None
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        assert shape is not None
        if len(term) != len(shape):
            return None
        for letter, n in zip(term, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), n)
    return math.prod(sizes.values())


def _node_macs(node: Any, shape_of: Mapping[str, tuple[int, ...]]) -> int | None:
    op = node.op_type
    ins: list[tuple[int, ...] | None] = [shape_of.get(n) if n else None for n in node.input]
    outs: list[tuple[int, ...] | None] = [shape_of.get(n) if n else None for n in node.output]
    if op == "Conv":
        w, y = ins[1] if len(ins) > 1 else None, outs[0]
        if w is None or y is None:
            return None
        return y[0] * y[1] * math.prod(y[2:]) * w[1] * math.prod(w[2:])
    if op == "ConvTranspose":
        x, w = ins[0], ins[1] if len(ins) > 1 else None
        if x is None or w is None:
            return None
        return x[0] * x[1] * math.prod(x[2:]) * w[1] * math.prod(w[2:])
    if op == "Gemm":
        a, b = ins[0], ins[1]
        if a is None or b is None:
            return None
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return m * n * k
    if op == "MatMul":
        a, b = ins[0], ins[1]
        if a is None or b is None:
            return None
        return _matmul_macs(a, b)
    if op == "Einsum":
        return _einsum_macs(node, ins)
    return 0


def count_macs(
    model: str | os.PathLike[str] | Any,
    input_shapes: Mapping[str, Sequence[int]] | Sequence[int],
) -> MacReport:
    """Count the MACs of an ONNX model (path or ``ModelProto``) for concrete input shapes.

    ``input_shapes`` maps input names to shapes, or is a single shape for a one-input model.
    """
    onnx = _onnx()
    proto = onnx.load(os.fspath(model)) if isinstance(model, (str, os.PathLike)) else model
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    shapes = dict(input_shapes) if isinstance(input_shapes, Mapping) else {"": tuple(input_shapes)}
    used = _set_input_shapes(work, shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(work, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError & co.
        raise ModelError(f"ONNX shape inference failed: {exc}") from None
    shape_of: dict[str, tuple[int, ...]] = {}
    graph = inferred.graph
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = _dims(vi.type)
        if dims is not None:
            shape_of[vi.name] = dims
    for init in graph.initializer:
        shape_of[init.name] = tuple(int(d) for d in init.dims)
    for node in graph.node:  # Constant nodes holding weights
        if node.op_type == "Constant" and node.output:
            value = _attr(node, "value", None)
            if value is not None and hasattr(value, "dims"):
                shape_of[node.output[0]] = tuple(int(d) for d in value.dims)
    report = MacReport(total=0, input_shapes=used)
    for node in graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        macs = _node_macs(node, shape_of)
        if macs is None:
            report.unresolved.append(node.name or f"{node.op_type}:{node.output[0]}")
            continue
        report.nodes += 1
        report.total += macs
        report.by_op[node.op_type] = report.by_op.get(node.op_type, 0) + macs
    return report


def _single_input(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Name and rank of the model's one data input."""
    onnx = _onnx()
    proto = onnx.load(os.fspath(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one input, found {[i.name for i in inputs]}")
    return inputs[0].name, len(inputs[0].type.tensor_type.shape.dim)


def model_macs_per_pixel(spec: Any, size: tuple[int, int] = (512, 512)) -> dict[str, Any]:
    """Encoder and decoder MACs per image pixel of a :class:`~vaerans_ecs.models.ModelSpec`.

    The encoder gets a ``1x3xHxW`` image, the decoder a ``1xCx(H/stride)x(W/stride)`` latent
    (``C`` from the spec); ``size`` should be a multiple of the stride.
    """
    h, w = size
    s = int(spec.stride)
    pixels = h * w
    enc_name, _ = _single_input(spec.encoder)
    dec_name, _ = _single_input(spec.decoder)
    enc = count_macs(spec.encoder, {enc_name: (1, 3, h, w)})
    dec = count_macs(spec.decoder, {dec_name: (1, int(spec.latent_channels), -(-h // s), -(-w // s))})
    return {
        "model": spec.name,
        "size": [h, w],
        "encoder_macs_per_pixel": enc.per_pixel(pixels),
        "decoder_macs_per_pixel": dec.per_pixel(pixels),
        "encoder_unresolved": enc.unresolved,
        "decoder_unresolved": dec.unresolved,
    }
