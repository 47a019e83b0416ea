"""The model registry: ONNX metadata, TOML overrides, defaults, the "default" alias, fingerprints."""

from __future__ import annotations

import hashlib
import importlib.resources
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.synthetic_vae import build_synthetic_vae
from vaerans_ecs import api, encoder, models
from vaerans_ecs.config import CodecConfig, Config, get_config, load_config, set_config
from vaerans_ecs.encoder import transform_curve
from vaerans_ecs.errors import ModelError
from vaerans_ecs.eval.curve import measure_curve
from vaerans_ecs.models import (
    DEFAULT_MODEL,
    ModelSpec,
    builtin_model_dirs,
    get_model,
    list_models,
    model_names,
    register_model,
    resolve_default,
    unregister_model,
)
from vaerans_ecs.ratecurve import CURVE_FILE, RatePoint, choose, save_curve
from vaerans_ecs.systems.quantize import QuantizeU8, step_for_quality


@pytest.fixture
def config() -> Iterator[Callable[[Config], None]]:
    """Install a Config for one test, restoring the previous one afterwards."""
    saved = get_config()
    yield set_config
    set_config(saved)


@pytest.fixture
def builtins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., dict[str, Path]]:
    """Replace the built-in models by synthetic ones named as given."""

    def make(*names: str) -> dict[str, Path]:
        found = {}
        for name in names:
            build_synthetic_vae(tmp_path / "builtin" / name, model_name=name)
            found[name] = tmp_path / "builtin" / name
        monkeypatch.setattr(models, "builtin_model_dirs", lambda: dict(sorted(found.items())))
        return found

    return make


def test_metadata_from_onnx(synthetic_model: ModelSpec) -> None:
    spec = get_model("synthetic-s8")
    assert spec is synthetic_model
    assert spec.stride == 8 and spec.latent_channels == 4
    assert spec.input_range == (0.0, 1.0)
    assert spec.latent_scale == pytest.approx(3.5 / (0.5 * 192**0.5))
    assert spec.latent_shift == 0.0
    assert (spec.step_min, spec.step_max) == (0.05, 2.0)
    assert spec.model_name == "synthetic-s8" and "stride 8" in spec.recipe
    assert spec.source == "registered"
    assert spec.metadata["vaerans.role"] == "decoder"
    info = spec.describe()
    assert info["fingerprint"] == spec.fingerprint and info["decoder"] == str(spec.decoder)


def test_defaults_without_metadata(tmp_path: Path) -> None:
    enc, dec = build_synthetic_vae(tmp_path, metadata=False)
    spec = register_model("bare", encoder=enc, decoder=dec)
    try:
        assert (spec.stride, spec.input_range, spec.latent_scale, spec.latent_shift) == (8, (0.0, 1.0), 1.0, 0.0)
        assert (spec.step_min, spec.step_max) == (0.05, 4.0)
        assert spec.recipe == "" and spec.metadata == {}
    finally:
        unregister_model("bare")


def test_register_overrides_and_folder(tmp_path: Path) -> None:
    build_synthetic_vae(tmp_path / "m", stride=4)
    spec = register_model("folder-model", tmp_path / "m", step_min=0.1, input_range=(-1, 1), description="x")
    try:
        assert spec.stride == 4 and spec.step_min == 0.1 and spec.input_range == (-1.0, 1.0)
        assert spec.description == "x"
        with pytest.raises(ModelError, match="already registered"):
            register_model("folder-model", tmp_path / "m", step_min=0.2)
        assert register_model("folder-model", tmp_path / "m", step_min=0.1, input_range=(-1, 1), description="x")
        replaced = register_model("folder-model", tmp_path / "m", step_min=0.2, replace_existing=True)
        assert get_model("folder-model") is replaced
        with pytest.raises(ModelError, match="unknown metadata override"):
            register_model("other", tmp_path / "m", strid=4)
        with pytest.raises(ModelError, match="needs encoder"):
            register_model("other", encoder=tmp_path / "m" / "encoder.onnx")
        with pytest.raises(ModelError, match="alias"):
            register_model("default", tmp_path / "m")
    finally:
        unregister_model("folder-model")


def test_toml_overrides_win(tmp_path: Path, config: Callable[[Config], None]) -> None:
    build_synthetic_vae(tmp_path / "files", stride=8, step_min=0.05)
    toml = tmp_path / "vaerans_ecs.toml"
    toml.write_text(
        "[models.from-toml]\n"
        'encoder = "files/encoder.onnx"\n'
        'decoder = "files/decoder.onnx"\n'
        "step_min = 0.25\n"
        "latent_scale = 2.0\n"
        "input_range = [0.0, 1.0]\n"
        'description = "configured"\n'
    )
    config(load_config(toml))
    spec = get_model("from-toml")
    assert spec.step_min == 0.25 and spec.latent_scale == 2.0 and spec.step_max == 2.0  # step_max from ONNX
    assert spec.description == "configured"
    assert spec.source == str(toml.resolve())
    assert spec.encoder == (tmp_path / "files" / "encoder.onnx").resolve()
    assert model_names()["from-toml"] == str(toml.resolve())


