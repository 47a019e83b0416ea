"""Fixtures shared by every test package.

Synthetic VAE models (``tests/synthetic_vae.py``: a tiny deterministic ONNX "VAE" built with
``onnx.helper``, no torch; decode(encode(x)) is a per-block projection reproducible in numpy with
``tests.synthetic_vae.reference_roundtrip``):

* ``synthetic_model`` (session scope): the :class:`~vaerans_ecs.models.ModelSpec` of
  ``"synthetic-s8"`` (stride 8, input range 0..1, latent_scale ~0.505, step range 0.05..2),
  registered with ``register_model`` so any code can use it by name::

      def test_roundtrip(synthetic_model):
          world = World()
          e = world.spawn_image(img)
          world.pipe(e) | OnnxVAEEncode(synthetic_model.name) | ... | OnnxVAEDecode(synthetic_model.name)

  Pass the name explicitly: ``"default"`` resolves to the built-in model, not to this one.
* ``synthetic_model_s4`` (session scope): the same with stride 4, ``"synthetic-s4"``.
* ``make_synthetic_model`` (function scope): ``make_synthetic_model("name", smooth=True,
  latent_shift=0.3, ...)`` builds a variant (keywords of ``build_synthetic_vae``), registers it
  for one test and unregisters it afterwards; returns its ModelSpec.
* ``synthetic_config_file`` (session scope): a ``vaerans_ecs.toml`` that registers
  ``synthetic-s8`` and makes it the default model, for subprocesses (``VAERANS_CONFIG``).

The models are written once per session under pytest's tmp dir; tests are skipped if the
``onnx`` package (a test dependency) is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vaerans_ecs.models import ModelSpec, register_model, unregister_model


def _build(folder: Path, name: str, **kwargs: Any) -> ModelSpec:
    pytest.importorskip("onnx")
    from tests.synthetic_vae import build_synthetic_vae

    enc, dec = build_synthetic_vae(folder, model_name=name, **kwargs)
    return register_model(name, encoder=enc, decoder=dec, replace_existing=True)


@pytest.fixture(scope="session")
def synthetic_model(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    """``"synthetic-s8"``: stride-8 synthetic VAE, registered for the whole session."""
    return _build(tmp_path_factory.mktemp("synthetic-s8"), "synthetic-s8", stride=8)


@pytest.fixture(scope="session")
def synthetic_model_s4(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    """``"synthetic-s4"``: stride-4 synthetic VAE, registered for the whole session."""
    return _build(tmp_path_factory.mktemp("synthetic-s4"), "synthetic-s4", stride=4)


@pytest.fixture
def make_synthetic_model(tmp_path: Path) -> Iterator[Callable[..., ModelSpec]]:
    """Factory ``(name, **build_synthetic_vae_kwargs) -> ModelSpec`` registered for one test."""
    names: list[str] = []

    def make(name: str, **kwargs: Any) -> ModelSpec:
        names.append(name)
        return _build(tmp_path / name, name, **kwargs)

    yield make
    for name in names:
        unregister_model(name)


@pytest.fixture(scope="session")
def synthetic_config_file(tmp_path_factory: pytest.TempPathFactory, synthetic_model: ModelSpec) -> Path:
    """A config file making ``synthetic-s8`` the default model, for CLI and batch subprocesses."""
    cfg = tmp_path_factory.mktemp("synthetic-config") / "vaerans_ecs.toml"
    cfg.write_text(
        f'[codec]\nmodel = "{synthetic_model.name}"\n\n'
        f"[models.{synthetic_model.name}]\n"
        f"encoder = {json.dumps(str(synthetic_model.encoder))}\n"
        f"decoder = {json.dumps(str(synthetic_model.decoder))}\n"
    )
    return cfg
