"""Benchmark the lossless / near-lossless pixel coder (``vaerans_ecs.systems.residual.pixel``).

Sections (``--sections``, comma separated; all by default):

``lossless``  Kodak, lossless: our bpp (exactness checked), median encode/decode times, and in the
              same run PNG (Pillow optimize=True), JPEG-LS (CharLS), JPEG 2000 lossless (OpenJPEG,
              5/3 + RCT), WebP lossless (method 6) and JPEG XL lossless (libjxl, effort 7), all via
              imagecodecs / Pillow, each checked exact.
``near``      Kodak, near-lossless k = 1, 2, 4: our bpp and max error against CharLS NEAR=k.
``hard``      ``shared/data/hard`` in their own modes (L stays one channel; P is decoded to RGB,
              or RGBA with transparency) and synthetic images (text, UI, gradients, noise, 1-bit):
              lossless bpp against PNG (of the original mode, optimize=True) and WebP lossless.
``base``      lossless coding relative to the VAE base (``vaerans_ecs.compress(img, quality=q)``):
              total bits (base stream + our payload) against our payload without a base.

Usage::

    python benchmarks/bench_lossless.py [--limit N] [--sections lossless,near,hard,base]
        [--repeat 3] [--qualities 50,90] [--base-limit 4] [--json benchmarks/results/lossless.json]

Times are medians of ``--repeat`` runs on this machine (noisy when it is shared).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import KODAK, REPO, write_json
from vaerans_ecs.systems.residual.pixel import decode_pixels, encode_pixels

HARD = REPO.parent / "shared" / "data" / "hard"
PATH_NAMES = ("pred", "pal", "lz", "lzpal", "raw")


def _median_time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU (process) seconds: on a shared machine the CPU time is the steadier."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def _pil_bytes(img: Image.Image, fmt: str, **kw: Any) -> int:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return len(buf.getvalue())


def _webp_ll(arr: np.ndarray) -> int:
    im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    if arr.shape[2] == 2:
        im = Image.fromarray(arr, "LA").convert("RGBA")
    return _pil_bytes(im, "WEBP", lossless=True, method=6, quality=100)


def _anchors(arr: np.ndarray) -> dict[str, float]:
    """Lossless anchor sizes in bytes (each decoded and checked exact where the codec allows)."""
    import imagecodecs

    a2 = arr[:, :, 0] if arr.shape[2] == 1 else arr
    out: dict[str, float] = {}
    out["png"] = _pil_bytes(Image.fromarray(a2), "PNG", optimize=True)
    d = imagecodecs.jpegls_encode(a2)
    assert np.array_equal(imagecodecs.jpegls_decode(d).reshape(arr.shape), arr)
    out["jpegls"] = len(d)
    d = imagecodecs.jpeg2k_encode(a2, level=0, reversible=True)
    assert np.array_equal(imagecodecs.jpeg2k_decode(d).reshape(arr.shape), arr)
    out["j2k"] = len(d)
    out["webp"] = _webp_ll(arr)
    d = imagecodecs.jpegxl_encode(a2, lossless=True, effort=7)  # libjxl's default effort (imagecodecs' is lower)
    assert np.array_equal(imagecodecs.jpegxl_decode(d).reshape(arr.shape), arr)
    out["jxl"] = len(d)
    return out


def _ours(arr: np.ndarray, repeat: int, max_error: int = 0, base: np.ndarray | None = None) -> dict[str, float]:
    data = encode_pixels(arr, max_error=max_error, base=base)
    dec = decode_pixels(data, *arr.shape, max_error=max_error, base=base)
    err = int(np.abs(dec.astype(np.int32) - arr).max())
    assert err <= max_error, f"bound violated: {err} > {max_error}"
    res: dict[str, float] = {"bytes": len(data), "max_err": err, "path": data[0] & 15}
    if repeat:
        res["enc_s"], res["enc_cpu_s"] = _median_time(
            lambda: encode_pixels(arr, max_error=max_error, base=base), repeat
        )
        res["dec_s"], res["dec_cpu_s"] = _median_time(
            lambda: decode_pixels(data, *arr.shape, max_error=max_error, base=base), repeat
        )
    return res


def _kodak(limit: int) -> list[Path]:
    files = sorted(KODAK.glob("*.png"))[:limit]
    if not files:
        sys.exit(f"no Kodak images in {KODAK}")
    return files


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def section_lossless(files: list[Path], repeat: int) -> dict[str, Any]:
    rows = []
    print(f"\nKodak lossless ({len(files)} images), bpp; times in ms (median of {repeat})")
    print(f"{'image':10} {'ours':>6} {'enc':>6} {'dec':>6} {'PNG':>6} {'JLS':>6} {'J2K':>6} {'WebP':>6} {'JXL':>6}")
    for f in files:
        arr = _rgb(f)
        n = arr.shape[0] * arr.shape[1]
        ours = _ours(arr, repeat)
        anc = _anchors(arr)
        row = {"image": f.name, "ours": ours["bytes"] * 8 / n}
        row.update({k: ours.get(k, np.nan) for k in ("enc_s", "dec_s", "enc_cpu_s", "dec_cpu_s")})
        row.update({k: v * 8 / n for k, v in anc.items()})
        rows.append(row)
        print(
            f"{f.stem:10} {row['ours']:6.3f} {1e3 * row['enc_s']:6.0f} {1e3 * row['dec_s']:6.0f} {row['png']:6.2f} "
            f"{row['jpegls']:6.2f} {row['j2k']:6.2f} {row['webp']:6.2f} {row['jxl']:6.2f}"
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    med = {k: float(np.median([r[k] for r in rows])) for k in ("enc_s", "dec_s", "enc_cpu_s", "dec_cpu_s")}
    print(
        f"{'mean':10} {mean['ours']:6.3f} {1e3 * med['enc_s']:6.0f} {1e3 * med['dec_s']:6.0f} {mean['png']:6.2f} "
        f"{mean['jpegls']:6.2f} {mean['j2k']:6.2f} {mean['webp']:6.2f} {mean['jxl']:6.2f}   (times: medians)"
    )
    print(
        f"median CPU time per image: encode {1e3 * med['enc_cpu_s']:.0f} ms, decode {1e3 * med['dec_cpu_s']:.0f} ms "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return {"rows": rows, "mean": mean, "median": med}


def section_near(files: list[Path], ks: list[int], repeat: int) -> dict[str, Any]:
    import imagecodecs

    out: dict[str, Any] = {}
    print(f"\nKodak near-lossless ({len(files)} images): mean bpp, ours vs CharLS NEAR=k")
    print(f"{'k':>3} {'ours':>7} {'JPEG-LS':>8} {'ratio':>6} {'maxerr':>6} {'enc ms':>7} {'dec ms':>7}")
    for k in ks:
        ours, jls, errs, te, td = [], [], [], [], []
        for f in files:
            arr = _rgb(f)
            n = arr.shape[0] * arr.shape[1]
            r = _ours(arr, repeat, max_error=k)
            ours.append(r["bytes"] * 8 / n)
            errs.append(r["max_err"])
            if repeat:
                te.append(r["enc_s"])
                td.append(r["dec_s"])
            d = imagecodecs.jpegls_encode(arr, level=k)
            assert np.abs(imagecodecs.jpegls_decode(d).astype(np.int32) - arr).max() <= k
            jls.append(len(d) * 8 / n)
        mo, mj = float(np.mean(ours)), float(np.mean(jls))
        me, md = (float(np.median(te)), float(np.median(td))) if repeat else (0.0, 0.0)
        print(f"{k:3d} {mo:7.3f} {mj:8.3f} {mo / mj:6.3f} {max(errs):6d} {1e3 * me:7.0f} {1e3 * md:7.0f}")
        out[str(k)] = {
            "ours": mo,
            "jpegls": mj,
            "ratio": mo / mj,
            "max_err": max(errs),
            "per_image": ours,
            "median_enc_s": me,
            "median_dec_s": md,
        }
    return out


def synthetic_images() -> dict[str, tuple[np.ndarray, Image.Image]]:
    """Constructed test images (array as coded, PIL image in its natural mode for PNG)."""
    rng = np.random.default_rng(17)
    out: dict[str, tuple[np.ndarray, Image.Image]] = {}
    # terminal-like text, 1 channel
    im = Image.new("L", (640, 400), 0)
    d = ImageDraw.Draw(im)
    words = ["vaerans", "ecs", "lossless", "pixel", "coder", "rANS", "def", "return", "(x)", "==", "0x1F"]
    for row in range(30):
        line = " ".join(words[i] for i in rng.integers(0, len(words), 9))
        d.text((4, 4 + 13 * row), line, fill=230)
    out["text_gray"] = (np.asarray(im)[:, :, None], im)
    # UI screenshot: panels, buttons, coloured text, a gradient header
    ui = np.full((480, 640, 3), 245, np.uint8)
    ui[:48] = np.linspace([40, 80, 160], [90, 140, 220], 640).astype(np.uint8)[None]
    im = Image.fromarray(ui)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 48, 160, 479), fill=(230, 232, 236))
    for i in range(12):
        d.text((12, 60 + 30 * i), f"Menu item {i}", fill=(30, 30, 30))
        d.rectangle((200, 70 + 30 * i, 620, 92 + 30 * i), outline=(180, 180, 190), fill=(255, 255, 255))
        d.text((210, 74 + 30 * i), f"value = {rng.integers(0, 10**6)}", fill=(20, 60, 140))
    d.rounded_rectangle((480, 430, 620, 465), 8, fill=(0, 120, 215))
    d.text((515, 440), "Submit", fill=(255, 255, 255))
    arr = np.asarray(im)
    out["ui_rgb"] = (arr, im)
    # smooth gradients
    y, x = np.mgrid[0:384, 0:512]
    g = np.stack([x * 255 // 511, y * 255 // 383, (x + y) * 255 // 894], 2).astype(np.uint8)
    out["gradient_rgb"] = (g, Image.fromarray(g))
    # uniform noise
    nz = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out["noise_rgb"] = (nz, Image.fromarray(nz))
    # 1-bit: a ruler-like chart, as mode "1" for PNG, 0/255 gray for us
    im = Image.new("1", (800, 200), 1)
    d = ImageDraw.Draw(im)
    for i in range(0, 800, 8):
        d.line((i, 0, i, 30 if i % 80 else 70), fill=0)
        if i % 80 == 0:
            d.text((i + 2, 80), str(i // 8), fill=0)
    out["ruler_1bit"] = (np.asarray(im.convert("L"))[:, :, None], im)
    # RGBA sprite on transparency
    sp = np.zeros((128, 128, 4), np.uint8)
    yy, xx = np.mgrid[0:128, 0:128]
    m = (yy - 64) ** 2 + (xx - 64) ** 2 < 50**2
    sp[m] = (220, 120, 40, 255)
    sp[..., 3] = np.where(m, 255, 0)
    out["sprite_rgba"] = (sp, Image.fromarray(sp, "RGBA"))
    return out


def _hard_images() -> dict[str, tuple[np.ndarray, Image.Image]]:
    out: dict[str, tuple[np.ndarray, Image.Image]] = {}
    for f in sorted(HARD.glob("*.png")):
        im = Image.open(f)
        im.load()
        if im.mode == "L":
            arr = np.asarray(im)[:, :, None]
        elif im.mode in ("P", "1") or im.mode not in ("RGB", "RGBA"):
            conv = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
            arr = np.asarray(conv) if im.mode != "1" else np.asarray(im.convert("L"))[:, :, None]
        else:
            arr = np.asarray(im)
        out[f.stem] = (arr, im)
    return out


def section_hard(repeat: int) -> dict[str, Any]:
    images = _hard_images() if HARD.exists() else {}
    if not images:
        print(f"\n(no images in {HARD}: only synthetic ones)")
    images.update(synthetic_images())
    rows = []
    print("\nHard and synthetic images, lossless bpp (PNG of the original mode, optimize=True)")
    print(f"{'image':28} {'mode':>5} {'ours':>7} {'path':>5} {'PNG':>7} {'WebP':>7} {'<=PNG':>5} {'<=WebP':>6}")
    for name, (arr, im) in images.items():
        n = arr.shape[0] * arr.shape[1]
        r = _ours(arr, repeat)
        png = _pil_bytes(im, "PNG", optimize=True) * 8 / n
        webp = _webp_ll(arr) * 8 / n
        ours = r["bytes"] * 8 / n
        rows.append(
            {
                "image": name,
                "mode": im.mode,
                "channels": arr.shape[2],
                "ours": ours,
                "png": png,
                "webp": webp,
                "path": int(r["path"]),
            }
        )
        print(
            f"{name:28} {im.mode:>5} {ours:7.3f} {PATH_NAMES[int(r['path'])]:>5} {png:7.3f} {webp:7.3f} "
            f"{'yes' if ours <= png else 'NO':>5} {'yes' if ours <= webp else 'no':>6}"
        )
    return {"rows": rows}


def section_base(files: list[Path], qualities: list[int]) -> dict[str, Any]:
    import vaerans_ecs

    rows = []
    print("\nLossless relative to the VAE base: total bpp = base stream + our payload (vs no base)")
    print(f"{'image':10} {'q':>4} {'base':>7} {'payload':>8} {'total':>7} {'no base':>8} {'wins':>5}")
    for f in files:
        arr = _rgb(f)
        n = arr.shape[0] * arr.shape[1]
        plain = len(encode_pixels(arr)) * 8 / n
        for q in qualities:
            stream = vaerans_ecs.compress(arr, quality=q)
            base = np.asarray(vaerans_ecs.decompress(stream), dtype=np.uint8)
            if base.shape != arr.shape:
                base = base.reshape(arr.shape)
            payload = encode_pixels(arr, base=base)
            assert np.array_equal(decode_pixels(payload, *arr.shape, base=base), arr)
            b, p = len(stream) * 8 / n, len(payload) * 8 / n
            rows.append(
                {
                    "image": f.name,
                    "quality": q,
                    "base_bpp": b,
                    "payload_bpp": p,
                    "total_bpp": b + p,
                    "no_base_bpp": plain,
                }
            )
            wins = "yes" if b + p < plain else "no"
            print(f"{f.stem:10} {q:4d} {b:7.3f} {p:8.3f} {b + p:7.3f} {plain:8.3f} {wins:>5}")
    return {"rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=24, help="first N Kodak images")
    ap.add_argument("--sections", default="lossless,near,hard,base")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (0: no timing)")
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--qualities", default="50,90")
    ap.add_argument("--base-limit", type=int, default=4, help="Kodak images for the base section")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "lossless.json"))
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    files = _kodak(args.limit)
    result: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "limit": args.limit,
        "repeat": args.repeat,
    }
    if "lossless" in sections:
        result["lossless"] = section_lossless(files, args.repeat)
    if "near" in sections:
        result["near"] = section_near(files, [int(k) for k in args.ks.split(",")], 0)
    if "hard" in sections:
        result["hard"] = section_hard(0)
    if "base" in sections:
        result["base"] = section_base(files[: args.base_limit], [int(q) for q in args.qualities.split(",")])
    write_json(args.json, result)


if __name__ == "__main__":
    main()
