"""Plugins from another distribution: found lazily through entry points, named when missing.

The test writes a distribution (a package plus its ``.dist-info`` with ``entry_points.txt``) into
a folder on ``sys.path``, exactly what ``pip install`` leaves behind, with one entry point in each
group: a stage, an entropy coder and a model.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic_vae import build_synthetic_vae
from vaerans_ecs import api, plugins
from vaerans_ecs.core.system import SYSTEMS
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.models import unregister_model
from vaerans_ecs.systems.entropy import CODERS, coder_names

DIST = "vaerans-demo-plugin"
MODULE = "vaerans_demo_plugin"

PLUGIN = '''
"""A demo plugin: a latent stage, an entropy coder and a model, registered by entry points only."""
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from vaerans_ecs.components import YUVW4
from vaerans_ecs.core.system import Mode, StageKind, System
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.entropy import EntropyCoder


class DemoNegate(System):
    name: ClassVar[str] = "DemoNegate"
    config_fields: ClassVar[tuple[str, ...]] = ("mode",)
    stage_kind = StageKind.CHANNEL

    def __init__(self, mode="forward"):
        self.mode = Mode(mode)

    def required_components(self):
        return (YUVW4,)

    def produced_components(self):
        return (YUVW4,)

    def inverse(self):
        return DemoNegate(Mode.INVERSE if self.mode is Mode.FORWARD else Mode.FORWARD)

    def run(self, world, eids):
        for eid in eids:
            z = world.view(world.get_component(eid, YUVW4).ref)
            ref = world.alloc(z.shape, np.float32)
            np.negative(z, out=world.view(ref))
            world.add_component(eid, YUVW4(ref=ref))


class DemoZlib(EntropyCoder):
    name: ClassVar[str] = "demo-zlib"

    def encode(self, bands):
        return zlib.compress(b"".join(np.ascontiguousarray(b).tobytes() for b in bands))

    def decode(self, data, sizes):
        try:
            raw = zlib.decompressobj().decompress(data, sum(sizes) + 1)
        except zlib.error as exc:
            raise BitstreamError(f"demo-zlib: {exc}") from None
        if len(raw) != sum(sizes):
            raise BitstreamError("demo-zlib: wrong size")
        flat = np.frombuffer(raw, dtype=np.uint8)
        return np.split(flat.copy(), np.cumsum(sizes)[:-1])


def demo_vae():
    return Path(__file__).parent / "model"
'''

ENTRY_POINTS = f"""
[vaerans_ecs.systems]
DemoNegate = {MODULE}:DemoNegate

[vaerans_ecs.coders]
demo-zlib = {MODULE}:DemoZlib

[vaerans_ecs.models]
demo-vae = {MODULE}:demo_vae
"""


def _forget() -> None:
    SYSTEMS.remove("DemoNegate")
    CODERS.remove("demo-zlib")
    unregister_model("demo-vae")
    sys.modules.pop(MODULE, None)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    pkg = site / MODULE
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    build_synthetic_vae(pkg / "model", stride=8)
    info = site / f"{MODULE}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    plugins.refresh()
    yield site
    _forget()
    plugins.refresh()


def _picture() -> np.ndarray:
    y, x = np.mgrid[0:40, 0:56]
    return np.stack([(x * 4) % 256, (y * 5) % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def test_plugin_is_loaded_lazily_and_round_trips(installed: Path) -> None:
    assert MODULE not in sys.modules  # nothing imported until a name is needed
    assert "demo-zlib" in coder_names()  # listing names loads the coders' entry points
    data = api.compress(_picture(), 70, "demo-vae", coder="demo-zlib", stages=[SYSTEMS.get("DemoNegate")()])
    info = api.inspect(data)
    assert [s.name for s in info.pipeline][:3] == ["OnnxVAEEncode", "Hadamard4", "DemoNegate"]
    assert info.model == "demo-vae"
    out = api.decompress(data)
    plain = api.decompress(api.compress(_picture(), 70, "demo-vae", coder="demo-zlib"))
    np.testing.assert_array_equal(out, plain)  # negation is exact and undone


def test_missing_plugin_names_the_distribution(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = api.compress(_picture(), 70, "demo-vae", coder="demo-zlib", stages=[SYSTEMS.get("DemoNegate")()])
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(installed)])
    _forget()
    plugins.refresh()
    with pytest.raises(BitstreamError, match=f"DemoNegate.*{DIST}") as exc:
        api.decompress(data)
    assert f"pip install {DIST}" in str(exc.value)
