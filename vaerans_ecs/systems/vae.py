"""ONNX VAE systems: ``RGB -> Latent4 + ImageInfo`` (encode) and ``Latent4 -> ReconRGB`` (decode).

Both resolve their model through :func:`vaerans_ecs.models.get_model` at run time and share one
onnxruntime session per (file, providers, threads) process-wide (:func:`vaerans_ecs.runtime.get_session`).

* Pixels: ``uint8 -> lo + v / 255 * (hi - lo)`` with the model's ``input_range``; the decoder
  output is clipped to that range and mapped back with rounding.
* Latent: ``z = (raw - latent_shift) * latent_scale`` after the encoder, the inverse before the
  decoder; ``Latent4`` always holds ``z``.
* Shapes: sides that are not a multiple of the model stride are padded at the bottom/right by
  reflection (``symmetric``, then ``edge`` for images too small to reflect) and the
  reconstruction is cropped back to the exact size recorded in ``ImageInfo``.
* Batching: entities are grouped by image size (encode) or by model, latent and output size
  (decode); each group runs as one inference (split only to respect the tiling pixel budget).
* Tiling: when ``H*W > tile_size**2`` (``[runtime] tile_size``, 0 = never), the image is encoded
  in windows of ``tile_size`` plus ``tile_overlap`` context pixels (rounded up to the stride) on
  each side, keeping only each window's centre latent; decoding runs overlapping latent windows
  and blends them with linear (feathered) weights. Windows of one image all have the same size
  and run as batches of up to ``2 * tile_size**2`` pixels.
* Memory of tiled images (why: an 8192x8192 image must code in a few hundred MB beyond itself):
  pixels are converted to float one window batch at a time; the encoder writes each window's
  core latent directly; the decoder normalises the separable blending weights per axis up front
  (so no weight-sum image is needed), finalises each column block as soon as the next window has
  started, writes it to uint8 at once, and carries only the rows shared with the next row of
  windows in float (``3 x overlap rows x width``). The decoded image gets a buffer of its own
  (:meth:`~vaerans_ecs.core.arena.Arena.alloc_dedicated`), so ``decompress`` returns it without a
  copy, and the last run of each image releases onnxruntime's arena (``release_memory``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.image import RGB, ImageInfo, ReconRGB
from vaerans_ecs.components.latent import Latent4
from vaerans_ecs.core.container import register_section
from vaerans_ecs.core.stream import Geometry, StreamContext
from vaerans_ecs.core.system import Mode, StageKind, System, register_system
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError, ModelError
from vaerans_ecs.models import ModelSpec, get_model, list_models, registered_model
from vaerans_ecs.runtime import get_session, normalize_providers, run_session

__all__ = [
    "OnnxVAEDecode",
    "OnnxVAEEncode",
    "Window",
    "axis_windows",
    "blend_weights",
    "feather_weights",
    "is_tiled",
    "pad_indices",
    "pad_mode",
]

F32 = npt.NDArray[np.float32]

#: Bytes of the decoder fingerprint a stream records (the ``model`` section).
FINGERPRINT_BYTES = 8
register_section(0x03, "model", "OnnxVAEEncode: the fingerprint of the decoder the stream needs")


# -- padding ------------------------------------------------------------------------------------


def pad_mode(n: int, pad: int) -> str:
    """numpy pad mode used to extend a side of ``n`` pixels by ``pad``: reflect, symmetric or edge."""
    if pad < n:
        return "reflect"
    if pad <= n:
        return "symmetric"
    return "edge"


def pad_indices(n: int, pad: int) -> npt.NDArray[np.intp]:
    """Source index of each of the ``n + pad`` positions of a side padded at its end.

    Equal to ``np.pad(np.arange(n), (0, pad), mode=pad_mode(n, pad))``, without materialising
    a padded image: ``img[pad_indices(h, ph)][:, pad_indices(w, pw)]`` is the padded image and
    any window of it can be gathered directly.
    """
    idx = np.arange(n + pad, dtype=np.intp)
    if pad == 0:
        return idx
    tail = idx[n:]
    mode = pad_mode(n, pad)
    if mode == "reflect":
        tail[:] = 2 * (n - 1) - tail
    elif mode == "symmetric":
        tail[:] = 2 * n - 1 - tail
    else:
        tail[:] = n - 1
    return idx


# -- tiling geometry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One tile along an axis, in latent cells: run ``[start, stop)``, keep ``[core_start, core_stop)``."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def axis_windows(n: int, tile: int, overlap: int) -> list[Window]:
    """Split ``n`` latent cells into cores of ``tile`` cells, each run with ``overlap`` cells of context.

    Every window has the same length ``min(tile + 2 * overlap, n)`` (windows at the borders are
    shifted inwards), so the windows of an image can be batched.
    """
    tile = max(1, tile)
    length = min(tile + 2 * overlap, n)
    out = []
    for core_start in range(0, n, tile):
        core_stop = min(core_start + tile, n)
        start = min(max(core_start - overlap, 0), n - length)
        out.append(Window(start, start + length, core_start, core_stop))
    return out


def feather_weights(win: Window, n: int, stride: int, ramp: int) -> F32:
    """Blending weight of each pixel of ``win`` (``n`` latent cells in all) along one axis.

    The weight rises linearly from the window's inner edges over ``ramp`` pixels (edges on the
    image border are not ramped), so overlapping windows fade into each other without seams.
    """
    size = (win.stop - win.start) * stride
    t = np.arange(size, dtype=np.float32) + np.float32(0.5)
    w = np.ones(size, dtype=np.float32)
    r = np.float32(max(1, ramp))
    if win.start > 0:
        np.minimum(w, t / r, out=w)
    if win.stop < n:
        np.minimum(w, (size - t) / r, out=w)
    return np.clip(w, np.float32(1e-3), np.float32(1.0))


def is_tiled(height: int, width: int, tile_size: int) -> bool:
    """Whether an image of ``height x width`` pixels is coded in tiles (``tile_size`` 0: never)."""
    return tile_size > 0 and height * width > tile_size * tile_size


def blend_weights(windows: Sequence[Window], n: int, stride: int, ramp: int) -> list[F32]:
    """Feather weights of ``windows`` along one axis, divided by their sum at each pixel.

    The windows of an image form a grid (every row window meets every column window), so the
    weight of window ``(r, c)`` at a pixel, ``wy_r * wx_c / sum(wy) / sum(wx)``, is the product of
    these per-axis weights: blending needs no whole-image weight sum.
    """
    raw = [feather_weights(win, n, stride, ramp) for win in windows]
    total = np.zeros(n * stride, dtype=np.float32)
    for win, wgt in zip(windows, raw, strict=True):
        total[win.start * stride : win.stop * stride] += wgt
    return [wgt / total[win.start * stride : win.stop * stride] for win, wgt in zip(windows, raw, strict=True)]


# -- pixel / latent conversions -----------------------------------------------------------------


def _to_input(batch: npt.NDArray[np.uint8], spec: ModelSpec) -> F32:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in the model's input range."""
    lo, hi = spec.input_range
    x = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), dtype=np.float32)
    np.copyto(x, batch.transpose(0, 3, 1, 2), casting="unsafe")
    x *= np.float32((hi - lo) / 255.0)
    if lo != 0.0:
        x += np.float32(lo)
    return x


