"""Job files: the TOML file of a job (its ``[job]`` table plus optional configuration tables) and the
commented example shipped with the package (``vaerans batch --example``)."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Any

from vaerans_ecs.config import Config, JobConfig, get_config, load_config, parse_config, read_toml
from vaerans_ecs.errors import ConfigError

__all__ = ["EXAMPLE_NAME", "example_job", "load_job"]

#: The commented example job, package data of ``vaerans_ecs.batch``.
EXAMPLE_NAME = "example_job.toml"
_SEE = "see 'vaerans batch --example'"


def example_job() -> str:
    """The text of the commented example job file (every key, with its default)."""
    return importlib.resources.files("vaerans_ecs.batch").joinpath(EXAMPLE_NAME).read_text(encoding="utf-8")


def load_job(path: str | os.PathLike[str], *, base: Config | None = None) -> tuple[JobConfig, Config]:
    """Read a job file: its ``[job]`` table and the configuration to run it with.

    Other tables in the file (``[codec]``, ``[runtime]``, ``[arena]``, ``[models.NAME]``) override
    the same keys of ``base`` (default: the process configuration) for this job only; nothing
    changes the process configuration. Raises :class:`ConfigError` naming the file and key on any
    problem.
    """
    file = Path(path)
    raw = read_toml(file, "job file")
    if "job" not in raw:
        raise ConfigError(f"{file}: no [job] table ({_SEE})")
    ambient = base if base is not None else get_config()
    if set(raw) == {"job"}:
        parsed = load_config(file)
        assert parsed.job is not None
        return parsed.job, ambient
    merged: dict[str, Any] = ambient.model_dump(exclude={"source", "job"})
    for key, value in raw.items():
        if key == "models" and isinstance(value, dict):
            merged["models"] = {**merged["models"], **value}
        elif key in ("arena", "runtime", "codec") and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    cfg = parse_config(merged, file.resolve())
    assert cfg.job is not None
    return cfg.job, cfg
