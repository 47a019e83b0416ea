"""Issue 15, item 3: the decoder runs only pipelines an encoder can make.

Before the fix (d1a0f55) the decoder inverted whatever pipeline a stream listed: the VAE listed
28 times turned a small stream into seconds of decoding with the same output, and repeated,
reordered or inverse-mode stages were accepted. Each stream here is a real small stream whose
pipeline records were rearranged (CRC recomputed, v1 and v2 layouts); each must be refused with
``BitstreamError`` by ``inspect`` and ``decompress`` alike, before any ONNX session exists and in
milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest

from tests.fixtures.streamfuzz import with_pipeline
from tests.hostile.forge import cost, picture, records, seed_v1, stage_of, watch
from vaerans_ecs import api
from vaerans_ecs.config import ArenaConfig, Config, get_config, set_config
from vaerans_ecs.core.system import SYSTEMS, System, register_system
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.models import ModelSpec

Build = Callable[[dict[str, bytes]], list[bytes]]

#: Pipelines no encoder makes, from the records of a real stream: vae, hadamard, wavelet, quantizer, coder.
PIPELINES: dict[str, Build] = {
    "vae-x28": lambda r: [r["vae"]] * 28 + [r["hadamard"], r["wavelet"], r["quantizer"], r["coder"]],
    "hadamard-x28": lambda r: [r["vae"], *[r["hadamard"]] * 28, r["wavelet"], r["quantizer"], r["coder"]],
    "vae-twice": lambda r: [r["vae"], r["vae"], r["hadamard"], r["wavelet"], r["quantizer"], r["coder"]],
    "hadamard-twice": lambda r: [r["vae"], r["hadamard"], r["hadamard"], r["wavelet"], r["quantizer"], r["coder"]],
    "wavelet-twice": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["wavelet"], r["quantizer"], r["coder"]],
    "quantizer-twice": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["quantizer"], r["quantizer"], r["coder"]],
    "coder-twice": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["quantizer"], r["coder"], r["coder"]],
    "vae-after-hadamard": lambda r: [r["hadamard"], r["vae"], r["wavelet"], r["quantizer"], r["coder"]],
    "wavelet-before-hadamard": lambda r: [r["vae"], r["wavelet"], r["hadamard"], r["quantizer"], r["coder"]],
    "quantizer-first": lambda r: [r["quantizer"], r["vae"], r["hadamard"], r["wavelet"], r["coder"]],
    "coder-not-last": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["coder"], r["quantizer"]],
    "no-coder": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["quantizer"]],
    "no-quantizer": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["coder"]],
    "coder-only": lambda r: [r["coder"]],
    "empty": lambda r: [],
    "inverse-vae": lambda r: [stage_of("OnnxVAEDecode", model=_MODEL[0]), r["hadamard"], r["wavelet"], r["quantizer"],
                              r["coder"]],
    "inverse-vae-added": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["quantizer"], r["coder"],
                                    stage_of("OnnxVAEDecode", model=_MODEL[0])],
    "inverse-quantizer": lambda r: [r["vae"], r["hadamard"], r["wavelet"], stage_of("Dequantize"), r["coder"]],
    "inverse-coder": lambda r: [r["vae"], r["hadamard"], r["wavelet"], r["quantizer"],
                                stage_of("ANSDecode", coder="rans")],
}
_MODEL: list[str] = []


@pytest.fixture(autouse=True)
def small_arena() -> Iterator[None]:
    """A 1 MiB arena (grown on demand), so tracemalloc sees the decoder's own work, not the arena's reserve."""
    saved = get_config()
    set_config(Config(arena=ArenaConfig(capacity_mb=1, max_capacity_mb=1 << 10), runtime=saved.runtime))
    yield
    set_config(saved)


@pytest.fixture(scope="module")
def seeds(synthetic_model: ModelSpec) -> dict[int, bytes]:
    """The same small image as a v2 stream (what the library writes) and as v1."""
    _MODEL[:] = [synthetic_model.name]
    v1 = seed_v1(synthetic_model.name, 32, 40)
    v2 = api.compress(picture(32, 40), 60, synthetic_model.name, wavelet="cdf53", coder="rans")
    return {1: v1, 2: v2} if v2[4] == 2 else {1: v1}


def _refused_before_any_stage(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    with watch(monkeypatch) as seen:
        for fn in (api.decompress, api.inspect):
            c = cost(lambda fn=fn: fn(data))  # type: ignore[misc]
            assert isinstance(c.error, BitstreamError), f"{fn.__name__}: {c.error!r}"
            assert c.seconds < 1.0 and c.peak_mib < 16, f"{fn.__name__}: {c.seconds:.2f} s, {c.peak_mib:.1f} MiB"
    assert seen.sessions == [], "an ONNX session was created for a pipeline that must be refused"


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", list(PIPELINES))
def test_pipeline_no_encoder_makes_is_refused(seeds: dict[int, bytes], case: str, version: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if version not in seeds:
        pytest.skip("this version writes no v2 streams")
    seed = seeds[version]
    forged = with_pipeline(seed, PIPELINES[case](records(seed)))
    _refused_before_any_stage(forged, monkeypatch)


def test_the_untouched_seeds_decode(seeds: dict[int, bytes]) -> None:
    """The refusals above come from the pipelines, not from the seeds or the rewriting."""
    for seed in seeds.values():
        same = with_pipeline(seed, list(records(seed).values()))
        assert same == seed
        assert api.decompress(same).shape == (32, 40, 3)


# -- a residual stage in the base layer (a stage kind d1a0f55 did not have) ---------------------


@pytest.fixture
def residual_stage() -> Iterator[type[System]]:
    try:
        from vaerans_ecs.core.system import StageKind
    except ImportError:
        pytest.skip("no stage kinds in this version")
    from vaerans_ecs.components import RGB, YUVW4, ReconRGB

    class ToyResidual(System):
        """Claims to start an enhancement layer: RGB (+ ReconRGB) -> YUVW4."""

        name: ClassVar[str] = "HostileToyResidual"
        stage_kind: ClassVar[Any] = StageKind.RESIDUAL

        def required_components(self) -> tuple[type[Any], ...]:
            return (RGB,)

        def input_choices(self) -> tuple[type[Any], ...]:
            return (ReconRGB,)

        def produced_components(self) -> tuple[type[Any], ...]:
            return (YUVW4,)

        def inverse(self) -> System:
            return self

        def run(self, world: Any, eids: Sequence[int]) -> None:  # pragma: no cover - must never run
            raise AssertionError("a refused pipeline ran")

    register_system(ToyResidual)
    yield ToyResidual
    SYSTEMS.remove(ToyResidual.name)


@pytest.mark.parametrize("where", ["first", "after-vae", "alone-with-coder"])
def test_residual_stage_in_the_base_layer_is_refused(seeds: dict[int, bytes], residual_stage: type[System],
                                                     where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = seeds.get(2)
    if seed is None:
        pytest.skip("v2 only")
    r = records(seed)
    res = stage_of(residual_stage.name)
    pipeline = {"first": [res, r["vae"], r["hadamard"], r["wavelet"], r["quantizer"], r["coder"]],
                "after-vae": [r["vae"], res, r["hadamard"], r["wavelet"], r["quantizer"], r["coder"]],
                "alone-with-coder": [res, r["quantizer"], r["coder"]]}[where]
    _refused_before_any_stage(with_pipeline(seed, pipeline), monkeypatch)


# -- the quantizer's recorded input must be what the pipeline gives it ---------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_quantizer_input_recorded_in_the_stream_must_match_the_pipeline(
        synthetic_model: ModelSpec, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = api.compress(picture(32, 40), 60, synthetic_model.name, wavelet="none", coder="rans")
    if version == 1:
        seed = seed_v1(synthetic_model.name, 32, 40, wavelet="none")
    elif seed[4] != 2:
        pytest.skip("v2 only")
    r = records(seed)
    forged = with_pipeline(seed, [r["vae"], r["quantizer"], r["coder"]])  # the quantizer's input was YUVW4
    try:
        _refused_before_any_stage(forged, monkeypatch)
    except VaeransError as exc:  # MissingComponentError is a VaeransError and a KeyError
        pytest.fail(f"refused only after stages ran: {exc!r}")
