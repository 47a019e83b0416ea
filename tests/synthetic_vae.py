"""A tiny deterministic ONNX "VAE" built with ``onnx.helper`` (no torch), for tests.

Encoder: ``x - centre`` -> SpaceToDepth(stride) -> 1x1 conv with a fixed 4 x (3*stride^2) matrix
``W`` whose rows are orthonormal: per-block mean luminance, two per-block colour differences
(R-G and R+G-2B) and a left-minus-right luminance gradient. Decoder: 1x1 conv with ``W.T`` (the
pseudo-inverse) -> DepthToSpace(stride, DCR) -> ``+ centre``. So decode(encode(x)) is the
projection of every stride x stride block onto those 4 patterns: a block-mean colour image with
a horizontal gradient, exactly reproducible in numpy with :func:`reference_roundtrip`.

With ``smooth=True`` a 3x3 binomial blur (zero padded) runs before SpaceToDepth and after
DepthToSpace, giving the model a receptive field across block borders like a real VAE (used to
test tiling). The raw latent of channel 0 spans about +-0.5*sqrt(3*stride^2); ``latent_scale``
(metadata) maps it to roughly +-3.5 for stride 8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["build_synthetic_vae", "projection_matrix", "reference_roundtrip"]

OPSET = 17
IR_VERSION = 8


def projection_matrix(stride: int) -> npt.NDArray[np.float32]:
    """The encoder's (4, 3*stride^2) matrix, in SpaceToDepth channel order ``(by*s + bx)*3 + c``."""
    if stride < 2 or stride % 2:
        raise ValueError("stride must be even and >= 2")
    s = stride
    rows = np.zeros((4, s, s, 3), dtype=np.float64)
    rows[0] = 1.0
    rows[1, :, :, 0], rows[1, :, :, 1] = 1.0, -1.0
    rows[2, :, :, 0], rows[2, :, :, 1], rows[2, :, :, 2] = 1.0, 1.0, -2.0
    sign = np.where(np.arange(s) < s // 2, 1.0, -1.0)
    rows[3] = sign[None, :, None]
    flat = rows.reshape(4, -1)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    return flat.astype(np.float32)


def _blur_kernel() -> npt.NDArray[np.float32]:
    k1 = np.array([1.0, 2.0, 1.0], dtype=np.float32) / 4.0
    k2 = np.outer(k1, k1).astype(np.float32)
    return np.repeat(k2[None, None], 3, axis=0)  # (3, 1, 3, 3) depthwise


def build_synthetic_vae(
    out_dir: str | Path,
    *,
    stride: int = 8,
    smooth: bool = False,
    input_range: tuple[float, float] = (0.0, 1.0),
    latent_scale: float | None = None,
    latent_shift: float = 0.0,
    step_min: float = 0.05,
    step_max: float = 2.0,
    model_name: str | None = None,
    metadata: bool = True,
    extra_metadata: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write ``encoder.onnx`` and ``decoder.onnx`` to ``out_dir``; return their paths.

    ``latent_shift`` is added to the raw latent inside the encoder graph (and removed in the
    decoder), so declaring the same value in the metadata makes the codec latent centred.
    ``metadata=False`` writes no ``vaerans.*`` props (to test the defaults).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = stride
    lo, hi = input_range
    centre = np.float32((lo + hi) / 2.0)
    w = projection_matrix(s)
    if latent_scale is None:
        latent_scale = 3.5 / (0.5 * float(np.sqrt(3 * s * s)))
    name = model_name or f"synthetic-s{s}{'-smooth' if smooth else ''}"
    meta = {
        "vaerans.stride": str(s),
        "vaerans.latent_channels": "4",
        "vaerans.input_range": f"{lo:g},{hi:g}",
        "vaerans.latent_scale": repr(float(latent_scale)),
        "vaerans.latent_shift": repr(float(latent_shift)),
        "vaerans.step_min": repr(float(step_min)),
        "vaerans.step_max": repr(float(step_max)),
        "vaerans.model_name": name,
        "vaerans.recipe": f"synthetic orthonormal projection, stride {s}, smooth={smooth}",
        **(extra_metadata or {}),
    }
    c_const = numpy_helper.from_array(np.array(centre, dtype=np.float32), "centre")
    shift_const = numpy_helper.from_array(np.array(latent_shift, dtype=np.float32), "shift")
    blur = numpy_helper.from_array(_blur_kernel(), "blur")

    # -- encoder
    enc_w = numpy_helper.from_array(w.reshape(4, 3 * s * s, 1, 1), "enc_w")
    nodes = [helper.make_node("Sub", ["image", "centre"], ["centred"])]
    src = "centred"
    if smooth:
        nodes.append(
            helper.make_node("Conv", [src, "blur"], ["blurred"], group=3, pads=[1, 1, 1, 1], kernel_shape=[3, 3])
        )
        src = "blurred"
    nodes += [
        helper.make_node("SpaceToDepth", [src], ["blocks"], blocksize=s),
        helper.make_node("Conv", ["blocks", "enc_w"], ["proj"]),
        helper.make_node("Add", ["proj", "shift"], ["latent"]),
    ]
    enc_graph = helper.make_graph(
        nodes,
        "synthetic_encoder",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", 4, "h", "w"])],
        initializer=[c_const, enc_w, shift_const, *([blur] if smooth else [])],
    )

    # -- decoder
    dec_w = numpy_helper.from_array(np.ascontiguousarray(w.T).reshape(3 * s * s, 4, 1, 1), "dec_w")
    nodes = [
        helper.make_node("Sub", ["latent", "shift"], ["unshifted"]),
        helper.make_node("Conv", ["unshifted", "dec_w"], ["blocks"]),
        helper.make_node("DepthToSpace", ["blocks"], ["pixels"], blocksize=s, mode="DCR"),
    ]
    src = "pixels"
    if smooth:
        nodes.append(
            helper.make_node("Conv", [src, "blur"], ["smoothed"], group=3, pads=[1, 1, 1, 1], kernel_shape=[3, 3])
        )
        src = "smoothed"
    nodes.append(helper.make_node("Add", [src, "centre"], ["image"]))
    dec_graph = helper.make_graph(
        nodes,
        "synthetic_decoder",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", 4, "h", "w"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        initializer=[c_const, dec_w, shift_const, *([blur] if smooth else [])],
    )

    paths = []
    for role, graph in (("encoder", enc_graph), ("decoder", dec_graph)):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vaerans-tests")
        model.ir_version = IR_VERSION
        if metadata:
            helper.set_model_props(model, {"vaerans.role": role, **meta})
        onnx.checker.check_model(model)
        path = out / f"{role}.onnx"
        onnx.save_model(model, str(path))
        paths.append(path)
    return paths[0], paths[1]


def reference_roundtrip(img: npt.NDArray[np.uint8], stride: int = 8) -> npt.NDArray[np.uint8]:
    """What the (non-smooth) synthetic model's encode+decode gives for a uint8 image, in numpy.

    Sides are padded to a multiple of ``stride`` the way the codec does (reflect, or symmetric /
    edge when the image is too small), then cropped back.
    """
    h, w, _ = img.shape
    s = stride
    ph, pw = (-h) % s, (-w) % s

    def mode(n: int, pad: int) -> str:
        return "reflect" if pad < n else "symmetric" if pad <= n else "edge"

    x = img.astype(np.float64) / 255.0
    x = np.pad(x, ((0, ph), (0, 0), (0, 0)), mode=mode(h, ph))  # type: ignore[call-overload]
    x = np.pad(x, ((0, 0), (0, pw), (0, 0)), mode=mode(w, pw))  # type: ignore[call-overload]
    hh, ww = x.shape[0] // s, x.shape[1] // s
    blocks = x.reshape(hh, s, ww, s, 3).transpose(0, 2, 1, 3, 4).reshape(hh, ww, -1)  # (by, bx, c) order
    m = projection_matrix(s).astype(np.float64)
    centred = blocks - 0.5
    rec = centred @ m.T @ m + 0.5
    y = rec.reshape(hh, ww, s, s, 3).transpose(0, 2, 1, 3, 4).reshape(hh * s, ww * s, 3)
    result: npt.NDArray[np.uint8] = np.rint(np.clip(y[:h, :w], 0.0, 1.0) * 255.0).astype(np.uint8)
    return result
