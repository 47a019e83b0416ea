"""A job's configuration is its own: API calls in other threads during a job see the process configuration."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.batch.helpers import image, photos
from vaerans_ecs import api
from vaerans_ecs.batch import Progress, load_job, run_job
from vaerans_ecs.config import Config, get_config, set_config
from vaerans_ecs.models import ModelSpec

CALLS = 48
THREADS = 8


@pytest.fixture
def ambient() -> Iterator[Config]:
    saved = get_config()
    cfg = Config()
    set_config(cfg)
    yield cfg
    set_config(saved)


def test_api_calls_during_a_job_use_the_process_configuration(
    tmp_path: Path, synthetic_model: ModelSpec, ambient: Config
) -> None:
    photos(tmp_path / "photos", 2)
    job_file = tmp_path / "job.toml"
    job_file.write_text(  # a job whose configuration would break or change the calls below
        "[codec]\nlevels = 1\nwavelet = \"haar\"\n\n[runtime]\nmax_pixels = 4000\n\n"
        f'[job]\ninputs = ["photos/*.png"]\noutput_dir = "out"\nmodel = "{synthetic_model.name}"\n'
    )
    job, cfg = load_job(job_file)
    assert cfg.runtime.max_pixels == 4000 and get_config() is ambient

    def call(k: int) -> tuple[bytes, np.ndarray]:
        data = api.compress(image(k, 64 + k % 5, 80), 50, synthetic_model.name)  # over the job's max_pixels
        return data, api.decompress(data)

    expected = [call(k) for k in range(CALLS)]
    seen: list[tuple[bytes, np.ndarray] | BaseException] = []
    configs: list[Config] = []

    def during(p: Progress) -> None:
        if p.done == 0 and not seen:  # the job is running: planned, under its lock
            configs.append(get_config())
            with ThreadPoolExecutor(THREADS) as pool:
                for future in [pool.submit(call, k) for k in range(CALLS)]:
                    try:
                        seen.append(future.result())
                    except BaseException as exc:
                        seen.append(exc)

    report = run_job(job, config=cfg, on_progress=during)
    assert report.ok == 2 and report.parameters["levels"] == 1  # the job ran with its own configuration
    failures = [s for s in seen if isinstance(s, BaseException)]
    assert not failures, f"{len(failures)} of {CALLS} calls failed: {failures[:2]}"
    assert configs == [ambient] and get_config() is ambient
    assert len(seen) == CALLS
    for got, want in zip(seen, expected, strict=True):
        assert not isinstance(got, BaseException)
        assert got[0] == want[0], "a call ran with the job's [codec]"
        np.testing.assert_array_equal(got[1], want[1])