def test_invalid_metadata(tmp_path: Path) -> None:
    enc, dec = build_synthetic_vae(tmp_path / "a", extra_metadata={"vaerans.stride": "eight"})
    with pytest.raises(ModelError, match=r"vaerans\.stride='eight' is invalid"):
        register_model("bad", encoder=enc, decoder=dec)
    enc, dec = build_synthetic_vae(tmp_path / "b", extra_metadata={"vaerans.latent_channels": "3"})
    with pytest.raises(ModelError, match="4 latent channels"):
        register_model("bad", encoder=enc, decoder=dec)
    enc, dec = build_synthetic_vae(tmp_path / "c", extra_metadata={"vaerans.input_range": "1,0"})
    with pytest.raises(ModelError, match="input_range"):
        register_model("bad", encoder=enc, decoder=dec)
    enc, dec = build_synthetic_vae(tmp_path / "d")
    with pytest.raises(ModelError, match="swapped"):
        register_model("bad", encoder=dec, decoder=enc)
    with pytest.raises(ModelError, match="does not exist"):
        register_model("bad", encoder=enc, decoder=tmp_path / "nope.onnx")
    assert "bad" not in model_names()


def test_fingerprint(synthetic_model: ModelSpec) -> None:
    expected = hashlib.sha256(synthetic_model.decoder.read_bytes()).hexdigest()[:16]
    assert synthetic_model.fingerprint == expected
    assert synthetic_model.matches(expected) and not synthetic_model.matches("0" * 16)
    synthetic_model.check_fingerprint(expected)
    synthetic_model.check_fingerprint("")  # nothing recorded: nothing to check
    with pytest.raises(ModelError, match="fingerprint 0000000000000000"):
        synthetic_model.check_fingerprint("0" * 16)


def test_fingerprint_differs_between_models(synthetic_model: ModelSpec, synthetic_model_s4: ModelSpec) -> None:
    assert synthetic_model.fingerprint != synthetic_model_s4.fingerprint
    assert len(synthetic_model_s4.fingerprint) == 16


def test_unknown_model_error(synthetic_model: ModelSpec) -> None:
    with pytest.raises(ModelError) as info:
        get_model("no-such-model")
    msg = str(info.value)
    assert "unknown model 'no-such-model'" in msg
    assert "synthetic-s8 (registered)" in msg
    assert "[models.no-such-model]" in msg and "encoder =" in msg


def test_default_alias(
    builtins: Callable[..., dict[str, Path]], config: Callable[[Config], None], synthetic_model: ModelSpec
) -> None:
    config(Config())
    builtins("aaa", DEFAULT_MODEL, "zzz")
    assert resolve_default() == DEFAULT_MODEL
    spec = get_model("default")
    assert spec.name == DEFAULT_MODEL and spec.source == "builtin"
    assert get_model() == spec

    builtins("bbb", "aaa")
    assert get_model("default").name == "aaa"  # no DEFAULT_MODEL: first built-in by name

    config(Config(codec=CodecConfig(model="synthetic-s8")))
    assert get_model("default") is synthetic_model  # [codec] model wins

    config(Config())
    builtins()
    with pytest.raises(ModelError, match="no default model"):
        get_model("default")


def test_builtin_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    build_synthetic_vae(root / "tiny")
    (root / "half").mkdir()
    (root / "half" / "encoder.onnx").write_bytes(b"")
    (root / "train.py").write_text("")
    monkeypatch.setattr(importlib.resources, "files", lambda name: root)
    assert builtin_model_dirs() == {"tiny": root / "tiny"}

    def missing(name: str) -> Path:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", missing)  # source checkout: <repo>/models
    for name, folder in builtin_model_dirs().items():
        assert folder.parent == Path(models.__file__).resolve().parents[1] / "models"
        assert (folder / "decoder.onnx").is_file(), name


def test_folder_path_as_name(tmp_path: Path) -> None:
    build_synthetic_vae(tmp_path / "direct", stride=4)
    by_str = get_model(str(tmp_path / "direct"))
    by_path = get_model(tmp_path / "direct")
    assert by_str == by_path
    # named after its folder: a stream records that name, never the path
    assert by_str.source == "path" and by_str.stride == 4 and by_str.name == "direct"
    with pytest.raises(ModelError, match="does not exist"):
        get_model(tmp_path / "nowhere")


def test_list_models_skips_broken(
    synthetic_model: ModelSpec, tmp_path: Path, builtins: Callable[..., dict[str, Path]]
) -> None:
    found = builtins("good", "broken")
    shutil.copy(found["good"] / "decoder.onnx", found["broken"] / "encoder.onnx")  # a swapped role
    names = [m.name for m in list_models()]
    assert "synthetic-s8" in names and "good" in names and "broken" not in names
    assert names == sorted(names)


