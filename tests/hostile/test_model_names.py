"""Issue 15, item 1: a stream only *names* a registered model; decoding never opens a path it chose.

Each test plants a working synthetic VAE where a forged model name points (an absolute folder,
``../x/y``, ``~/../x``, a bare folder name in the working directory, and the working directory
itself for the empty name) and records every file Python opens and every ONNX session created
while ``decompress``, ``inspect`` and ``vaerans info`` read the stream. Before the fix (d1a0f55)
the planted decoder ran and the image decoded; error texts told existing from missing folders
and showed resolved local paths; a deeply nested ``rd.json`` raised ``RecursionError``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.streamfuzz import pack_v2, split_sections, tagged
from tests.hostile.forge import forge, picture, seed_v1, watch
from vaerans_ecs import api, cli
from vaerans_ecs.errors import BitstreamError, ModelError, VaeransError
from vaerans_ecs.models import ModelSpec, file_fingerprint, get_model, register_model, unregister_model
from vaerans_ecs.ratecurve import load_curve

MODEL_FILES = ("encoder.onnx", "decoder.onnx")
NESTED = "[" * 100_000 + "]" * 100_000  # json.loads recurses once per level


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working VAE (stride 8, like the seeds' model) that no registry knows: the attacker's files."""
    pytest.importorskip("onnx")
    from tests.synthetic_vae import build_synthetic_vae

    folder = tmp_path_factory.mktemp("attacker")
    build_synthetic_vae(folder, stride=8, smooth=True, model_name="planted")
    return folder


@dataclass
class Scene:
    """A working directory, a home and planted model folders; names are relative to them."""

    root: Path
    cwd: Path
    home: Path
    planted: dict[str, Path]  # stream name -> the folder it would resolve to
    fingerprint: bytes

    def paths(self) -> list[Path]:
        """Every planted model file (the decoder must open none of them)."""
        return [folder / f for folder in self.planted.values() for f in (*MODEL_FILES, "rd.json")]

    def local_texts(self) -> list[str]:
        """Local paths that error texts must not show (resolved, as a path lookup would print them)."""
        texts = {os.path.realpath(self.cwd), os.path.realpath(self.home), str(self.cwd), str(self.home)}
        for name, folder in self.planted.items():
            if not os.path.isabs(name):
                texts |= {os.path.realpath(folder), str(folder)}
        return sorted(texts, key=len, reverse=True)


