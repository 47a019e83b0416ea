"""Tables of exact coding and per-image bars, computed from a results payload's points.

* :func:`exact_table`: per exact codec (``bound`` set), mean bpp, whether the bound held on every
  image, and encode / decode speed (images/s = images / total wall seconds; CPU seconds per image).
* :func:`near_pairs`: ours (``vaerans:max_error=k``) against JPEG-LS ``near=k`` at each k present.
* :func:`rise_check`: whether a lossy codec's mean curve rises (bpp and PSNR) at every grid step.
* :func:`per_image_table`: per image, our lossless bpp against PNG and WebP lossless, and our PSNR
  at WebP q90's rate (interpolated on our per-image curve) against WebP q90's PSNR minus 1 dB;
  lossless at no more than WebP q90's rate passes too.

Interpolation on a per-image curve: PSNR as a PCHIP function of log(bpp) over the cleaned curve
(:func:`vaerans_ecs.eval.bdrate.clean_curve`; identical decodes count as 100 dB). A rate above our
highest point takes that point's PSNR (reached with fewer bits, so the comparison is conservative);
a rate below our lowest point has no value and the lossy bar fails unless lossless passes it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from vaerans_ecs.eval.bdrate import clean_curve

__all__ = [
    "PSNR_CAP",
    "WEBP_REF_QUALITY",
    "exact_table",
    "interpolate_psnr",
    "near_pairs",
    "per_image_table",
    "rise_check",
]

#: PSNR given to identical decodes when interpolating a curve.
PSNR_CAP = 100.0
#: WebP quality whose rate and PSNR set the per-image lossy bar.
WEBP_REF_QUALITY = 90.0
#: Allowed PSNR shortfall against WebP q90 at its rate (dB).
LOSSY_MARGIN_DB = 1.0

Row = Mapping[str, Any]


def _codecs(results: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(str(r["codec"]) for r in results))


def exact_table(results: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """Per exact codec: bound, images, mean bpp, bound held everywhere, speeds (see the module doc)."""
    out: dict[str, dict[str, Any]] = {}
    for codec in _codecs(results):
        rows = [r for r in results if r["codec"] == codec and r.get("bound") is not None]
        if not rows:
            continue
        enc = sum(float(r["encode_s"]) for r in rows)
        dec = sum(float(r["decode_s"]) for r in rows)
        held = sum(1 for r in rows if int(r["max_abs_error"]) <= int(r["bound"]))
        out[codec] = {
            "family": rows[0]["family"],
            "bound": int(rows[0]["bound"]),
            "images": len(rows),
            "bpp": statistics.fmean(float(r["bpp"]) for r in rows),
            "held": held,
            "all_held": held == len(rows),
            "max_abs_error": max(int(r["max_abs_error"]) for r in rows),
            "encode_images_per_s": len(rows) / enc if enc > 0 else math.inf,
            "decode_images_per_s": len(rows) / dec if dec > 0 else math.inf,
            "encode_cpu_s": statistics.fmean(float(r.get("encode_cpu_s", 0.0)) for r in rows),
            "decode_cpu_s": statistics.fmean(float(r.get("decode_cpu_s", 0.0)) for r in rows),
        }
    return out


def near_pairs(table: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per bound k > 0 with both present: ours against JPEG-LS NEAR=k (bpp ratio ours / theirs)."""
    pairs = []
    ours = {e["bound"]: c for c, e in table.items() if e["family"] == "vaerans" and e["bound"] > 0}
    theirs = {e["bound"]: c for c, e in table.items() if e["family"] == "jpegls" and e["bound"] > 0}
    for k in sorted(set(ours) | set(theirs)):
        a, b = table.get(ours.get(k, "")), table.get(theirs.get(k, ""))
        pairs.append(
            {
                "k": k,
                "ours": ours.get(k),
                "jpegls": theirs.get(k),
                "ours_bpp": a["bpp"] if a else None,
                "jpegls_bpp": b["bpp"] if b else None,
                "ratio": a["bpp"] / b["bpp"] if a and b and b["bpp"] > 0 else None,
                "ours_held": a["all_held"] if a else None,
                "jpegls_held": b["all_held"] if b else None,
            }
        )
    return pairs


