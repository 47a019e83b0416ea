"""The ``vaerans`` command line (also ``python -m vaerans_ecs``).

::

    vaerans compress IN... [-o OUT | --out-dir DIR] [-q Q | --target-bpp B] [--model NAME] [--force]
    vaerans decompress IN... [-o OUT | --out-dir DIR] [--format FMT] [--force]
    vaerans info FILE... [--json]
    vaerans batch JOB.toml [--workers N] [--executor local|dask] [--scheduler ADDR] [--overwrite]
    vaerans batch --example     (prints a commented job file)
    vaerans models [--json]
    vaerans eval ...            (arguments go to vaerans_ecs.eval)

Exit status: 0 when everything worked, 1 when some input failed (one ``error: FILE: message``
line each on stderr; ``-v``, before or after the command, adds the traceback), 2 for usage errors
(bad options, bad job file). ``-`` as the only input reads stdin, ``-o -`` writes stdout.

Output names: ``compress`` writes IN with its suffix replaced by ``.vae``; ``decompress`` writes
IN's whole name plus the format's extension (``photo.vae`` -> ``photo.vae.png``), so a decode never
lands on the image a stream was made from. ``--out-dir DIR`` puts those names in DIR (created
when missing; its parent must exist). Outputs are written atomically and never replace an input;
an existing file is replaced only with ``--force`` (the error says what to do instead). ``-o``
naming a folder, or a file in a folder that does not exist, is an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from vaerans_ecs import cli_sequence
from vaerans_ecs.cli_files import (
    EXIT_FAILED,
    EXIT_OK,
    CommandFailure,
    Reporter,
    UsageError,
    plan_outputs,
    read_input,
    run_files,
)
from vaerans_ecs.errors import ConfigError, ModelError, VaeransError

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns its status."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def _quality(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"quality must be in [1, 100], got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _max_error(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"max error must be an integer 1..16, got {text!r}") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"max error must be in 1..16, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from vaerans_ecs import __version__

    try:
        ort = version("onnxruntime")
    except PackageNotFoundError:
        ort = "not installed"
    py = ".".join(str(p) for p in sys.version_info[:3])
    return f"vaerans {__version__} (onnxruntime {ort}, Python {py})"


_VERBOSE_HELP = "more logging; tracebacks for errors"


def _build_parser() -> _Parser:
    # the commands' -v counts apart from the top-level one (a shared dest would let the command's
    # default 0 hide 'vaerans -v COMMAND'); main() adds them up
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", dest="verbose_cmd", action="count", default=0, help=_VERBOSE_HELP)

    parser = _Parser(
        prog="vaerans",
        description="Learned image compression: ONNX VAE + Hadamard + wavelet + uint8 quantizer + rANS.",
        epilog="Exit status: 0 ok, 1 some inputs failed, 2 usage error. 'vaerans COMMAND --help' for details.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help=_VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "compress", parents=[common], help="compress images to .vae streams",
        description="Compress images (any format Pillow reads) to .vae streams. Default output: the input "
        "with a .vae suffix, next to it.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files ('-' = stdin)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="output file (one input only; '-' = stdout)")
    where.add_argument("--out-dir", metavar="DIR", help="write IN's stem + .vae into DIR (created if missing)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=_quality, metavar="Q", help="quality 1..100 (default: [codec] quality)")
    rate.add_argument("--target-bpp", type=_positive_float, metavar="B", help="aim at B bits per pixel (within 5%%)")
    rate.add_argument("--lossless", action="store_true", help="exact: decodes to the very same pixels")
    rate.add_argument("--max-error", type=_max_error, metavar="K", help="every pixel and channel within K (1..16)")
    p.add_argument("--model", default="default", metavar="NAME", help="model name or folder (see 'vaerans models')")
    p.add_argument("-f", "--force", action="store_true", help="replace existing files (never inputs)")
    cli_sequence.add_compress_arguments(p)
    p.set_defaults(func=_cmd_compress)

    p = sub.add_parser(
        "decompress", parents=[common], help="decode .vae streams to images",
        description="Decode .vae streams. The output format follows the output's extension (any format "
        "Pillow writes). Default output: the input's whole name plus the format's extension, next to it "
        "(photo.vae -> photo.vae.png), so a decode never lands on the image the stream was made from.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help=".vae files ('-' = stdin)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="output file (one input only; '-' = stdout)")
    where.add_argument("--out-dir", metavar="DIR", help="write IN's name + extension into DIR (created if missing)")
    p.add_argument("--format", metavar="FMT", help="output format when not given by -o's extension (default png)")
    p.add_argument("--output-quality", type=_quality, metavar="Q",
                   help="quality 1..100 of a lossy output format (JPEG, WebP, AVIF, JXL): required for those")
    p.add_argument("--layers", type=_positive_int, metavar="N", help="decode only the first N layers (1: the base)")
    p.add_argument("-f", "--force", action="store_true", help="replace existing files (never inputs)")
    p.set_defaults(func=_cmd_decompress)

    p = sub.add_parser(
        "info", parents=[common], help="describe .vae streams without decoding them",
        description="Print what a stream's header says: size, sections, bpp, model, pipeline.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "batch", parents=[common], help="run a TOML batch job ([job] table)",
        description="Run the [job] table of a TOML file ('vaerans batch --example' prints a commented one). "
        "A job started again skips the files it already finished. Options override the file's keys.",
    )
    p.add_argument("job", metavar="JOB.toml", nargs="?")
    p.add_argument("--example", action="store_true", help="print a commented example job file and exit")
    p.add_argument("--workers", type=_positive_int, metavar="N", help="worker processes / tasks in flight")
    p.add_argument("--executor", choices=("local", "dask"), help="process pool (local) or dask.distributed")
    p.add_argument("--scheduler", metavar="ADDR", help="dask scheduler address (default: a LocalCluster)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace existing files (never inputs)")
    p.add_argument("--restart", action="store_true", help="ignore what earlier runs of this job finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "models", parents=[common], help="list the models that can be used",
        description="List every known model: name, decoder fingerprint, stride and where it comes from "
        "(builtin, a config file, registered, path). '*' marks the one 'default' stands for.",
    )
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.set_defaults(func=_cmd_models)

    sub.add_parser(
        "eval", help="rate-distortion evaluation (vaerans_ecs.eval; 'vaerans eval --help')", add_help=False
    )
    return parser


# -- helpers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cli_logging(verbosity: int) -> Iterator[None]:
    """Log records of vaerans_ecs go to stderr as ``warning: ...`` (``-v``: info, ``-vv``: debug).

    The logger's previous state is restored afterwards (``main`` may be called in-process).
    """
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowercaseLevelFormatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("vaerans_ecs")
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _LowercaseLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"{record.levelname}: "
        return prefix.lower() + text[len(prefix) :] if text.startswith(prefix) else text


# -- commands ------------------------------------------------------------------------------------


def _cmd_compress(args: argparse.Namespace) -> int:
    from vaerans_ecs import api
    from vaerans_ecs.models import get_model

    if args.sequence:
        return cli_sequence.compress_command(args)
    outputs = plan_outputs(args, ".vae")
    try:
        get_model(args.model)  # an unknown model fails before any file is read
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    def work(index: int, data: bytes) -> tuple[bytes, str]:
        stream = api.compress(
            data, args.quality, args.model, target_bpp=args.target_bpp, lossless=args.lossless,
            max_error=args.max_error,
        )
        info = api.inspect(stream)
        return stream, f"{info.width}x{info.height}, {len(stream)} bytes, {info.bpp:.4f} bpp"

    return run_files(args, outputs, work)


def _cmd_decompress(args: argparse.Namespace) -> int:
    from vaerans_ecs import api
    from vaerans_ecs.fileio import pillow_save_format
    from vaerans_ecs.imaging import encode_image, is_lossy_format

    status = cli_sequence.decompress_sequences(args)
    if status is not None:
        return status
    try:
        default_fmt, ext = pillow_save_format(args.format or "png")
    except VaeransError as exc:
        raise UsageError(f"vaerans decompress: --format: {exc}") from None
    outputs = plan_outputs(args, ext)
    formats: list[str] = []
    for out in outputs:
        if out is None or args.format:
            formats.append(default_fmt)
            continue
        try:
            formats.append(pillow_save_format(out.suffix)[0] if out.suffix else default_fmt)
        except VaeransError as exc:
            raise UsageError(f"vaerans decompress: {out}: {exc}") from None
    for fmt in set(formats):
        lossy = is_lossy_format(fmt)
        if lossy and args.output_quality is None:
            raise UsageError(f"vaerans decompress: writing {fmt} is lossy: give --output-quality Q (1..100)")
        if not lossy and args.output_quality is not None:
            raise UsageError(f"vaerans decompress: {fmt} is lossless: --output-quality does not apply")

    def work(index: int, data: bytes) -> tuple[bytes, str]:
        pixels = api.decompress(data, layers=args.layers)
        meta = api.stream_meta(api.inspect(data))
        out = encode_image(pixels, meta, formats[index], quality=args.output_quality)
        return out, f"{pixels.shape[1]}x{pixels.shape[0]} {meta.mode} {formats[index]}"

    return run_files(args, outputs, work)


def _pipeline_text(pipeline: Sequence[Any]) -> str:
    parts = []
    for system in pipeline:
        cfg = system.get_config()
        fields = ", ".join(f"{k}={cfg[k]!r}" for k in system.stream_field_names() if k in cfg)
        parts.append(f"{system.name}({fields})" if fields else system.name)
    return " | ".join(parts)


def _settings_text(settings: dict[str, Any]) -> str:
    """``Stage(key=value, ...)`` of a stage's :meth:`~vaerans_ecs.core.system.System.stream_settings`."""
    fields = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in settings.items() if k != "stage"
    )
    return f"{settings['stage']}({fields})" if fields else str(settings["stage"])