@pytest.fixture
def scene(tmp_path: Path, planted_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    cwd, home = tmp_path / "work", tmp_path / "home"
    home.mkdir()
    targets = {str(tmp_path / "x"): tmp_path / "x", "../x/y": tmp_path / "x" / "y", "~/../x": tmp_path / "x",
               "x": cwd / "x", "": cwd}
    for folder in set(targets.values()):
        folder.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            shutil.copy(planted_model / name, folder / name)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    fp = bytes.fromhex(file_fingerprint(cwd / "decoder.onnx"))
    yield Scene(tmp_path, cwd, home, targets, fp)


NAMES = pytest.mark.parametrize("name", ["<abs>", "../x/y", "~/../x", "x", ""],
                                ids=["absolute", "dotdot", "tilde", "bare-folder", "empty"])


def _name(scene: Scene, name: str) -> str:
    return str(scene.root / "x") if name == "<abs>" else name


def _hostile(synthetic_model: ModelSpec, scene: Scene, name: str) -> bytes:
    """A real stream whose model name is ``name`` and whose fingerprint is the planted decoder's."""
    seed = seed_v1(synthetic_model.name)
    return forge(seed, **{"system0.field0": tagged(name), "fingerprint": bytes([8]) + scene.fingerprint})


def _no_local_path(text: str, scene: Scene) -> None:
    for local in scene.local_texts():
        assert local not in text, f"message shows the local path {local!r}: {text}"
    for file in (*MODEL_FILES, "rd.json"):
        assert file not in text, f"message names a model file: {text}"


@NAMES
def test_stream_cannot_make_the_decoder_load_a_folder(synthetic_model: ModelSpec, scene: Scene, name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: the planted decoder ran and the image decoded (the stream chose the ONNX files)."""
    name = _name(scene, name)
    data = _hostile(synthetic_model, scene, name)
    with watch(monkeypatch) as seen:
        for fn in (api.inspect, api.decompress):
            with pytest.raises(VaeransError) as err:
                fn(data)
            _no_local_path(str(err.value), scene)
    assert seen.under(*scene.paths()) == [], "the decoder opened a file the stream pointed at"
    assert not any(p.endswith(MODEL_FILES) for p in seen.sessions), seen.sessions


@NAMES
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_info_does_not_load_a_folder_the_stream_names(synthetic_model: ModelSpec, scene: Scene, name: str,
                                                      as_json: bool, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Was: ``vaerans info`` loaded the planted files to report the model's status."""
    name = _name(scene, name)
    (scene.cwd / "s.vae").write_bytes(_hostile(synthetic_model, scene, name))
    with watch(monkeypatch) as seen:
        cli.main(["info", *(["--json"] if as_json else []), "s.vae"])
    out = capsys.readouterr()
    assert seen.under(*scene.paths()) == [], "vaerans info opened a file the stream pointed at"
    assert seen.sessions == []
    _no_local_path(out.out + out.err, scene)


@pytest.mark.parametrize(("there", "missing"), [("<abs>", "<abs-missing>"), ("../x/y", "../q/y"),
                                                ("~/../x", "~/../q"), ("x", "q"), ("x/", "q/")])
def test_existing_and_missing_folders_give_the_same_error(synthetic_model: ModelSpec, scene: Scene, there: str,
                                                          missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No filesystem oracle: the answer must not depend on whether the named folder exists."""
    names = {"<abs>": str(scene.root / "x"), "<abs-missing>": str(scene.root / "q")}
    there, missing = names.get(there, there), names.get(missing, missing)
    for file in scene.paths():  # the folders exist but hold no model: only their existence differs
        file.unlink(missing_ok=True)
    texts = []
    for name in (there, missing):
        with watch(monkeypatch) as seen, pytest.raises(VaeransError) as err:
            api.decompress(_hostile(synthetic_model, scene, name))
        assert seen.under(*scene.paths()) == []
        text = str(err.value).replace(repr(name), "<name>").replace(repr(name[:40]), "<name>")
        texts.append((type(err.value), text))
    assert texts[0] == texts[1]


def test_empty_name_neither_resolves_to_the_working_directory_nor_shows_it(
        synthetic_model: ModelSpec, scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: '' resolved to the working directory (its model ran); without a model there the error showed it."""
    for folder in (scene.cwd, scene.root / "empty"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        with watch(monkeypatch) as seen, pytest.raises(VaeransError) as err:
            api.decompress(_hostile(synthetic_model, scene, ""))
        assert seen.under(*scene.paths()) == []
        assert os.path.realpath(folder) not in str(err.value) and str(folder) not in str(err.value)


def test_empty_fingerprint_does_not_skip_the_check(synthetic_model: ModelSpec) -> None:
    """Was: a stream with no fingerprint decoded with whatever decoder had the name."""
    seed = seed_v1(synthetic_model.name)
    with pytest.raises(BitstreamError):
        api.decompress(forge(seed, fingerprint=b"\x00"))
    with pytest.raises(VaeransError):  # a fingerprint of other decoder bytes
        api.decompress(forge(seed, fingerprint=b"\x08" + bytes(8)))


@pytest.mark.parametrize("body", [None, b"", b"\x00" * 8, b"\x01"], ids=["absent", "empty", "zeros", "short"])
def test_v2_model_section_must_hold_the_fingerprint(synthetic_model: ModelSpec, body: bytes | None) -> None:
    data = api.compress(picture(16, 16), 60, synthetic_model.name)
    if data[4] != 2:
        pytest.skip("this version writes no v2 streams")
    items = [(c, b) for c, b in split_sections(data[5:-4]) if c != 0x03]
    if body is not None:
        items.insert(2, (0x03, body))
    with pytest.raises(VaeransError):
        api.decompress(pack_v2(items))


@pytest.mark.parametrize("name", ["/some/folder", "../x/y", "~/../x", "a/../b", "..", ".", "~", "\\x", "x\x00y",
                                  "default", "a" * 129])
def test_names_a_stream_cannot_use_are_refused_before_any_file_access(
        synthetic_model: ModelSpec, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seed = seed_v1(synthetic_model.name)
    monkeypatch.chdir(tmp_path)
    with watch(monkeypatch) as seen, pytest.raises(VaeransError) as err:
        api.decompress(forge(seed, **{"system0.field0": tagged(name)}))
    assert seen.sessions == [] and not [p for p in seen.opened if p.endswith((*MODEL_FILES, "rd.json"))]
    assert isinstance(err.value, (ModelError, BitstreamError))
    assert str(tmp_path) not in str(err.value) and os.path.realpath(tmp_path) not in str(err.value)


# -- rd.json of a model ---------------------------------------------------------------------------


@pytest.fixture
def nested_curve_model(planted_model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "nested"
    shutil.copytree(planted_model, folder)
    (folder / "rd.json").write_text(NESTED)
    return folder


def test_deeply_nested_rate_curve_is_a_model_error(nested_curve_model: Path) -> None:
    """Was: RecursionError from json.loads escaped load_curve."""
    with pytest.raises(ModelError):
        load_curve(nested_curve_model / "rd.json")


def test_model_with_a_nested_rate_curve_still_loads_without_it(nested_curve_model: Path) -> None:
    """The curve is ignored (logged); registering or naming the folder is not a RecursionError."""
    try:
        spec = register_model("hostile-nested", nested_curve_model)
        assert spec.curve == ()
        assert get_model(str(nested_curve_model)).curve == ()
    finally:
        unregister_model("hostile-nested")


def test_stream_naming_a_folder_with_a_nested_rate_curve(synthetic_model: ModelSpec, nested_curve_model: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: RecursionError (not a VaeransError) from a 100 kB rd.json beside a folder a stream named."""
    fp = bytes.fromhex(file_fingerprint(nested_curve_model / "decoder.onnx"))
    data = forge(seed_v1(synthetic_model.name), **{"system0.field0": tagged(str(nested_curve_model)),
                                                   "fingerprint": b"\x08" + fp})
    with watch(monkeypatch) as seen:
        for fn in (api.decompress, api.inspect):
            with pytest.raises(VaeransError):
                fn(data)
    assert seen.under(nested_curve_model) == []


def test_info_json_of_a_valid_stream_still_names_its_model(synthetic_model: ModelSpec, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The refusals above are not a broken ``info``: a registered model is still reported."""
    (tmp_path / "ok.vae").write_bytes(seed_v1(synthetic_model.name))
    assert cli.main(["info", "--json", str(tmp_path / "ok.vae")]) == 0
    assert synthetic_model.name in json.dumps(json.loads(capsys.readouterr().out))