def rise_check(results: Sequence[Row], codec: str) -> dict[str, Any]:
    """Along ``codec``'s mean curve in grid order: steps where bpp or PSNR fails to rise; the last point.

    Means over the images with identical decodes counted as :data:`PSNR_CAP` dB (a lossless
    image in a lossy grid would make the mean infinite).
    """
    by_q: dict[float, list[Row]] = {}
    for r in results:
        if r["codec"] == codec:
            by_q.setdefault(float(r["quality"]), []).append(r)
    points = [
        (q, statistics.fmean(float(r["bpp"]) for r in rows),
         statistics.fmean(min(float(r["psnr"]), PSNR_CAP) for r in rows))
        for q, rows in by_q.items()
    ]
    falls = [f"q{a[0]:g} -> q{b[0]:g}" for a, b in itertools.pairwise(points) if not (b[1] > a[1] and b[2] > a[2])]
    last = points[-1] if points else None
    return {
        "rises": not falls,
        "falls": falls,
        "top_quality": last[0] if last else None,
        "top_bpp": last[1] if last else None,
        "top_psnr": last[2] if last else None,
    }


def interpolate_psnr(bpps: Sequence[float], psnrs: Sequence[float], at_bpp: float) -> tuple[float | None, str]:
    """Our PSNR at ``at_bpp`` on a per-image curve and how it was found: 'interpolated', 'top' or 'below'."""
    capped = [min(float(p), PSNR_CAP) if not math.isnan(float(p)) else math.nan for p in psnrs]
    r, q = clean_curve(list(bpps), capped)
    if r.size == 0:
        return None, "below"
    if at_bpp >= r[-1]:
        return float(q[-1]), "top" if at_bpp > r[-1] else "interpolated"
    if at_bpp < r[0]:
        return None, "below"
    if r.size == 1:
        return float(q[0]), "interpolated"
    f = PchipInterpolator(np.log(r), q, extrapolate=False)
    return float(f(math.log(at_bpp))), "interpolated"


def _pick(results: Sequence[Row], family: str, bound: int | None, prefer: str) -> str | None:
    labels = [
        str(r["codec"]) for r in results if r["family"] == family and r.get("bound") == bound
    ]
    if prefer in labels:
        return prefer
    return labels[0] if labels else None


def per_image_table(results: Sequence[Row]) -> dict[str, Any] | None:
    """Per image: lossless bars (ours vs PNG, WebP-LL) and the lossy bar at WebP q90's rate (module doc).

    Needs at least ``vaerans`` lossy + ``webp`` with q90, or ``vaerans:lossless`` + ``png``; None otherwise.
    """
    lossy = _pick(results, "vaerans", None, "vaerans")
    lossless = _pick(results, "vaerans", 0, "vaerans:lossless")
    png = _pick(results, "png", 0, "png")
    webp_ll = _pick(results, "webp-ll", 0, "webp-ll")
    webp = _pick(results, "webp", None, "webp")
    has_ref = webp is not None and any(
        r["codec"] == webp and float(r["quality"]) == WEBP_REF_QUALITY for r in results
    )
    if not ((lossy and has_ref) or (lossless and png)):
        return None
    images = list(dict.fromkeys(str(r["image"]) for r in results))
    rows = []
    for image in images:
        mine = [r for r in results if r["image"] == image]

        def one(label: str | None, q: float | None = None, rs: list[Row] = mine) -> Row | None:
            for r in rs:
                if r["codec"] == label and (q is None or float(r["quality"]) == q):
                    return r
            return None

        row: dict[str, Any] = {"image": image, "mode": mine[0].get("mode", "RGB")}
        ours_ll, png_r, wll = one(lossless), one(png), one(webp_ll)
        if ours_ll is not None:
            row.update(ours_lossless_bpp=float(ours_ll["bpp"]), ours_exact=int(ours_ll["max_abs_error"]) == 0)
        if png_r is not None:
            row["png_bpp"] = float(png_r["bpp"])
        if wll is not None:
            row["webp_ll_bpp"] = float(wll["bpp"])
        if ours_ll is not None and png_r is not None:
            row["lossless_pass"] = bool(row["ours_exact"] and row["ours_lossless_bpp"] <= row["png_bpp"])
        if ours_ll is not None and wll is not None:
            row["lossless_goal"] = bool(row["ours_exact"] and row["ours_lossless_bpp"] <= row["webp_ll_bpp"])
        ref = one(webp, WEBP_REF_QUALITY) if has_ref else None
        curve = [r for r in mine if r["codec"] == lossy]
        if ref is not None and curve:
            at = float(ref["bpp"])
            ours_psnr, how = interpolate_psnr([float(r["bpp"]) for r in curve], [float(r["psnr"]) for r in curve], at)
            target = min(float(ref["psnr"]), PSNR_CAP) - LOSSY_MARGIN_DB
            by_psnr = ours_psnr is not None and ours_psnr >= target
            by_lossless = ours_ll is not None and row["ours_exact"] and row["ours_lossless_bpp"] <= at
            row.update(
                webp_bpp=at,
                webp_psnr=float(ref["psnr"]),
                ours_psnr=ours_psnr,
                how=how,
                lossy_pass=bool(by_psnr or by_lossless),
                lossy_by=("psnr" if by_psnr else "lossless") if (by_psnr or by_lossless) else None,
            )
        rows.append(row)
    return {
        "lossy": lossy, "lossless": lossless, "png": png, "webp_ll": webp_ll, "webp": webp if has_ref else None,
        "rows": rows,
    }