def _to_uint8(y: F32, spec: ModelSpec, out: npt.NDArray[np.uint8], scratch: F32 | None = None) -> None:
    """(N, 3, H, W) (or (3, H, W)) model output -> ``out`` (N, H, W, 3) (or (H, W, 3)) uint8, clipped and rounded.

    ``scratch`` (at least ``y``'s shape) holds the float intermediate instead of a new array.
    """
    lo, hi = spec.input_range
    target = None if scratch is None else scratch[tuple(slice(0, n) for n in y.shape)]
    # fmax/fmin (unlike clip) map NaN to the bound: forged latents can drive a decoder to NaN
    v = np.fmax(y, np.float32(lo), out=target)
    np.fmin(v, np.float32(hi), out=v)
    if lo != 0.0:
        v -= np.float32(lo)
    v *= np.float32(255.0 / (hi - lo))
    np.rint(v, out=v)
    np.copyto(out, np.moveaxis(v, -3, -1), casting="unsafe")


def _to_latent(raw: F32, spec: ModelSpec) -> F32:
    if spec.latent_shift != 0.0:
        raw = raw - np.float32(spec.latent_shift)
    return np.multiply(raw, np.float32(spec.latent_scale), dtype=np.float32)


def _from_latent(z: F32, spec: ModelSpec) -> F32:
    raw = np.divide(z, np.float32(spec.latent_scale), dtype=np.float32)
    if spec.latent_shift != 0.0:
        raw += np.float32(spec.latent_shift)
    return raw


