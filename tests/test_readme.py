"""Every ```python block of the README runs, in order, as one script (constriction's rule:
a documented example that does not run is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_has_python_examples() -> None:
    assert len(BLOCK.findall(README.read_text(encoding="utf-8"))) >= 2


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yy, xx = np.mgrid[0:96, 0:128]
    picture = np.dstack([xx * 2, yy * 2, (xx + yy) % 256]).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, block in enumerate(BLOCK.findall(README.read_text(encoding="utf-8")), 1):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    out = namespace["out"]
    assert isinstance(out, np.ndarray) and out.shape == picture.shape and out.dtype == np.uint8
    assert isinstance(namespace["data"], bytes)


def test_relative_links_point_to_files() -> None:
    # a link to an ignored (never committed) file breaks on a clean clone, where CI runs this
    doc = README.name
    root = README.parent
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local, f"{doc} links to no local file (pattern broken?)"
    missing = [t for t in local if not (root / t).exists()]
    assert not missing, f"{doc} links to missing files: {missing}"
