"""Turn a results payload (:func:`vaerans_ecs.eval.harness.run_eval`) into files.

``write_report(payload, out)`` writes:

``results.json``
    The payload plus the derived ``curves``, ``bd_rate``, ``speed`` and ``stages`` sections;
    non-finite floats become ``null``.
``results.csv``
    One row per image and point: codec, quality, bytes, bpp, PSNR, PSNR-Y, MS-SSIM (and in dB),
    encode/decode seconds (medians of the repeats), then one column per pipeline stage
    (``enc_<Stage>`` / ``dec_<Stage>`` seconds, empty for codecs without stages).
``rd_psnr.png``, ``rd_msssim.png``
    Mean rate-distortion curves of every codec on one plot each (matplotlib, Agg backend); the
    MS-SSIM plot uses ``-10 log10(1 - MS-SSIM)``.
``summary.md``
    Failures first (a bound not held, a codec error), then the lossless and near-lossless tables
    (:mod:`vaerans_ecs.eval.tables`), BD-rates of the lossy codecs against JPEG and WebP (PSNR over
    the whole overlap and within the ``bd_range`` of the run, MS-SSIM), whether our curves rise at
    every step, the per-image bars, speed (images/s, megapixels/s), per-stage times of our
    pipelines, and the models' MACs per pixel. :func:`tables_markdown` is the part the CLI prints.

:func:`read_payload` reads a ``results.json`` back so that the report can be written again
without coding anything (``vaerans eval --report-only --out DIR``, e.g. with another ``--bd-range``).

Mean curves: per codec and quality, bpp, PSNR and MS-SSIM are averaged over the images (the
MS-SSIM dB value is that of the mean MS-SSIM). BD-rates compare these mean curves
(:func:`vaerans_ecs.eval.bdrate.bd_rate`; MS-SSIM in dB). Speed: images/s is the number of
coded points divided by the total seconds, megapixels/s the total pixels over the total seconds,
over every quality of the grid.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vaerans_ecs.eval.bdrate import bd_rate, quality_overlap
from vaerans_ecs.eval.tables import (
    exact_markdown,
    exact_table,
    failures_markdown,
    per_image_markdown,
    per_image_table,
    rise_check,
    rise_markdown,
)
from vaerans_ecs.systems.metrics import ms_ssim_db

__all__ = [
    "ANCHORS",
    "CSV_FIELDS",
    "bd_table",
    "mean_curves",
    "read_payload",
    "speed_table",
    "stage_table",
    "tables_markdown",
    "write_report",
]

#: BD-rate anchors: (family, display name).
ANCHORS: tuple[tuple[str, str], ...] = (("jpeg", "JPEG"), ("webp", "WebP"))
CSV_FIELDS = (
    "image",
    "width",
    "height",
    "codec",
    "family",
    "quality",
    "bytes",
    "bpp",
    "psnr",
    "psnr_y",
    "ms_ssim",
    "ms_ssim_db",
    "encode_s",
    "decode_s",
    "channels",
    "mode",
    "bound",
    "max_abs_error",
    "bound_held",
    "encode_cpu_s",
    "decode_cpu_s",
)


def _codec_order(results: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["codec"] for r in results))


def mean_curves(results: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per codec, per quality (in result order): means over the images."""
    groups: dict[str, dict[float, list[Mapping[str, Any]]]] = {}
    for r in results:
        groups.setdefault(r["codec"], {}).setdefault(float(r["quality"]), []).append(r)
    curves: dict[str, list[dict[str, Any]]] = {}
    for codec, by_q in groups.items():
        pts = []
        for q, rows in by_q.items():
            ms = statistics.fmean(float(r["ms_ssim"]) for r in rows)
            pts.append(
                {
                    "quality": q,
                    "images": len(rows),
                    "bpp": statistics.fmean(float(r["bpp"]) for r in rows),
                    "psnr": statistics.fmean(float(r["psnr"]) for r in rows),
                    "psnr_y": statistics.fmean(float(r["psnr_y"]) for r in rows),
                    "ms_ssim": ms,
                    "ms_ssim_db": ms_ssim_db(ms),
                    "encode_s": statistics.fmean(float(r["encode_s"]) for r in rows),
                    "decode_s": statistics.fmean(float(r["decode_s"]) for r in rows),
                }
            )
        curves[codec] = pts
    return curves