def _chunks(n: int, per_run: int) -> Iterator[slice]:
    per_run = max(1, per_run)
    for i in range(0, n, per_run):
        yield slice(i, min(n, i + per_run))


def _check_shape(got: tuple[int, ...], want: tuple[int, ...], spec: ModelSpec, role: str) -> None:
    if tuple(got) != tuple(want):
        raise ModelError(
            f"model {spec.name!r}: the {role} returned shape {tuple(got)}, expected {tuple(want)} "
            f"(is its stride really {spec.stride} and does it have 4 latent / 3 image channels?)"
        )


@dataclass(frozen=True)
class _Runtime:
    providers: str | tuple[str, ...] | None
    threads: int | None
    tile_size: int
    tile_overlap: int
    max_pixels: int

    @property
    def budget(self) -> int:
        """Pixels per inference call (0 = unlimited)."""
        return 2 * self.tile_size * self.tile_size

    def tiled(self, height: int, width: int) -> bool:
        return is_tiled(height, width, self.tile_size)

    def per_run(self, pixels_each: int) -> int:
        return self.budget // max(1, pixels_each) if self.budget else 1 << 30


class _VAESystem(System):
    config_fields = ("model",)

    def __init__(
        self,
        model: str = "default",
        *,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
    ) -> None:
        self.model = str(model)
        self.providers = providers if providers is None or isinstance(providers, str) else tuple(providers)
        self.threads = threads
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap

    def _runtime(self, world: World) -> _Runtime:
        rt = world.config.runtime
        return _Runtime(
            providers=normalize_providers(self.providers if self.providers is not None else rt.providers),
            threads=self.threads if self.threads is not None else rt.intra_op_threads,
            tile_size=max(0, self.tile_size if self.tile_size is not None else rt.tile_size),
            tile_overlap=max(0, self.tile_overlap if self.tile_overlap is not None else rt.tile_overlap),
            max_pixels=rt.max_pixels,
        )


