"""How ``vaerans compress`` and ``decompress`` name, guard and write their output files.

Names: ``compress`` writes IN with its suffix replaced by ``.vae``; ``decompress`` writes IN's
whole name plus the format's extension (``photo.vae`` -> ``photo.vae.png``), so a decode never
lands on the image its stream was made from; ``--out-dir DIR`` puts those names in DIR (created
when missing, its parent must exist). Guards, checked before an input is read and again when the
output is published: never an input (even with ``--force``), never a folder, never into a missing
folder, and never over an existing file without ``--force``. Error messages say what to do instead
and never suggest the flag that would replace a file.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from vaerans_ecs.errors import VaeransError

__all__ = ["EXIT_FAILED", "EXIT_OK", "CommandFailure", "Reporter", "UsageError", "plan_outputs", "read_input",
           "run_files"]

EXIT_OK = 0
EXIT_FAILED = 1


class UsageError(Exception):
    """A command-line mistake found after parsing (exit status 2)."""


class CommandFailure(Exception):  # noqa: N818 - not an error of the library: a message for the user
    """A command that cannot go on, with the message to print (exit status 1)."""


class Reporter:
    """Counts failures and prints one ``error: FILE: message`` line each."""

    def __init__(self, verbose: int) -> None:
        self.verbose = verbose
        self.failed = 0

    def error(self, name: str, exc: BaseException | str) -> None:
        """Print ``error: NAME: message`` (with the traceback under -v) and count it."""
        self.failed += 1
        if isinstance(exc, BaseException):
            message = message_of(exc)
            if self.verbose:
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        else:
            message = exc
        print(f"error: {name}: {message}", file=sys.stderr)

    @property
    def status(self) -> int:
        """The exit status: 1 when anything failed."""
        return EXIT_FAILED if self.failed else EXIT_OK


def message_of(exc: BaseException) -> str:
    """A one-line message for ``exc``: the OS reason, a library error's text, or the exception type and text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, VaeransError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def read_input(name: str) -> bytes:
    """The bytes of file ``name`` (``-``: stdin)."""
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file (or one path, when either does not exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _default_output(name: str, ext: str, command: str) -> Path:
    """compress: IN with its suffix replaced; decompress: IN's whole name + ``ext`` (never a source image)."""
    path = Path(name)
    return path.with_suffix(ext) if command == "compress" else path.with_name(path.name + ext)


def _out_dir(args: argparse.Namespace) -> Path:
    """``--out-dir``, created when missing (its parent must exist)."""
    folder = Path(args.out_dir)
    if folder.is_dir():
        return folder
    if os.path.lexists(folder):
        raise CommandFailure(f"--out-dir {folder} is not a folder")
    if not folder.parent.is_dir():
        raise CommandFailure(f"--out-dir {folder}: folder {folder.parent} does not exist")
    try:
        folder.mkdir()
    except OSError as exc:
        raise CommandFailure(f"cannot create --out-dir {folder}: {exc.strerror or exc}") from None
    return folder


def plan_outputs(args: argparse.Namespace, ext: str) -> list[Path | None]:
    """Output path per input (None = stdout); usage errors raise UsageError."""
    inputs: list[str] = args.inputs
    if "-" in inputs and len(inputs) > 1:
        raise UsageError(f"vaerans {args.command}: '-' (stdin) must be the only input")
    if args.output is not None:
        if len(inputs) > 1:
            raise UsageError(f"vaerans {args.command}: -o/--output takes one input; use --out-dir for several")
        return [None if args.output == "-" else Path(args.output)]
    if inputs == ["-"]:
        raise UsageError(f"vaerans {args.command}: reading stdin needs -o OUT (or -o - for stdout)")
    names = [_default_output(name, ext, args.command) for name in inputs]
    folder = _out_dir(args) if args.out_dir is not None else None
    return [folder / path.name if folder is not None else path for path in names]


def _output_problem(args: argparse.Namespace, out: Path, inputs: Sequence[Path]) -> str | None:
    """Why ``out`` may not be written (None: it may). Never suggests replacing a file."""
    from vaerans_ecs.fileio import missing_folder

    if any(same_file(out, inp) for inp in inputs):
        return f"refusing to overwrite the input file {out}"
    if out.is_dir():
        hint = f"use --out-dir {out} to write into it" if args.output else "choose another name with -o OUT"
        return f"{out} is a folder; {hint}"
    folder = missing_folder(out)
    if folder is not None:
        return f"cannot write {out}: folder {folder} does not exist"
    if os.path.lexists(out) and not args.force:
        return _exists(out)
    return None


def _exists(out: Path) -> str:
    return f"{out} exists and was left as it is; choose another name with -o OUT or another folder with --out-dir"


def _write_output(args: argparse.Namespace, out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` atomically; without --force, never over a file (even one that just appeared)."""
    from vaerans_ecs.fileio import publish, write_temp

    try:
        publish(write_temp(out, data), out, replace=args.force)
    except FileExistsError:
        raise CommandFailure(_exists(out)) from None


def run_files(
    args: argparse.Namespace,
    outputs: Sequence[Path | None],
    work: Callable[[int, bytes], tuple[bytes, str]],
) -> int:
    """Read each input, ``work`` it into output bytes, write them (guarding inputs and existing files)."""
    report = Reporter(args.verbose)
    inputs = [Path(n) for n in args.inputs if n != "-"]
    claimed: dict[Path, str] = {}
    for index, (name, out) in enumerate(zip(args.inputs, outputs, strict=True)):
        try:
            if out is not None:
                problem = _output_problem(args, out, inputs)
                key = out.resolve()
                if problem is None and key in claimed:
                    problem = f"output {out} is also the output of {claimed[key]}"
                if problem is not None:
                    report.error(name, problem)
                    continue
                claimed[key] = name
            result, note = work(index, read_input(name))
            if out is None:
                sys.stdout.buffer.write(result)
                sys.stdout.flush()
            else:
                _write_output(args, out, result)
                print(f"{name} -> {out} ({note})")
        except KeyboardInterrupt:
            raise
        except CommandFailure as exc:
            report.error(name, str(exc))
        except Exception as exc:
            report.error(name, exc)
    return report.status
