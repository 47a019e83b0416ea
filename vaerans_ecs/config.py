"""TOML configuration, validated with pydantic.

Lookup order (first hit wins): the ``VAERANS_CONFIG`` environment variable, ``./vaerans_ecs.toml``
in the current directory, ``~/.vaerans_ecs.toml`` in the home directory; no file means defaults.
Relative paths inside a file resolve against that file's folder. Every key is documented in
``vaerans_ecs.toml.example``; unknown keys are errors, and errors name the file and the key.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vaerans_ecs.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ArenaConfig",
    "CodecConfig",
    "Config",
    "JobConfig",
    "ModelConfig",
    "RuntimeConfig",
    "find_config_file",
    "get_config",
    "load_config",
    "read_toml",
    "set_config",
]

ENV_VAR = "VAERANS_CONFIG"
FILE_NAME = "vaerans_ecs.toml"
HOME_FILE_NAME = ".vaerans_ecs.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArenaConfig(_Section):
    """``[arena]``: memory for tensors of one World."""

    capacity_mb: int = Field(512, gt=0)
    max_capacity_mb: int = Field(16384, gt=0)


class RuntimeConfig(_Section):
    """``[runtime]``: onnxruntime providers and threads, decoder safety limits, tiling."""

    providers: list[str] = ["auto"]
    intra_op_threads: int = Field(0, ge=0)
    # Pillow's own hard limit (2 * PIL.Image.MAX_IMAGE_PIXELS): it refuses to open larger files anyway.
    max_pixels: int = Field(178_956_970, gt=0)
    tile_size: int = Field(1024, ge=0)
    tile_overlap: int = Field(32, ge=0)


class CodecConfig(_Section):
    """``[codec]``: defaults of ``compress``."""

    quality: float = Field(75.0, ge=1.0, le=100.0)
    model: str = "default"
    wavelet: str = "cdf53"
    levels: int = Field(3, ge=0, le=8)
    #: None: the entropy coders' default (``vaerans_ecs.systems.entropy.DEFAULT_CODER``).
    coder: str | None = None

    @field_validator("wavelet")
    @classmethod
    def _known_wavelet(cls, value: str) -> str:
        from vaerans_ecs.systems.wavelet import wavelet_names

        if value not in wavelet_names():
            raise ValueError(f"unknown wavelet {value!r}; use one of {', '.join(wavelet_names())}")
        return value

    @field_validator("coder")
    @classmethod
    def _known_coder(cls, value: str | None) -> str | None:
        from vaerans_ecs.systems.entropy import coder_names

        if value is not None and value not in coder_names():
            raise ValueError(f"unknown entropy coder {value!r}; registered: {', '.join(coder_names())}")
        return value


class ModelConfig(_Section):
    """``[models.NAME]``: an ONNX VAE (encoder + decoder files) with optional metadata overrides."""

    encoder: Path
    decoder: Path
    stride: int | None = Field(None, gt=0)
    latent_scale: float | None = None
    latent_shift: float | None = None
    input_range: tuple[float, float] | None = None
    step_min: float | None = Field(None, gt=0)
    step_max: float | None = Field(None, gt=0)
    description: str = ""


class JobConfig(_Section):
    """``[job]``: a batch job (see ``vaerans batch``)."""

    inputs: list[str] | str
    output_dir: Path
    operation: Literal["compress", "decompress", "roundtrip-eval", "compress-sequence"] = "compress"
    quality: float | None = Field(None, ge=1.0, le=100.0)
    target_bpp: float | None = Field(None, gt=0)
    model: str | None = None
    workers: int = Field(1, ge=1)
    overwrite: bool = False
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    output_format: str = "png"
    #: Quality 1..100 of a lossy ``output_format`` (JPEG, WebP, AVIF, JXL), required for those.
    output_quality: float | None = Field(None, ge=1.0, le=100.0)
    lossless: bool = False
    max_error: int | None = Field(None, ge=1, le=16)
    report: Path | None = None

    @model_validator(mode="after")
    def _one_rate(self) -> JobConfig:
        given = [k for k in ("quality", "target_bpp", "max_error") if getattr(self, k) is not None]
        if self.lossless:
            given.append("lossless")
        if len(given) > 1:
            raise ValueError(f"give one of quality, target_bpp, lossless and max_error, not {' and '.join(given)}")
        return self


class Config(_Section):
    """The whole configuration; ``source`` is the file it came from (None for defaults)."""

    arena: ArenaConfig = ArenaConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    codec: CodecConfig = CodecConfig()
    models: dict[str, ModelConfig] = {}
    job: JobConfig | None = None
    source: Path | None = None


def find_config_file() -> Path | None:
    """Return the config file to use, following the documented lookup order."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV_VAR}={env} does not name a file")
        return path
    for candidate in (Path.cwd() / FILE_NAME, Path.home() / HOME_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    for model in (raw.get("models") or {}).values():
        if isinstance(model, dict):
            for key in ("encoder", "decoder"):
                if isinstance(model.get(key), str):
                    model[key] = str((base / Path(model[key]).expanduser()).resolve())
    job = raw.get("job")
    if isinstance(job, dict):
        for key in ("output_dir", "report"):
            if isinstance(job.get(key), str):
                job[key] = str(base / Path(job[key]).expanduser())
        inputs = job.get("inputs")
        if isinstance(inputs, str):
            job["inputs"] = str(base / Path(inputs).expanduser())
        elif isinstance(inputs, list):
            job["inputs"] = [str(base / Path(p).expanduser()) if isinstance(p, str) else p for p in inputs]


def parse_config(raw: dict[str, Any], source: Path | None = None) -> Config:
    """Validate a parsed TOML mapping; relative paths resolve against ``source``'s folder."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    if isinstance(raw.get("models"), dict):
        raw["models"] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw["models"].items()}
    base = source.parent if source is not None else Path.cwd()
    _resolve_paths(raw, base)
    where = str(source) if source is not None else "<config>"
    if "source" in raw:
        raise ConfigError(f"{where}: 'source' is not a configuration key")
    try:
        return Config(**raw, source=source)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


def read_toml(file: Path, what: str = "config file") -> dict[str, Any]:
    """The tables of a TOML file; unreadable files and invalid TOML raise :class:`ConfigError`."""
    try:
        with open(file, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate ``path`` (or the file found by :func:`find_config_file`)."""
    file = Path(path) if path is not None else find_config_file()
    if file is None:
        return Config()
    return parse_config(read_toml(file), file.resolve())


_current: Config | None = None


def get_config() -> Config:
    """The process-wide configuration (loaded once, on first use)."""
    global _current
    if _current is None:
        _current = load_config()
    return _current


def set_config(config: Config | None) -> None:
    """Replace the process-wide configuration (``None`` reloads it on next use)."""
    global _current
    _current = config