def _model_status(name: str, fingerprint: str) -> str:
    from vaerans_ecs.models import registered_model

    if not name:
        return "no model"
    try:
        spec = registered_model(name)
    except ModelError:
        return "not installed here: 'vaerans models' lists what is"
    if fingerprint and spec.fingerprint != fingerprint:
        return f"installed with another decoder (fingerprint {spec.fingerprint}): cannot decode"
    return f"installed ({spec.source})"


def _describe(path: str, data: bytes) -> dict[str, Any]:
    from vaerans_ecs import api

    info = api.inspect(data)
    model = info.model
    fingerprint = info.fingerprint
    meta = api.stream_meta(info)
    return {
        "file": path,
        "width": info.width,
        "height": info.height,
        "channels": info.channels,
        "bit_depth": info.bit_depth,
        "mode": meta.mode,
        "metadata": {"icc_bytes": len(meta.icc or b""), "exif_bytes": len(meta.exif or b"")},
        "version": info.version,
        "total_bytes": info.total_bytes,
        "sections": info.stream.section_bytes,
        "bpp": info.bpp,
        "model": model,
        "fingerprint": fingerprint,
        "model_status": _model_status(model, fingerprint),
        "layers": [list(layer) for layer in info.stages],
        "pipeline": [s.get_config() for s in info.pipeline],
        "pipeline_text": _pipeline_text(info.pipeline),
    }