# -- "default" choosing among built-in models by their rate curves --------------------------------


def _gradient_image() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) % 256
    return img.astype(np.uint8)


def _measure(name: str, folder: Path) -> tuple[RatePoint, ...]:
    points = measure_curve(name, [_gradient_image()], qualities=(1, 30, 60, 100))
    save_curve(folder / CURVE_FILE, points, model=name, fingerprint=get_model(name).fingerprint)
    return get_model(name).curve


def _spy_steps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the base step of every QuantizeU8 the api builds."""
    seen: list[float] = []

    class Spy(QuantizeU8):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self.base_step)

    monkeypatch.setattr(api, "QuantizeU8", Spy)
    return seen


def _stream_model(data: bytes) -> str:
    return api.inspect(data).model


def test_default_picks_among_builtins_by_rate_curve(
    builtins: Callable[..., dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = builtins("a-coarse", "b-fine")
    # "a-coarse" is a stride-16 model (low rates), "b-fine" stride 4 (high rates)
    build_synthetic_vae(found["a-coarse"], stride=16, model_name="a-coarse", step_max=8.0)
    curves = {name: _measure(name, folder) for name, folder in found.items()}
    assert all(len(c) >= 2 for c in curves.values())
    assert [s.name for s in models.default_models()] == ["a-coarse", "b-fine"]
    img = _gradient_image()
    steps = _spy_steps(monkeypatch)
    for quality in (1, 50, 100):
        index, step = choose(list(curves.values()), quality=quality)
        expect = list(curves)[index]
        spec, chosen_step = models.choose_model(quality=quality)
        assert (spec.name, chosen_step) == (expect, pytest.approx(step))
        # compress lets the transform coder's curve compete with the models' on the same scale
        index, step = choose([*curves.values(), transform_curve()], quality=quality)
        data = api.compress(img, quality)
        if index == len(curves):
            assert [s.name for s in api.inspect(data).pipeline] == ["TransformCode"]
        else:
            assert _stream_model(data) == list(curves)[index] and steps[-1] == pytest.approx(step, rel=1e-6)
        assert api.decompress(data).shape == img.shape
    # the lowest quality goes to the model reaching the lowest rate, the highest to the highest
    lowest = min(curves, key=lambda n: curves[n][0].bpp)
    highest = max(curves, key=lambda n: curves[n][-1].bpp)
    assert models.choose_model(quality=1)[0].name == lowest
    assert models.choose_model(quality=100)[0].name == highest
    assert models.choose_model(target_bpp=curves[lowest][0].bpp / 10)[0].name == lowest
    # target_bpp starts its search at the step the curve predicts: on the image the curves were
    # measured on, a measured rate is hit by the first trial
    name, point = next(
        (n, p) for n, c in curves.items() for p in c if models.choose_model(target_bpp=p.bpp)[0].name == n
    )
    monkeypatch.setattr(encoder, "transform_curve", lambda: ())  # the models alone, without the transform coder
    assert models.choose_model(target_bpp=point.bpp)[1] == pytest.approx(point.step)
    del steps[:]
    data = api.compress(img, target_bpp=point.bpp)
    assert _stream_model(data) == name and steps == [pytest.approx(point.step, rel=1e-6)]
    # an explicit name keeps that model's own quality mapping
    assert _stream_model(api.compress(img, 50, "b-fine")) == "b-fine"
    spec = get_model("b-fine")
    assert steps[-1] == pytest.approx(step_for_quality(50, spec.step_min, spec.step_max), rel=1e-6)


def test_default_pinned_or_without_curves_is_one_model(
    builtins: Callable[..., dict[str, Path]], config: Callable[[Config], None]
) -> None:
    found = builtins("a-coarse", "b-fine")
    assert [s.name for s in models.default_models()] == ["a-coarse"]  # no curves: the plain default
    assert models.choose_model(quality=10)[1] is None
    _measure("b-fine", found["b-fine"])
    _measure("a-coarse", found["a-coarse"])
    config(Config(codec=CodecConfig(model="b-fine")))
    assert [s.name for s in models.default_models()] == ["b-fine"]
    spec, step = models.choose_model(quality=10)
    assert spec.name == "b-fine" and step is None


def test_stale_or_broken_curve_is_ignored_with_a_warning(
    builtins: Callable[..., dict[str, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    folder = builtins("a-coarse")["a-coarse"]
    save_curve(folder / CURVE_FILE, [RatePoint(2.0, 0.1, 20.0), RatePoint(1.0, 0.2, 22.0)], fingerprint="0" * 16)
    with caplog.at_level("WARNING", logger="vaerans_ecs.models"):
        assert get_model("a-coarse").curve == ()
    assert "ignoring its rate curve" in caplog.text
    (folder / CURVE_FILE).write_text("{")
    assert get_model("a-coarse").curve == ()
