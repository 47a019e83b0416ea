"""Which output each input gets, and which inputs cannot be done (before any work starts).

Rules: an input is never an output (its output would replace an input: that input fails); two
inputs mapping to one output is an error for the second one; the job's own files (journal, lock,
its own report, temporary files) are never inputs; and a file this job wrote earlier that another
input produces again is that input's output, not an input (outputs next to the inputs, globbed
again).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from vaerans_ecs.batch.inputs import InputFile, resolved
from vaerans_ecs.fileio import TMP_SUFFIX

__all__ = ["Item", "plan_items"]


@dataclass
class Item:
    """One input and its output (``rel``: the output's POSIX path inside the output folder)."""

    index: int
    input: Path
    output: Path
    rel: str
    error: str | None = None


def _output_of(inp: InputFile, src: Path, out_dir: Path, ext: str) -> Path:
    try:
        rel = src.relative_to(resolved(inp.base))
    except ValueError:
        rel = Path(inp.path.name)
    return out_dir / rel.with_suffix(ext)


def plan_items(
    found: list[InputFile],
    out_dir: Path,
    ext: str,
    reserved: Collection[Path],
    done: Callable[[Path, set[Path]], bool],
) -> tuple[list[Item], set[Path]]:
    """Items in input order, and the resolved paths of every input kept.

    ``out_dir`` is resolved; ``reserved``: resolved paths of the job's own files (never inputs);
    ``done(path, producers)``: whether ``path`` is an output this job wrote from one of
    ``producers`` and will skip (so it is not rewritten: a record never makes an input replaceable).
    """
    seen: set[Path] = set()
    planned: list[tuple[InputFile, Path, Path]] = []
    for inp in found:
        src = resolved(inp.path)
        if src in seen or src in reserved or inp.path.name.endswith(TMP_SUFFIX):
            continue
        seen.add(src)
        planned.append((inp, src, _output_of(inp, src, out_dir, ext)))
    producers: dict[Path, set[Path]] = {}
    for inp, src, out in planned:
        if inp.error is None:
            producers.setdefault(resolved(out), set()).add(src)
    kept = [
        (inp, src, out) for inp, src, out in planned if not ((p := producers.get(src, set()) - {src}) and done(src, p))
    ]
    sources = {src for _, src, _ in kept}
    items: list[Item] = []
    claimed: dict[Path, Path] = {}
    for inp, _, out in kept:
        item = Item(len(items), inp.path, out, out.relative_to(out_dir).as_posix(), inp.error)
        key = resolved(out)
        if item.error is None:
            if key in sources:
                item.error = f"its output {out} would overwrite an input file"
            elif key in claimed:
                item.error = f"its output {out} is also the output of {claimed[key]}; rename one of them"
            else:
                claimed[key] = inp.path
        items.append(item)
    return items, sources
