"""A job's inputs: globs and list files expanded to files, each with the folder its output path keeps.

``inputs`` is a list of globs (``**`` recurses) and plain paths, or the path of a text file listing
one path or glob per line (``#`` comments; relative entries resolve against the list's folder).
An output keeps the input's path relative to the folder its pattern starts in
(``photos/a/x.png`` from ``photos/**/*.png`` becomes ``OUT/a/x.vae``); plain paths of a list file
keep their paths relative to their common folder.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from vaerans_ecs.errors import ConfigError

__all__ = ["InputFile", "expand_inputs", "has_magic", "pattern_base", "resolved"]


@dataclass(frozen=True)
class InputFile:
    """One input: its path, the folder its output path is relative to, and why it cannot be used."""

    path: Path
    base: Path
    error: str | None = None


def has_magic(text: str) -> bool:
    """True when ``text`` is a glob pattern."""
    return any(c in text for c in "*?[")


def pattern_base(pattern: str) -> Path:
    """The folder a glob starts in (outputs keep paths relative to it)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path where resolving fails (symlink loops and the like)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # pragma: no cover - platform dependent
        return path.absolute()


def _read_list(listing: Path) -> tuple[list[str], Path | None]:
    """Entries of a list file (made relative to its folder) and the common folder of its plain paths."""
    try:
        text = listing.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the input list {listing}: {exc}") from None
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(str(listing.parent / Path(line).expanduser()))
    plain = [Path(p) for p in lines if not has_magic(p)]
    base = Path(os.path.commonpath([str(p.parent) for p in plain])) if plain else None
    return lines, base


def expand_inputs(inputs: list[str] | str) -> tuple[list[InputFile], list[str]]:
    """Input files (with the folder their output path starts from) and the patterns that matched nothing."""
    literal_base: Path | None = None
    if isinstance(inputs, str):
        if Path(inputs).is_file():
            patterns, literal_base = _read_list(Path(inputs))
        elif has_magic(inputs):
            patterns = [inputs]
        else:
            raise ConfigError(f"job inputs: {inputs} is neither a list file nor a glob")
    else:
        patterns = list(inputs)
    found: list[InputFile] = []
    unmatched: list[str] = []
    for pattern in patterns:
        if has_magic(pattern):
            base = pattern_base(pattern)
            files = [Path(m) for m in sorted(glob.glob(pattern, recursive=True)) if not Path(m).is_dir()]
            if not files:
                unmatched.append(pattern)
            found.extend(InputFile(f, base) for f in files)
            continue
        path = Path(pattern)
        base = literal_base if literal_base is not None else path.parent
        if path.is_dir():
            found.append(InputFile(path, base, "is a directory (use a glob such as DIR/*.png)"))
        elif not path.exists():
            found.append(InputFile(path, base, "no such file"))
        else:
            found.append(InputFile(path, base))
    return found, unmatched