def _cmd_info(args: argparse.Namespace) -> int:
    report = Reporter(args.verbose)
    described = []
    for name in args.files:
        try:
            is_seq = cli_sequence.is_sequence_file(name)
            described.append(cli_sequence.describe(name) if is_seq else _describe(name, read_input(name)))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            report.error(name, exc)
    if args.json:
        json.dump(described, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return report.status
    for d in described:
        if d.get("kind") == "sequence":
            cli_sequence.print_description(d)
            continue
        print(d["file"])
        print(f"  image     {d['width']} x {d['height']} ({d['width'] * d['height']} pixels), {d['mode']}, "
              f"{d['channels']} channel(s) of {d['bit_depth']} bits")
        print(f"  size      {d['total_bytes']} bytes, {d['bpp']:.4f} bpp")
        print("  sections  " + ", ".join(f"{k} {v} B" for k, v in d["sections"].items()))
        print(f"  stream    version {d['version']}, {len(d['layers'])} layer(s)")
        print(f"  model     {d['model'] or '-'} (fingerprint {d['fingerprint'] or '-'}): {d['model_status']}")
        for index, layer in enumerate(d["layers"]):
            stages = " | ".join(_settings_text(s) for s in layer)
            print(f"  {'pipeline' if index == 0 else f'layer {index}':9s} {stages}")
    return report.status


def _cmd_models(args: argparse.Namespace) -> int:
    from vaerans_ecs.models import default_models, list_models

    specs = list_models()
    try:
        defaults = [spec.name for spec in default_models()]
    except ModelError:
        defaults = []
    if args.json:
        rows = [{**spec.describe(), "default": spec.name in defaults} for spec in specs]
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    if not specs:
        print(
            "no models: add a [models.NAME] section (encoder = ..., decoder = ...) to vaerans_ecs.toml, "
            "or reinstall vaerans_ecs to get the built-in models",
            file=sys.stderr,
        )
        return EXIT_OK
    rows_text = [("NAME", "FINGERPRINT", "STRIDE", "RATES (bpp)", "SOURCE", "FILES")]
    for spec in specs:
        same = spec.encoder.parent == spec.decoder.parent
        files = str(spec.encoder.parent) if same else f"{spec.encoder}, {spec.decoder}"
        mark = " *" if spec.name in defaults else ""
        rates = f"{spec.curve[0].bpp:.3f}-{spec.curve[-1].bpp:.3f}" if spec.curve else "-"
        rows_text.append((spec.name + mark, spec.fingerprint, str(spec.stride), rates, spec.source, files))
    widths = [max(len(r[i]) for r in rows_text) for i in range(5)]
    for row in rows_text:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    if len(defaults) > 1:
        print(f"* = the models 'default' picks from by quality or target rate ({', '.join(defaults)})")
    elif defaults:
        print(f"* = the model 'default' stands for ({defaults[0]})")
    if any(spec.curve for spec in specs):
        print("RATES: the range of the model's measured rate curve (rd.json, held-out photos)")
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from vaerans_ecs.batch import ProgressBar, example_job, load_job, run_job

    if args.example:
        sys.stdout.write(example_job())
        return EXIT_OK
    if args.job is None:
        raise UsageError("vaerans batch: give a job file (JOB.toml), or --example to print one")
    try:
        job, cfg = load_job(args.job)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    updates = {k: getattr(args, k) for k in ("workers", "executor", "scheduler", "overwrite")}
    job = job.model_copy(update={k: v for k, v in updates.items() if v is not None})
    bar = None if args.no_progress else ProgressBar(sys.stderr)
    try:
        report = run_job(job, config=cfg, on_progress=bar, restart=args.restart)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print("interrupted: run the same job again to finish it (finished files are skipped)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except VaeransError as exc:
        if bar is not None:
            bar.close()
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"error: {args.job}: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    return _batch_outcome(args, report)


def _batch_outcome(args: argparse.Namespace, report: Any) -> int:
    """Print each failed file (unmatched patterns were logged by the job) and the summary."""
    for result in report.files:
        if result.status == "error":
            print(f"error: {result.input}: {result.error}", file=sys.stderr)
            if args.verbose and result.traceback:
                print(result.traceback.rstrip(), file=sys.stderr)
    if not report.files:
        print(f"error: {args.job}: no input files", file=sys.stderr)
        return EXIT_FAILED
    print(report.summary())
    return EXIT_FAILED if report.failed else EXIT_OK


def _cmd_eval(argv: list[str], verbose: int) -> int:
    try:
        import importlib

        evaluation = importlib.import_module("vaerans_ecs.eval")
        entry: Callable[[list[str]], int] = evaluation.main
    except ImportError as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(
            f"error: 'vaerans eval' is not available: {exc}. It needs the evaluation extra: "
            "python -m pip install 'vaerans_ecs[eval]'",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except AttributeError:
        print("error: 'vaerans eval' is not available in this installation (vaerans_ecs.eval has no main)",
              file=sys.stderr)
        return EXIT_FAILED
    status = entry(argv)
    return int(status or 0)


def _split_eval(argv: list[str]) -> tuple[list[str], int] | None:
    """``(eval_args, verbosity)`` when the command is ``eval`` (everything after it goes to eval)."""
    verbose = 0
    for i, arg in enumerate(argv):
        if arg == "eval":
            return argv[i + 1 :], verbose
        if arg in ("-v", "--verbose"):
            verbose += 1
        elif arg.startswith("-v") and set(arg[1:]) == {"v"}:
            verbose += len(arg) - 1
        else:
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        split = _split_eval(args_list)
        if split is not None:
            with _cli_logging(split[1]):
                return _cmd_eval(*split)
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        args.verbose += args.verbose_cmd  # 'vaerans -v CMD' and 'vaerans CMD -v' alike
        with _cli_logging(args.verbose):
            status: int = args.func(args)
        return status
    except UsageError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. 'vaerans info x.vae | head'
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