def _anchor(curves: Mapping[str, Any], results: Sequence[Mapping[str, Any]], family: str) -> str | None:
    if family in curves:
        return family
    for r in results:
        if r["family"] == family:
            return str(r["codec"])
    return None


def lossy_codecs(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Codecs with a rate-distortion curve (no bound), in result order."""
    return [c for c in _codec_order(results) if any(r["codec"] == c and r.get("bound") is None for r in results)]


def bd_table(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    results: Sequence[Mapping[str, Any]],
    bd_range: Sequence[float] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{codec: {anchor: {"psnr": %, "ms_ssim": %, "psnr_overlap": [lo, hi], ...}}}`` per anchor present.

    Lossy codecs only. With ``bd_range`` = (lo, hi), also ``psnr_range`` (PSNR BD-rate over the
    overlap within [lo, hi] dB) and ``psnr_range_overlap``.
    """
    lossy = lossy_codecs(results)
    rows = [r for r in results if r["codec"] in lossy]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for family, _ in ANCHORS:
        ref = _anchor(curves, rows, family)
        if ref is None:
            continue
        rc = curves[ref]
        for codec in lossy:
            pts = curves[codec]
            cell: dict[str, Any] = {}
            for metric, key in (("psnr", "psnr"), ("ms_ssim", "ms_ssim_db")):
                args = ([p["bpp"] for p in rc], [p[key] for p in rc], [p["bpp"] for p in pts], [p[key] for p in pts])
                cell[metric] = bd_rate(*args)
                span = quality_overlap(*args)
                cell[f"{metric}_overlap"] = list(span) if span is not None else None
                if metric == "psnr" and bd_range is not None:
                    within = (float(bd_range[0]), float(bd_range[1]))
                    cell["psnr_range"] = bd_rate(*args, quality_range=within)
                    span = quality_overlap(*args, quality_range=within)
                    cell["psnr_range_overlap"] = list(span) if span is not None else None
            table.setdefault(codec, {})[ref] = cell
    return table


def speed_table(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per codec: points, encode/decode images/s and megapixels/s over the whole grid."""
    out: dict[str, dict[str, float]] = {}
    for codec in _codec_order(results):
        rows = [r for r in results if r["codec"] == codec]
        px = sum(int(r["width"]) * int(r["height"]) for r in rows)
        enc = sum(float(r["encode_s"]) for r in rows)
        dec = sum(float(r["decode_s"]) for r in rows)
        out[codec] = {
            "points": len(rows),
            "encode_images_per_s": len(rows) / enc if enc > 0 else math.inf,
            "encode_mpix_per_s": px / enc / 1e6 if enc > 0 else math.inf,
            "decode_images_per_s": len(rows) / dec if dec > 0 else math.inf,
            "decode_mpix_per_s": px / dec / 1e6 if dec > 0 else math.inf,
            "mean_encode_s": enc / len(rows),
            "mean_decode_s": dec / len(rows),
        }
    return out


def stage_table(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per codec with stages: mean seconds per encode and decode stage (stage order kept)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for codec in _codec_order(results):
        rows = [r for r in results if r["codec"] == codec]
        entry: dict[str, dict[str, float]] = {}
        for key in ("encode_stages", "decode_stages"):
            names: dict[str, None] = {}
            for r in rows:
                names.update(dict.fromkeys(r.get(key) or {}))
            if names:
                entry[key.split("_")[0]] = {
                    n: statistics.fmean(float((r.get(key) or {}).get(n, 0.0)) for r in rows) for n in names
                }
        if entry:
            out[codec] = entry
    return out


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _stage_columns(results: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    enc: dict[str, None] = {}
    dec: dict[str, None] = {}
    for r in results:
        enc.update(dict.fromkeys(r.get("encode_stages") or {}))
        dec.update(dict.fromkeys(r.get("decode_stages") or {}))
    return list(enc), list(dec)


def write_csv(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One row per image and point (see the module doc)."""
    enc, dec = _stage_columns(results)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CSV_FIELDS, *(f"enc_{n}" for n in enc), *(f"dec_{n}" for n in dec)])
        for r in results:
            es, ds = r.get("encode_stages") or {}, r.get("decode_stages") or {}
            row = [_cell(r[f]) for f in CSV_FIELDS]
            row += [_cell(es[n]) if n in es else "" for n in enc]
            row += [_cell(ds[n]) if n in ds else "" for n in dec]
            writer.writerow(row)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    return str(v)


