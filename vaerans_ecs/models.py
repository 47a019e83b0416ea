"""The model registry: which ONNX VAEs exist, where their files are, and their codec metadata.

A model is a folder or a pair of files, ``encoder.onnx`` and ``decoder.onnx``. Its codec metadata
comes from the ONNX ``metadata_props`` (read with onnxruntime, see :data:`METADATA_KEYS`), then
from a ``[models.NAME]`` section of the configuration or ``register_model(**meta)`` (these win),
then from defaults (stride 8, input range 0..1, scale 1, shift 0, steps 0.05..4).

Where models come from, by priority when names collide:

1. ``register_model(...)`` in this process (source ``"registered"``);
2. ``[models.NAME]`` sections of the configuration (source: the config file path);
3. built-ins: every ``<name>/`` folder with ``encoder.onnx`` + ``decoder.onnx`` in the package
   ``vaerans_ecs._builtin_models`` (the repository's ``models/`` folder; a source checkout reads
   that folder directly) (source ``"builtin"``);
4. a path to such a folder, given as the name (source ``"path"``).

A model folder may also hold ``rd.json``, the model's measured rate curve
(:mod:`vaerans_ecs.ratecurve`). When ``[codec] model`` does not pin a model, ``"default"`` lets
the built-in models that have curves share the work: :func:`choose_model` picks one per quality
or target rate.

``"default"`` is an alias: ``[codec] model`` if it is set to something else, else the built-in
:data:`DEFAULT_MODEL` if installed, else the first built-in by name. A resolved spec always
carries the real name, never ``"default"``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import math
import os
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaerans_ecs.errors import ModelError
from vaerans_ecs.ratecurve import CURVE_FILE, RatePoint, choose, load_curve, useful

if TYPE_CHECKING:
    from vaerans_ecs.config import Config

__all__ = [
    "DEFAULT_MODEL",
    "METADATA_KEYS",
    "ModelSpec",
    "builtin_model_dirs",
    "choose_model",
    "default_models",
    "file_fingerprint",
    "get_model",
    "list_models",
    "model_names",
    "register_model",
    "registered_model",
    "resolve_default",
    "unregister_model",
]

log = logging.getLogger(__name__)

#: Built-in model that ``"default"`` names when the configuration does not choose one.
DEFAULT_MODEL = "vae-f4c4-xe"

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"

#: ONNX ``metadata_props`` keys read (``vaerans.role`` is checked, not stored).
METADATA_KEYS: dict[str, str] = {
    "vaerans.stride": "stride",
    "vaerans.latent_channels": "latent_channels",
    "vaerans.input_range": "input_range",
    "vaerans.latent_scale": "latent_scale",
    "vaerans.latent_shift": "latent_shift",
    "vaerans.step_min": "step_min",
    "vaerans.step_max": "step_max",
    "vaerans.model_name": "model_name",
    "vaerans.recipe": "recipe",
}
ROLE_KEY = "vaerans.role"

_META_FIELDS = (
    "stride",
    "latent_channels",
    "input_range",
    "latent_scale",
    "latent_shift",
    "step_min",
    "step_max",
    "model_name",
    "recipe",
    "description",
)


_fp_cache: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """First 16 hex digits of the SHA-256 of a file (cached per file version)."""
    from vaerans_ecs.runtime import stat_key

    file = Path(path).resolve()
    key = stat_key(file)
    hit = _fp_cache.get(key)
    if hit is None:
        digest = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        hit = _fp_cache[key] = digest.hexdigest()[:16]
    return hit


@dataclass(frozen=True)
class ModelSpec:
    """An ONNX VAE and its codec metadata.

    ``stride`` is the encoder's downsampling factor (image sides are padded to a multiple of it);
    images are fed as ``lo + u8 / 255 * (hi - lo)`` with ``input_range = (lo, hi)``; the codec's
    latent is ``z = (raw - latent_shift) * latent_scale``; ``step_min``/``step_max`` are the
    quantizer step sizes (in ``z`` units) at the top and bottom of the quality scale.
    """

    name: str
    encoder: Path
    decoder: Path
    stride: int = 8
    latent_channels: int = 4
    input_range: tuple[float, float] = (0.0, 1.0)
    latent_scale: float = 1.0
    latent_shift: float = 0.0
    step_min: float = 0.05
    step_max: float = 4.0
    recipe: str = ""
    source: str = "registered"
    model_name: str = ""
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    #: measured rate curve (``rd.json`` beside the decoder), sorted by rate; empty when absent
    curve: tuple[RatePoint, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        where = f"model {self.name!r} ({self.source})"
        if not self.name or self.name == "default":
            raise ModelError(f"{where}: a model needs a name other than 'default'")
        if self.stride <= 0:
            raise ModelError(f"{where}: stride must be positive, got {self.stride}")
        if self.latent_channels != 4:
            raise ModelError(f"{where}: the codec needs 4 latent channels, the model has {self.latent_channels}")
        lo, hi = self.input_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ModelError(f"{where}: input_range must be two finite numbers lo < hi, got {self.input_range}")
        if not (math.isfinite(self.latent_scale) and self.latent_scale != 0.0):
            raise ModelError(f"{where}: latent_scale must be finite and non-zero, got {self.latent_scale}")
        if not math.isfinite(self.latent_shift):
            raise ModelError(f"{where}: latent_shift must be finite, got {self.latent_shift}")
        if not (0.0 < self.step_min <= self.step_max and math.isfinite(self.step_max)):
            raise ModelError(f"{where}: need 0 < step_min <= step_max, got {self.step_min}..{self.step_max}")

    @cached_property
    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of the decoder file (computed once)."""
        return file_fingerprint(self.decoder)

    def check_fingerprint(self, expected: str, *, what: str = "the stream") -> None:
        """Raise :class:`ModelError` unless ``expected`` (when non-empty) is this decoder's fingerprint."""
        if expected and expected != self.fingerprint:
            raise ModelError(
                f"{what} was encoded with a decoder of fingerprint {expected}, but model {self.name!r} "
                f"has fingerprint {self.fingerprint}: decode with the model that encoded it"
            )

    def matches(self, fingerprint: str) -> bool:
        """True when ``fingerprint`` is this decoder's fingerprint."""
        return fingerprint == self.fingerprint

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (paths as strings, fingerprint included)."""
        info = asdict(self)
        info.pop("metadata")
        info["curve"] = [asdict(p) for p in self.curve]
        info["encoder"] = str(self.encoder)
        info["decoder"] = str(self.decoder)
        info["input_range"] = list(self.input_range)
        info["fingerprint"] = self.fingerprint
        return info


# -- metadata parsing ---------------------------------------------------------------------------


def _parse_meta(meta: dict[str, str], file: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, fname in METADATA_KEYS.items():
        raw = meta.get(key)
        if raw is None or raw.strip() == "":
            continue
        text = raw.strip()
        try:
            if fname in ("stride", "latent_channels"):
                value: Any = int(text)
            elif fname == "input_range":
                parts = [float(p) for p in text.replace(" ", "").split(",")]
                if len(parts) != 2:
                    raise ValueError("expected 'lo,hi'")
                value = (parts[0], parts[1])
            elif fname in ("model_name", "recipe"):
                value = text
            else:
                value = float(text)
        except ValueError as exc:
            raise ModelError(f"{file}: metadata {key}={raw!r} is invalid: {exc}") from None
        out[fname] = value
    return out


def _spec_from_files(
    name: str, encoder: Path, decoder: Path, source: str, overrides: dict[str, Any] | None = None
) -> ModelSpec:
    from vaerans_ecs.runtime import read_metadata

    encoder = Path(encoder).expanduser().resolve()
    decoder = Path(decoder).expanduser().resolve()
    for role, file in (("encoder", encoder), ("decoder", decoder)):
        if not file.is_file():
            raise ModelError(f"model {name!r} ({source}): {role} file {file} does not exist")
    enc_meta = read_metadata(encoder)
    dec_meta = read_metadata(decoder)
    for role, file, meta in (("encoder", encoder, enc_meta), ("decoder", decoder, dec_meta)):
        found = meta.get(ROLE_KEY)
        if found is not None and found != role:
            raise ModelError(
                f"model {name!r}: {file} is marked {ROLE_KEY}={found!r} but is used as the {role} "
                "(encoder and decoder swapped?)"
            )
    merged = {**enc_meta, **dec_meta}
    values = {**_parse_meta(enc_meta, encoder), **_parse_meta(dec_meta, decoder)}
    unknown = set(overrides or {}) - set(_META_FIELDS)
    if unknown:
        raise ModelError(f"model {name!r}: unknown metadata override(s) {sorted(unknown)}; known: {list(_META_FIELDS)}")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = tuple(float(v) for v in value) if key == "input_range" else value
    spec = ModelSpec(name=name, encoder=encoder, decoder=decoder, source=source, metadata=merged, **values)
    curve_file = decoder.parent / CURVE_FILE
    if curve_file.is_file():
        try:
            spec = replace(spec, curve=load_curve(curve_file, spec.fingerprint))
        except ModelError as exc:  # a stale or broken curve must not make the model unusable
            log.warning("model %r: ignoring its rate curve: %s", name, exc)
    return spec


# -- sources of models --------------------------------------------------------------------------

_registered: dict[str, ModelSpec] = {}
_lock = threading.Lock()


def builtin_model_dirs() -> dict[str, Path]:
    """``{name: folder}`` of the built-in models (folders holding encoder.onnx + decoder.onnx)."""
    roots: dict[Path, None] = {}
    try:
        pkg = importlib.resources.files("vaerans_ecs._builtin_models")
    except (ModuleNotFoundError, TypeError):
        # Source checkout (not installed): the repository's models/ folder.
        roots[Path(__file__).resolve().parents[1] / "models"] = None
    else:
        try:
            for child in pkg.iterdir():  # works for plain and namespace (multiplexed) packages
                path = Path(str(child))
                if path.exists():
                    roots[path.parent] = None
        except OSError:  # pragma: no cover - broken install
            log.warning("cannot list the built-in models package %s", pkg)
    found: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for sub in sorted(root.iterdir()):
            if sub.is_dir() and (sub / ENCODER_FILE).is_file() and (sub / DECODER_FILE).is_file():
                found.setdefault(sub.name, sub)
    return found


def _config(config: Config | None = None) -> Config:
    if config is not None:
        return config
    from vaerans_ecs.config import get_config

    return get_config()


def _config_spec(name: str, cfg: Any, source: Any) -> ModelSpec:
    overrides = {
        "stride": cfg.stride,
        "latent_scale": cfg.latent_scale,
        "latent_shift": cfg.latent_shift,
        "input_range": cfg.input_range,
        "step_min": cfg.step_min,
        "step_max": cfg.step_max,
        "description": cfg.description or None,
    }
    return _spec_from_files(name, cfg.encoder, cfg.decoder, str(source) if source else "<config>", overrides)


def _is_dir(name: str) -> bool:
    """``Path(name).expanduser().is_dir()`` that treats unusable names (too long, ~nouser) as False."""
    try:
        return Path(name).expanduser().is_dir()
    except (OSError, RuntimeError, ValueError):
        return False


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.startswith((".", "~")) or _is_dir(name)


def _path_spec(folder: Path) -> ModelSpec:
    """A model given as a folder path by the caller (never by a stream); named after the folder."""
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    return _spec_from_files(folder.name, folder / ENCODER_FILE, folder / DECODER_FILE, "path")


def model_names(config: Config | None = None) -> dict[str, str]:
    """``{name: source}`` of every known model (without loading any file); priority applied."""
    cfg = _config(config)
    _load_plugins()
    names: dict[str, str] = {}
    for name in _registered:
        names[name] = "registered"
    for name in cfg.models:
        names.setdefault(name, str(cfg.source) if cfg.source else "<config>")
    for name in builtin_model_dirs():
        names.setdefault(name, "builtin")
    return dict(sorted(names.items()))


def resolve_default(config: Config | None = None) -> str:
    """The name (or path) ``"default"`` stands for; see the module docstring."""
    chosen = str(_config(config).codec.model)
    if chosen and chosen != "default":
        return chosen
    builtins = builtin_model_dirs()
    if DEFAULT_MODEL in builtins:
        return DEFAULT_MODEL
    if builtins:
        return next(iter(sorted(builtins)))
    raise ModelError(
        "no default model: no built-in model is installed and [codec] model is not set. Pass a model "
        'name, set [codec] model = "NAME" with a [models.NAME] section (encoder = ..., decoder = ...) '
        "in vaerans_ecs.toml, or reinstall vaerans_ecs to get the built-in models"
    )


def choose_model(
    name: str = "default",
    *,
    quality: float | None = None,
    target_bpp: float | None = None,
    config: Config | None = None,
) -> tuple[ModelSpec, float | None]:
    """The model a request runs, and the quantizer step its rate curve predicts (None: none).

    Any name but ``"default"`` is that model. ``"default"`` with ``[codec] model`` pinned, or with
    no built-in model having a rate curve, is the plain default model. Otherwise
    :func:`vaerans_ecs.ratecurve.choose` picks, by ``quality`` or ``target_bpp``, among the
    built-in models that have curves.
    """
    if name != "default":
        return get_model(name, config=config), None
    specs = _auto_models(config)
    if specs and (quality is not None or target_bpp is not None):
        index, step = choose([s.curve for s in specs], quality=quality, target_bpp=target_bpp)
        return specs[index], step
    return get_model("default", config=config), None


def _auto_models(config: Config | None = None) -> list[ModelSpec]:
    """Built-in models with useful rate curves, unless ``[codec] model`` pins what "default" means.

    A model another one beats all along its curve is left out (it still decodes its streams).
    """
    chosen = str(_config(config).codec.model)
    if chosen and chosen != "default":
        return []
    specs = [spec for spec in (get_model(n, config=config) for n in builtin_model_dirs()) if spec.curve]
    return [specs[i] for i in useful([spec.curve for spec in specs])]


def default_models(config: Config | None = None) -> list[ModelSpec]:
    """The models ``"default"`` may run: the built-ins with rate curves, else the one default model."""
    return _auto_models(config) or [get_model("default", config=config)]


def _unknown(name: str, config: Config | None, *, show_sources: bool = True) -> ModelError:
    names = model_names(config)
    known = ", ".join(f"{n} ({s})" if show_sources else n for n, s in names.items()) or "none"
    if not show_sources:
        from vaerans_ecs.plugins import missing_plugin_hint

        return ModelError(f"the stream needs model {name!r}, which is not installed here (known: {known})"
                          f"{missing_plugin_hint('models', name)}")
    return ModelError(
        f"unknown model {name!r}; known models: {known}. Add one in vaerans_ecs.toml:\n"
        f"    [models.{name}]\n"
        '    encoder = "path/to/encoder.onnx"\n'
        '    decoder = "path/to/decoder.onnx"\n'
        "or call vaerans_ecs.models.register_model(name, encoder=..., decoder=...), "
        "or pass the path of a folder holding encoder.onnx and decoder.onnx"
    )


#: What a model name written in a stream may look like: a registry name, never a path.
_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def _named_spec(name: str, config: Config | None) -> ModelSpec | None:
    spec = _registered.get(name)
    if spec is not None:
        return spec
    cfg = _config(config)
    if name in cfg.models:
        return _config_spec(name, cfg.models[name], cfg.source)
    builtin = builtin_model_dirs().get(name)
    if builtin is not None:
        return _spec_from_files(name, builtin / ENCODER_FILE, builtin / DECODER_FILE, "builtin")
    return None


def _load_plugins() -> None:
    from vaerans_ecs.plugins import load_plugins

    load_plugins("models")


def registered_model(name: str, *, config: Config | None = None) -> ModelSpec:
    """The model a *stream* names: a registered, configured, built-in or plugin model, by name only.

    Never a path, never ``"default"``: a stream may only name a model, so decoding never opens a
    file a stream chose, and the error for an unknown name shows no local path.
    """
    if not isinstance(name, str) or not _STREAM_NAME.fullmatch(name) or ".." in name or name == "default":
        raise ModelError(f"a stream may only name a registered model; {str(name)[:40]!r} is not a model name")
    spec = _named_spec(name, config)
    if spec is None:
        _load_plugins()
        spec = _named_spec(name, config)
    if spec is None:
        raise _unknown(name, config, show_sources=False)
    return spec


def get_model(name: str | os.PathLike[str] = "default", *, config: Config | None = None) -> ModelSpec:
    """Resolve a model name, the ``"default"`` alias, or a folder path to its :class:`ModelSpec`.

    For callers, not streams (streams use :func:`registered_model`): a folder path is accepted.
    """
    if isinstance(name, os.PathLike):
        return _path_spec(Path(name))
    if name == "default":
        target = resolve_default(config)
        if target == "default":  # pragma: no cover - guarded by resolve_default
            raise ModelError("[codec] model cannot be 'default'")
        return get_model(target, config=config)
    spec = _named_spec(name, config)
    if spec is None:
        _load_plugins()
        spec = _named_spec(name, config)
    if spec is not None:
        return spec
    if _looks_like_path(name) and _is_dir(name):
        return _path_spec(Path(name))
    raise _unknown(name, config)


def list_models(config: Config | None = None) -> list[ModelSpec]:
    """Every known model, sorted by name; models whose files are broken are logged and skipped."""
    specs: list[ModelSpec] = []
    for name in model_names(config):
        try:
            specs.append(get_model(name, config=config))
        except ModelError as exc:
            log.warning("skipping model %r: %s", name, exc)
    return specs


def register_model(
    spec_or_name: ModelSpec | str,
    encoder: str | os.PathLike[str] | None = None,
    decoder: str | os.PathLike[str] | None = None,
    *,
    replace_existing: bool = False,
    **meta: Any,
) -> ModelSpec:
    """Register a model for this process and return its spec.

    ``register_model(spec)`` registers a ready :class:`ModelSpec`;
    ``register_model("name", encoder="e.onnx", decoder="d.onnx", stride=8, ...)`` reads the ONNX
    metadata and applies ``meta`` on top (keys: stride, latent_channels, input_range,
    latent_scale, latent_shift, step_min, step_max, model_name, recipe, description);
    ``register_model("name", "folder/")`` uses the folder's encoder.onnx and decoder.onnx.
    Registering a different model under a taken name needs ``replace_existing=True``.
    """
    if isinstance(spec_or_name, ModelSpec):
        if encoder is not None or decoder is not None or meta:
            raise ModelError("register_model(spec) takes no files or metadata; use dataclasses.replace(spec, ...)")
        spec = replace(spec_or_name, source="registered") if spec_or_name.source != "registered" else spec_or_name
    else:
        name = str(spec_or_name)
        if encoder is not None and decoder is None and Path(encoder).is_dir():
            folder = Path(encoder)
            encoder, decoder = folder / ENCODER_FILE, folder / DECODER_FILE
        if encoder is None or decoder is None:
            raise ModelError(f"register_model({name!r}) needs encoder= and decoder= files (or a folder)")
        if name == "default":
            raise ModelError("'default' is an alias and cannot be registered; set [codec] model instead")
        spec = _spec_from_files(name, Path(encoder), Path(decoder), "registered", meta)
    with _lock:
        old = _registered.get(spec.name)
        if old is not None and old != spec and not replace_existing:
            raise ModelError(
                f"model {spec.name!r} is already registered ({old.decoder}); pass replace_existing=True to replace it"
            )
        _registered[spec.name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Forget a model registered with :func:`register_model` (no-op when absent)."""
    with _lock:
        _registered.pop(name, None)