# ----------------------------------------------------------------------------------------------
# markdown
# ----------------------------------------------------------------------------------------------
def _f(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:{spec}}"


def _yes(v: Any) -> str:
    return "n/a" if v is None else ("yes" if v else "**NO**")


def failures_markdown(failures: Sequence[Row]) -> list[str]:
    """The FAILURES section (empty when nothing failed)."""
    if not failures:
        return []
    lines = ["## FAILURES", "", f"**{len(failures)} failure(s)**: a bound not held, or a codec that failed.", ""]
    lines += ["| codec | image | setting | what |", "| --- | --- | --- | --- |"]
    for f in failures:
        lines.append(f"| {f['codec']} | {f['image']} | {float(f['quality']):g} | {f['what']} |")
    return [*lines, ""]


def exact_markdown(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Lossless and near-lossless tables."""
    lines: list[str] = []
    lossless = {c: e for c, e in table.items() if e["bound"] == 0}
    if lossless:
        lines += [
            "## Lossless",
            "",
            "Mean bpp over the images; exact = the decoded image equals the source on every image (checked "
            "pixel by pixel); speed = images / total wall seconds, and CPU seconds per image (all threads).",
            "",
            "| codec | mean bpp | exact on every image | encode img/s | decode img/s | encode CPU s/img | "
            "decode CPU s/img |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c, e in lossless.items():
            exact = f"{_yes(e['all_held'])} ({e['held']}/{e['images']})"
            lines.append(
                f"| {c} | {_f(e['bpp'])} | {exact} | {_f(e['encode_images_per_s'], '.2f')} | "
                f"{_f(e['decode_images_per_s'], '.2f')} | {_f(e['encode_cpu_s'], '.3f')} | "
                f"{_f(e['decode_cpu_s'], '.3f')} |"
            )
        lines.append("")
    near = {c: e for c, e in table.items() if e["bound"] > 0}
    if near:
        lines += [
            "## Near-lossless",
            "",
            "Every codec with an l-infinity bound k (|x - x_hat| <= k on every pixel and channel, checked on every "
            "image).",
            "",
            "| codec | k | mean bpp | bound held on every image | max abs error | encode img/s | decode img/s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c, e in near.items():
            held = f"{_yes(e['all_held'])} ({e['held']}/{e['images']})"
            lines.append(
                f"| {c} | {e['bound']} | {_f(e['bpp'])} | {held} | {e['max_abs_error']} | "
                f"{_f(e['encode_images_per_s'], '.2f')} | {_f(e['decode_images_per_s'], '.2f')} |"
            )
        pairs = near_pairs(table)
        if any(p["ratio"] is not None for p in pairs):
            lines += [
                "",
                "| k | ours bpp | JPEG-LS NEAR=k bpp | ours / JPEG-LS | ours bound held | JPEG-LS bound held |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for p in pairs:
                lines.append(
                    f"| {p['k']} | {_f(p['ours_bpp'])} | {_f(p['jpegls_bpp'])} | {_f(p['ratio'])} | "
                    f"{_yes(p['ours_held'])} | {_yes(p['jpegls_held'])} |"
                )
        lines.append("")
    return lines


def rise_markdown(checks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Whether each of our lossy curves rises at every step, and its top point."""
    if not checks:
        return []
    lines = [
        "## Our curves: rising at every step, top of the range",
        "",
        "| codec | bpp and PSNR rise at every grid step | top quality | its bpp | its PSNR (dB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c, e in checks.items():
        rises = "yes" if e["rises"] else "**NO**: " + ", ".join(e["falls"])
        top = f"{_f(e['top_quality'], 'g')} | {_f(e['top_bpp'])} | {_f(e['top_psnr'], '.2f')}"
        lines.append(f"| {c} | {rises} | {top} |")
    return [*lines, ""]


def per_image_markdown(table: Mapping[str, Any] | None) -> list[str]:
    """The per-image bars table."""
    if not table:
        return []
    q = f"{WEBP_REF_QUALITY:g}"
    text = []
    if table["lossless"]:
        text.append(f"Lossless: `{table['lossless']}` bpp against `{table['png']}` (Pillow, optimize, source mode) "
                    f"and `{table['webp_ll']}`; pass = exact and <= PNG, goal = <= WebP-LL.")
    if table["lossy"] and table["webp"]:
        text.append(f"Lossy: `{table['lossy']}`'s PSNR at WebP q{q}'s bpp (PCHIP in log-bpp on our per-image curve; "
                    f"'top' = the rate is above our highest point, whose PSNR is used) against WebP q{q}'s PSNR - "
                    f"{LOSSY_MARGIN_DB:g} dB; lossless at no more than WebP q{q}'s bpp passes too. PSNR over the "
                    "coded layout (gray: one channel); identical = 100 dB.")
    lines = [
        "## Per image: lossless and WebP q90 bars",
        "",
        " ".join(text),
        "",
        f"| image | mode | ours lossless bpp | PNG bpp | WebP-LL bpp | exact, <= PNG | <= WebP-LL | "
        f"WebP q{q} bpp / dB | ours at that bpp (dB) | lossy bar |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table["rows"]:
        webp = f"{_f(r.get('webp_bpp'))} / {_f(r.get('webp_psnr'), '.2f')}" if "webp_bpp" in r else "n/a"
        ours = "n/a"
        if "webp_bpp" in r:
            ours = _f(r.get("ours_psnr"), ".2f") + (f" ({r['how']})" if r.get("how") != "interpolated" else "")
        bar = "n/a"
        if "lossy_pass" in r:
            bar = f"pass ({r['lossy_by']})" if r["lossy_pass"] else "**FAIL**"
        lines.append(
            f"| {r['image']} | {r['mode']} | {_f(r.get('ours_lossless_bpp'))} | {_f(r.get('png_bpp'))} | "
            f"{_f(r.get('webp_ll_bpp'))} | {_pass(r.get('lossless_pass'))} | {_pass(r.get('lossless_goal'))} | "
            f"{webp} | {ours} | {bar} |"
        )
    rows = table["rows"]
    for key, name in (("lossless_pass", "lossless <= PNG"), ("lossless_goal", "lossless <= WebP-LL"),
                      ("lossy_pass", f"lossy at WebP q{q}")):
        done = [r[key] for r in rows if key in r]
        if done:
            lines.append(f"\n{name}: {sum(done)} of {len(done)} images pass.")
    return [*lines, ""]


def _pass(v: Any) -> str:
    return "n/a" if v is None else ("pass" if v else "**FAIL**")
