"""Config: lookup precedence, relative paths, validation errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaerans_ecs.config import find_config_file, get_config, load_config, set_config
from vaerans_ecs.errors import ConfigError


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("VAERANS_CONFIG", raising=False)
    monkeypatch.chdir(cwd)
    return home, cwd


def test_precedence(homes: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, cwd = homes
    assert find_config_file() is None
    assert load_config().codec.quality == 75.0
    (home / ".vaerans_ecs.toml").write_text("[codec]\nquality = 10\n")
    assert load_config().codec.quality == 10
    (cwd / "vaerans_ecs.toml").write_text("[codec]\nquality = 20\n")
    assert load_config().codec.quality == 20
    env = tmp_path / "env.toml"
    env.write_text("[codec]\nquality = 30\n")
    monkeypatch.setenv("VAERANS_CONFIG", str(env))
    assert load_config().codec.quality == 30
    assert load_config().source == env.resolve()
    monkeypatch.setenv("VAERANS_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not name a file"):
        load_config()


def test_relative_paths_resolve_against_file(homes: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    cfg = folder / "x.toml"
    cfg.write_text(
        '[models.mine]\nencoder = "m/enc.onnx"\ndecoder = "/abs/dec.onnx"\n'
        '[job]\ninputs = ["photos/*.png"]\noutput_dir = "out"\n'
    )
    conf = load_config(cfg)
    assert conf.models["mine"].encoder == (folder / "m/enc.onnx").resolve()
    assert conf.models["mine"].decoder == Path("/abs/dec.onnx")
    assert conf.job is not None and conf.job.output_dir == folder / "out"
    assert conf.job.inputs == [str(folder / "photos/*.png")]
    assert conf.job.workers == 1 and conf.job.operation == "compress"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[codec]\nquality = 500\n", r"codec\.quality"),
        ("[codec]\nqualty = 5\n", r"codec\.qualty: Extra inputs"),
        ('[models.m]\nencoder = "a"\n', r"models\.m\.decoder: Field required"),
        ("[arena\n", "invalid TOML"),
        ('[job]\ninputs = "a"\noutput_dir = "o"\nquality = 3\ntarget_bpp = 0.1\n', "not quality and target_bpp"),
        ('source = "x"\n', "not a configuration key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, pattern: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(cfg)
    assert str(cfg) in str(info.value)


def test_unreadable_and_global(tmp_path: Path, homes: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)
    set_config(None)
    assert get_config() is get_config()
    set_config(None)


def test_example_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "vaerans_ecs.toml.example"
    conf = load_config(example)
    assert conf.job is not None
