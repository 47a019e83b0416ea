"""Job files: the [job] table with optional configuration tables, and the example shipped in the package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.batch.helpers import REPO
from vaerans_ecs.batch import example_job, load_job
from vaerans_ecs.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_load_job_merges_other_tables(tmp_path: Path) -> None:
    job_file = tmp_path / "j.toml"
    job_file.write_text('[codec]\nlevels = 2\n\n[job]\ninputs = ["in/*.png"]\noutput_dir = "o"\n')
    job, cfg = load_job(job_file)
    assert cfg.codec.levels == 2 and job.output_dir == tmp_path / "o"
    job_file.write_text('[job]\ninputs = ["in/*.png"]\noutput_dir = "o"\nquality = 40\ntarget_bpp = 1\n')
    with pytest.raises(ConfigError, match=r"j\.toml"):
        load_job(job_file)
    job_file.write_text('[codec]\nlevels = 2\n')
    with pytest.raises(ConfigError, match=r"\[job\].*vaerans batch --example"):
        load_job(job_file)


def test_example_job_is_valid_and_shipped(tmp_path: Path) -> None:
    # the example comes from the installed package, not from the repository's examples/ folder
    text = example_job()
    assert "vaerans batch --example" in text and "examples/" not in text
    (tmp_path / "job.toml").write_text(text)
    job, _ = load_job(tmp_path / "job.toml")
    assert job.output_dir == tmp_path / "out"
    assert (job.operation, job.quality, job.workers, job.executor, job.overwrite) == ("compress", 40, 2, "local", False)
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "vaerans_ecs.batch" in setup["packages"]
    assert "example_job.toml" in setup["package-data"]["vaerans_ecs.batch"]