@register_system
class OnnxVAEEncode(_VAESystem):
    """``RGB -> Latent4 + ImageInfo`` with an ONNX encoder (model name, folder path or ``"default"``).

    Keyword-only options (not part of ``get_config``): ``providers``, ``threads``, ``tile_size``,
    ``tile_overlap`` override the ``[runtime]`` configuration.
    """

    name = "OnnxVAEEncode"
    mode = Mode.FORWARD
    stream_code = 1
    stage_kind = StageKind.MODEL
    data_section = "model"
    data_required = True

    def required_components(self) -> tuple[type[Component], ...]:
        return (RGB,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (Latent4, ImageInfo)

    def inverse(self) -> System:
        return OnnxVAEDecode(self.model)

    def for_stream(self, world: World, eid: int) -> System:
        return OnnxVAEEncode(world.get_component(eid, ImageInfo).model)  # "default" resolved to a name

    def stream_data(self, world: World, eid: int) -> bytes:
        return bytes.fromhex(world.get_component(eid, ImageInfo).fingerprint)

    def stream_shape(self, geom: Geometry, ctx: StreamContext) -> Geometry:
        spec = registered_model(self.model, config=ctx.config)
        if geom.channels != 3 or ctx.bit_depth != 8 or geom.source:
            raise BitstreamError(f"model {spec.name!r} encodes 8-bit RGB images, not this stream's input")
        s = spec.stride
        return Geometry(spec.latent_channels, -(-geom.height // s), -(-geom.width // s), source="Latent4")

    def load_stream_data(self, world: World, eid: int, data: bytes | None, ctx: StreamContext) -> None:
        spec = registered_model(self.model, config=ctx.config)
        if data is None or len(data) != FINGERPRINT_BYTES:
            raise BitstreamError("the stream does not record its decoder's fingerprint")
        spec.check_fingerprint(data.hex())
        info = world.get_component(eid, ImageInfo)
        world.add_component(eid, info.model_copy(update={"model": spec.name, "fingerprint": data.hex()}))

    def names_used(self) -> list[tuple[str, str, Any]]:
        return [("models", self.model, None)]

    def stream_settings(self, data: bytes | None, ctx: StreamContext) -> dict[str, Any]:
        spec = registered_model(self.model, config=ctx.config)
        return {"stage": self.name, "model": self.model, "fingerprint": (data or b"").hex(), "stride": spec.stride}

    def run(self, world: World, eids: Sequence[int]) -> None:
        spec = get_model(self.model, config=world.config)
        rt = self._runtime(world)
        session = get_session(spec.encoder, rt.providers, rt.threads)
        groups: dict[tuple[int, int], list[int]] = {}
        for eid in eids:
            h, w, _ = world.get_component(eid, RGB).ref.shape
            groups.setdefault((h, w), []).append(eid)
        fingerprint = spec.fingerprint
        for (h, w), group in groups.items():
            s = spec.stride
            hl, wl = -(-h // s), -(-w // s)
            out_ref = world.alloc((len(group), 4, hl, wl), np.float32)
            out = world.view(out_ref)
            images = [world.view(world.get_component(e, RGB).ref) for e in group]
            if rt.tiled(h, w):
                for i, img in enumerate(images):
                    self._encode_tiled(session, spec, img, out[i], rt)
            else:
                rows, cols = pad_indices(h, hl * s - h), pad_indices(w, wl * s - w)
                for part in _chunks(len(group), rt.per_run(hl * wl * s * s)):
                    if rows.size == h and cols.size == w:  # no padding needed
                        batch = np.stack(images[part])
                    else:
                        batch = np.stack([img[rows][:, cols] for img in images[part]])
                    raw = run_session(session, _to_input(batch, spec))
                    _check_shape(raw.shape, (len(batch), 4, hl, wl), spec, "encoder")
                    out[part] = _to_latent(raw, spec)
            for i, eid in enumerate(group):
                world.add_component(eid, Latent4(ref=world.arena.subref(out_ref, i)))
                world.add_component(eid, ImageInfo(height=h, width=w, model=spec.name, fingerprint=fingerprint))

    @staticmethod
    def _encode_tiled(session: Any, spec: ModelSpec, img: npt.NDArray[np.uint8], out: F32, rt: _Runtime) -> None:
        """Encode one image window by window into ``out`` (4, hl, wl), keeping each window's core."""
        s = spec.stride
        h, w, _ = img.shape
        hl, wl = out.shape[1], out.shape[2]
        rows, cols = pad_indices(h, hl * s - h), pad_indices(w, wl * s - w)
        tile, overlap = max(1, rt.tile_size // s), -(-rt.tile_overlap // s)
        windows = [(r, c) for r in axis_windows(hl, tile, overlap) for c in axis_windows(wl, tile, overlap)]
        wh, ww = windows[0][0].stop - windows[0][0].start, windows[0][1].stop - windows[0][1].start
        for part in _chunks(len(windows), rt.per_run(wh * ww * s * s)):
            todo = windows[part]
            batch = np.stack(
                [img[np.ix_(rows[r.start * s : r.stop * s], cols[c.start * s : c.stop * s])] for r, c in todo]
            )
            raw = run_session(session, _to_input(batch, spec), release_memory=part.stop == len(windows))
            del batch
            _check_shape(raw.shape, (len(todo), 4, wh, ww), spec, "encoder")
            for j, (r, c) in enumerate(todo):
                rs = slice(r.core_start - r.start, r.core_stop - r.start)
                cs = slice(c.core_start - c.start, c.core_stop - c.start)
                out[:, r.core_start : r.core_stop, c.core_start : c.core_stop] = _to_latent(raw[j, :, rs, cs], spec)
            del raw  # onnxruntime's buffer: free it for the next run


@register_system
class OnnxVAEDecode(_VAESystem):
    """``Latent4 (+ ImageInfo) -> ReconRGB`` with an ONNX decoder.

    The output is cropped to ``ImageInfo``'s size when the entity has one, else it is the full
    ``stride * latent`` size. With ``model="default"`` the model named in ``ImageInfo`` is used
    when it is known here (else one with the recorded fingerprint, else the default); a recorded
    fingerprint that does not match the decoder raises :class:`ModelError` unless
    ``verify_fingerprint=False``.
    """

    name = "OnnxVAEDecode"
    mode = Mode.INVERSE

    def __init__(
        self,
        model: str = "default",
        *,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        verify_fingerprint: bool = True,
    ) -> None:
        super().__init__(model, providers=providers, threads=threads, tile_size=tile_size, tile_overlap=tile_overlap)
        self.verify_fingerprint = verify_fingerprint

    def required_components(self) -> tuple[type[Component], ...]:
        return (Latent4,)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (ReconRGB,)

    def inverse(self) -> System:
        return OnnxVAEEncode(self.model)

    def _spec_for(
        self, world: World, info: ImageInfo | None, cache: dict[tuple[str, str], ModelSpec]
    ) -> ModelSpec:
        key = (info.model, info.fingerprint) if info is not None else ("", "")
        hit = cache.get(key)
        if hit is not None:
            return hit
        spec: ModelSpec | None = None
        cfg = world.config
        if self.model == "default" and info is not None and info.model:
            try:
                spec = registered_model(info.model, config=cfg)
            except ModelError:
                spec = None
            if spec is not None and info.fingerprint and not spec.matches(info.fingerprint):
                spec = None
            if spec is None and info.fingerprint:
                spec = next((m for m in list_models(cfg) if m.matches(info.fingerprint)), None)
            if spec is None:
                raise ModelError(
                    f"the latent was made by model {info.model!r} (decoder fingerprint {info.fingerprint or '?'}), "
                    "which is not available here; install or register it (see vaerans_ecs.models), or pass "
                    "model=... explicitly"
                )
        if spec is None:
            spec = get_model(self.model, config=cfg)
            if info is not None and self.verify_fingerprint:
                spec.check_fingerprint(info.fingerprint, what=f"the latent (model {info.model!r})")
        cache[key] = spec
        return spec

    def run(self, world: World, eids: Sequence[int]) -> None:
        rt = self._runtime(world)
        specs: dict[tuple[str, str], ModelSpec] = {}
        groups: dict[tuple[ModelSpec, int, int, int, int], list[int]] = {}
        for eid in eids:
            lat = world.get_component(eid, Latent4).ref
            info = world.get_component(eid, ImageInfo) if world.has_component(eid, ImageInfo) else None
            spec = self._spec_for(world, info, specs)
            s = spec.stride
            hl, wl = lat.shape[1], lat.shape[2]
            h, w = (info.height, info.width) if info is not None else (hl * s, wl * s)
            if -(-h // s) != hl or -(-w // s) != wl:
                raise ModelError(
                    f"entity {eid}: a {hl}x{wl} latent of model {spec.name!r} (stride {s}) cannot decode to "
                    f"the {h}x{w} image recorded in ImageInfo"
                )
            if h * w > rt.max_pixels:
                raise ModelError(
                    f"entity {eid}: {h}x{w} = {h * w} pixels exceeds [runtime] max_pixels = {rt.max_pixels}"
                )
            groups.setdefault((spec, hl, wl, h, w), []).append(eid)
        for (spec, hl, wl, h, w), group in groups.items():
            s = spec.stride
            session = get_session(spec.decoder, rt.providers, rt.threads)
            tiled = rt.tiled(h, w)
            # A tiled (large) image gets a buffer of its own: decompress() hands it out uncopied.
            out_ref = world.arena.alloc_dedicated((len(group), h, w, 3), np.uint8) if tiled else world.alloc(
                (len(group), h, w, 3), np.uint8
            )
            out = world.view(out_ref)
            latents = [world.view(world.get_component(e, Latent4).ref) for e in group]
            if tiled:
                for i, z in enumerate(latents):
                    self._decode_tiled(session, spec, z, out[i], rt)
            else:
                for part in _chunks(len(group), rt.per_run(hl * wl * s * s)):
                    batch = _from_latent(np.stack(latents[part]), spec)
                    y = run_session(session, batch)
                    _check_shape(y.shape, (len(batch), 3, hl * s, wl * s), spec, "decoder")
                    _to_uint8(y[:, :, :h, :w], spec, out[part])
            for i, eid in enumerate(group):
                world.add_component(eid, ReconRGB(ref=world.arena.subref(out_ref, i)))

    @staticmethod
    def _decode_tiled(session: Any, spec: ModelSpec, z: F32, out: npt.NDArray[np.uint8], rt: _Runtime) -> None:
        """Decode one latent window by window into ``out`` (h, w, 3), blending the overlaps.

        Windows run row by row, left to right. Within a row of windows, ``band`` accumulates the
        weighted windows over the columns from the current window's start; once the next window
        has started, the columns before it are complete for this row: their rows not shared with
        the next row of windows are written to ``out``, the others are added to ``carry`` (those
        rows over the whole width), which the next row of windows starts from.
        """
        s = spec.stride
        h, w, _ = out.shape
        hl, wl = z.shape[1], z.shape[2]
        tile, overlap = max(1, rt.tile_size // s), -(-rt.tile_overlap // s)
        ramp = 2 * overlap * s
        rows, cols = axis_windows(hl, tile, overlap), axis_windows(wl, tile, overlap)
        row_weights, col_weights = blend_weights(rows, hl, s, ramp), blend_weights(cols, wl, s, ramp)
        wh, ww = rows[0].stop - rows[0].start, cols[0].stop - cols[0].start
        per_run = rt.per_run(wh * ww * s * s)
        # Buffers live for the whole image (no per-window allocations): `band` holds columns
        # [x0, x0 + filled) of the current window row (windows are ww * s wide, never more), the
        # two carries alternate between rows, `scratch` serves the uint8 conversion.
        band = np.empty((3, wh * s, ww * s), dtype=np.float32)
        scratch = np.empty_like(band)
        finals = [rows[i + 1].start * s if i + 1 < len(rows) else hl * s for i in range(len(rows))]
        shared = max(r.stop * s - f for r, f in zip(rows, finals, strict=True))
        carries = [np.empty((3, shared, wl * s), dtype=np.float32) for _ in range(2)]
        carry = carries[1][:, :0]  # partial sums of rows [y0, y0 + len) from earlier window rows
        for ri, r in enumerate(rows):
            y0, y1 = r.start * s, r.stop * s
            final = finals[ri]  # rows < final are complete after this window row
            keep = min(final, h) - y0  # rows of this window row written to `out` (the rest is padding)
            next_carry = carries[ri % 2][:, : y1 - final]
            filled = 0
            wy = row_weights[ri][None, :, None]
            for part in _chunks(len(cols), per_run):
                todo = cols[part]
                batch = _from_latent(np.stack([z[:, r.start : r.stop, c.start : c.stop] for c in todo]), spec)
                last = ri + 1 == len(rows) and part.stop == len(cols)
                y = run_session(session, batch, release_memory=last)
                _check_shape(y.shape, (len(todo), 3, wh * s, ww * s), spec, "decoder")
                if not y.flags.writeable:  # pragma: no cover - onnxruntime returns its own arrays
                    y = y.copy()
                for j, c in enumerate(todo):
                    ci = part.start + j
                    x0 = c.start * s
                    band[:, :, filled:] = 0.0
                    # Weighted in place; no view of `y` outlives this batch, so onnxruntime can
                    # reuse its buffer for the next run instead of growing its arena.
                    y[j] *= wy
                    y[j] *= col_weights[ci][None, None, :]
                    band += y[j]
                    done = cols[ci + 1].start * s if ci + 1 < len(cols) else wl * s  # columns < done are complete
                    block = band[:, :, : done - x0]
                    if carry.shape[1]:
                        block[:, : carry.shape[1]] += carry[:, :, x0:done]
                    if keep > 0 and x0 < w:
                        _to_uint8(
                            block[:, :keep, : min(done, w) - x0], spec, out[y0 : y0 + keep, x0 : min(done, w)], scratch
                        )
                    next_carry[:, :, x0:done] = block[:, final - y0 :]
                    filled = ww * s - (done - x0)  # columns of the next window already summed here
                    band[:, :, :filled] = band[:, :, done - x0 :]  # numpy buffers the overlapping copy
                del y
            carry = next_carry