def plot_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], key: str, ylabel: str, path: Path) -> None:
    """One RD plot of ``key`` against bpp with a line per codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    for codec, pts in curves.items():
        ordered = sorted(pts, key=lambda p: p["bpp"])
        xs = [p["bpp"] for p in ordered]
        ys = [p[key] if p[key] is not None and math.isfinite(p[key]) else math.nan for p in ordered]
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.4, label=codec)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: Any, spec: str = ".2f", unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:{spec}}{unit}"


def _loads(values: Any) -> str:
    return "n/a" if not values else ", ".join(f"{v:.1f}" for v in values)


def _bd_markdown(payload: Mapping[str, Any]) -> list[str]:
    """The BD-rate tables (lossy codecs against each anchor present)."""
    bd = payload["bd_rate"]
    if not bd:
        return []
    anchors = list(dict.fromkeys(a for row in bd.values() for a in row))
    rng = payload["meta"].get("bd_range")
    cols: list[tuple[str, str, str]] = []  # (anchor, key, header)
    for a in anchors:
        cols.append((a, "psnr", f"vs {a} PSNR"))
        if rng:
            cols.append((a, "psnr_range", f"vs {a} PSNR [{rng[0]:g}, {rng[1]:g}] dB"))
        cols.append((a, "ms_ssim", f"vs {a} MS-SSIM"))
    lines = [
        "## BD-rate",
        "",
        "Bjontegaard delta rate of each lossy codec against the anchor (PCHIP in log-rate over the quality range "
        "both mean curves cover; MS-SSIM in dB"
        + (f"; the [{rng[0]:g}, {rng[1]:g}] dB columns integrate over the part of that range within it" if rng else "")
        + "). Negative = fewer bits for the same quality; n/a = the curves do not overlap (there).",
        "",
        f"| codec | {' | '.join(h for _, _, h in cols)} |",
        "| --- |" + " --- |" * len(cols),
    ]
    for codec, row in bd.items():
        lines.append(f"| {codec} | " + " | ".join(_fmt(row.get(a, {}).get(k), "+.1f", " %") for a, k, _ in cols) + " |")
    lines += ["", "Quality range each BD-rate integrates over (PSNR dB; MS-SSIM dB):", ""]
    lines += [f"| codec | {' | '.join(h for _, _, h in cols)} |", "| --- |" + " --- |" * len(cols)]
    for codec, row in bd.items():
        spans = []
        for a, k, _ in cols:
            span = row.get(a, {}).get(f"{k}_overlap")
            spans.append(f"{span[0]:.2f} - {span[1]:.2f}" if span else "none")
        lines.append(f"| {codec} | {' | '.join(spans)} |")
    return [*lines, ""]


def _curve_points_markdown(payload: Mapping[str, Any]) -> list[str]:
    """Mean points of our lossy curves (quality, bpp, PSNR, MS-SSIM)."""
    ours = [c for c in lossy_codecs(payload["results"]) if c.split(":")[0] == "vaerans"]
    lines: list[str] = []
    for codec in ours:
        pts = payload["curves"][codec]
        lines += [f"**{codec}** mean curve: " + ", ".join(
            f"q{p['quality']:g} {p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in pts), ""]
    return lines


def tables_markdown(payload: Mapping[str, Any]) -> str:
    """The tables the CLI prints: failures, lossless, near-lossless, BD-rate, curve checks, per image."""
    lines = [
        *failures_markdown(payload.get("failures", [])),
        *exact_markdown(payload["exact"]),
        *_bd_markdown(payload),
        *rise_markdown(payload["rises"]),
        *per_image_markdown(payload["per_image"]),
    ]
    return "\n".join(lines)


def summary_markdown(payload: Mapping[str, Any]) -> str:
    """The ``summary.md`` text."""
    meta = payload["meta"]
    curves = payload["curves"]
    lines = [
        "# Evaluation summary",
        "",
        f"- data: `{meta['data']}`, {len(meta['images'])} images, {meta['repeats']} repeat(s) per point "
        f"(times are medians), warm-up run per codec: {meta['warmup']}",
        f"- machine: {meta['platform']}, {meta['cpus']} CPUs, Python {meta['python']}, Pillow {meta['pillow']}; "
        f"load average (1, 5, 15 min) at start {_loads(meta.get('load_avg'))}, "
        f"at end {_loads(meta.get('load_avg_end'))}",
        f"- date {meta['date']}, total run time {meta['elapsed_s']:.1f} s",
        "",
        *failures_markdown(payload.get("failures", [])),
        "## Codecs",
        "",
        "| codec | qualities | what runs |",
        "| --- | --- | --- |",
    ]
    for c in payload["codecs"]:
        what = c.get("description") if c.get("available") else f"**skipped**: {c.get('reason')}"
        lines.append(f"| {c['label']} | {', '.join(f'{q:g}' for q in c['qualities'])} | {what} |")
    lines += ["", *exact_markdown(payload["exact"])]
    lossy = lossy_codecs(payload["results"])
    if lossy:
        lines += ["## Rate-distortion (mean over images)", ""]
        lines += ["| codec | bpp range | PSNR range (dB) | MS-SSIM range |", "| --- | --- | --- | --- |"]
    for codec in lossy:
        pts = curves[codec]
        bpp = [p["bpp"] for p in pts]
        ps = [p["psnr"] for p in pts]
        ms = [p["ms_ssim"] for p in pts]
        lines.append(
            f"| {codec} | {min(bpp):.3f} - {max(bpp):.3f} | {min(ps):.2f} - {max(ps):.2f} | "
            f"{min(ms):.4f} - {max(ms):.4f} |"
        )
    lines += ["", *_bd_markdown(payload), *rise_markdown(payload["rises"]), *per_image_markdown(payload["per_image"])]
    lines += _curve_points_markdown(payload)
    lines += ["", "## Speed", ""]
    lines += [
        "Over every point of the grid (images/s = points / total seconds; MP/s = megapixels / total seconds).",
        "",
        "| codec | encode img/s | encode MP/s | decode img/s | decode MP/s | mean encode s | mean decode s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for codec, s in payload["speed"].items():
        lines.append(
            f"| {codec} | {_fmt(s['encode_images_per_s'])} | {_fmt(s['encode_mpix_per_s'])} | "
            f"{_fmt(s['decode_images_per_s'])} | {_fmt(s['decode_mpix_per_s'])} | "
            f"{_fmt(s['mean_encode_s'], '.4f')} | {_fmt(s['mean_decode_s'], '.4f')} |"
        )
    stages = payload["stages"]
    if stages:
        lines += ["", "## Pipeline stages (mean seconds per image and point)", ""]
        for codec, entry in stages.items():
            for direction, times in entry.items():
                total = sum(times.values())
                lines.append(
                    f"**{codec}** {direction}: "
                    + ", ".join(
                        f"{n} {t * 1e3:.1f} ms ({100 * t / total:.0f} %)" if total > 0 else f"{n} {t * 1e3:.1f} ms"
                        for n, t in times.items()
                    )
                )
                lines.append("")
    models = payload["models"]
    if models:
        lines += [
            "## Model cost",
            "",
            "MACs per image pixel counted from the ONNX graphs (Conv, ConvTranspose, "
            "Gemm, MatMul, Einsum) after shape inference at the given input size.",
            "",
        ]
        lines += ["| model | size | encoder MACs/px | decoder MACs/px |", "| --- | --- | --- | --- |"]
        for m in models:
            size = "x".join(str(v) for v in m.get("size", []))
            if "error" in m:
                lines.append(f"| {m['model']} | {size} | n/a | n/a ({m['error']}) |")
            else:
                enc, dec = m["encoder_macs_per_pixel"], m["decoder_macs_per_pixel"]
                lines.append(f"| {m['model']} | {size} | {enc:,.0f} | {dec:,.0f} |")
    lines.append("")
    return "\n".join(lines)


def write_report(payload: dict[str, Any], out: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Derive the summaries and write every output file into ``out``; returns their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    results = payload["results"]
    curves = mean_curves(results)
    payload["curves"] = curves
    payload["bd_rate"] = bd_table(curves, results, payload["meta"].get("bd_range"))
    payload["speed"] = speed_table(results)
    payload["stages"] = stage_table(results)
    payload["exact"] = exact_table(results)
    payload["rises"] = {c: rise_check(results, c) for c in lossy_codecs(results) if c.split(":")[0] == "vaerans"}
    payload["per_image"] = per_image_table(results)
    payload.setdefault("failures", [])
    files = {"json": folder / "results.json", "csv": folder / "results.csv", "summary": folder / "summary.md"}
    files["json"].write_text(json.dumps(_finite(payload), indent=1, allow_nan=False) + "\n")
    write_csv(results, files["csv"])
    if plots and importlib.util.find_spec("matplotlib") is None:
        print("plots skipped: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        plots = False
    if plots and lossy_codecs(results):
        files["rd_psnr"] = folder / "rd_psnr.png"
        files["rd_msssim"] = folder / "rd_msssim.png"
        lossy = {c: curves[c] for c in lossy_codecs(results)}
        plot_curves(lossy, "psnr", "PSNR (dB, over the coded channels)", files["rd_psnr"])
        plot_curves(lossy, "ms_ssim_db", "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", files["rd_msssim"])
    files["summary"].write_text(summary_markdown(payload))
    return files


#: Sections :func:`write_report` derives from the points (dropped when a payload is read back).
DERIVED = ("curves", "bd_rate", "speed", "stages", "exact", "rises", "per_image")


def read_payload(path: str | Path) -> dict[str, Any]:
    """A ``results.json`` read back as :func:`run_eval` returned it, to write the report again.

    JSON has no infinity: a null PSNR of a point whose decode was identical (max abs error 0) is
    infinite again, a null MS-SSIM dB of an MS-SSIM of 1 too; other nulls become NaN.
    """
    payload: dict[str, Any] = json.loads(Path(path).read_text())
    for key in DERIVED:
        payload.pop(key, None)
    for r in payload["results"]:
        identical = int(r.get("max_abs_error", 1)) == 0
        for key in ("psnr", "psnr_y"):
            if r.get(key) is None:
                r[key] = math.inf if identical else math.nan
        if r.get("ms_ssim_db") is None:
            r["ms_ssim_db"] = math.inf if float(r.get("ms_ssim") or 0.0) >= 1.0 else math.nan
        r.pop("bound_held", None)
        r["bound_held"] = None if r.get("bound") is None else int(r["max_abs_error"]) <= int(r["bound"])
    return payload
