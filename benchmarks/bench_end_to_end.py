"""End-to-end speed on Kodak: our compress/decompress against Pillow JPEG, WebP, AVIF and JPEG XL.

Every codec runs in the same process on the same images: for each image the encode and the
decode are timed ``--repeats`` times and the median kept (after one untimed warm-up per codec);
images/s = images / sum of the medians, megapixels/s likewise. Ours is the public API
(``vaerans_ecs.compress`` / ``decompress``, one image per call) and, for reference,
``compress_batch`` / ``decompress_batch`` over all the images at once. Ratios are ours / theirs
(above 1 = we are faster). Each codec runs at one quality (``--quality CODEC=Q``; defaults: ours
the configured quality, JPEG 75, WebP 75, AVIF 60, JPEG XL 75); the mean bpp is printed so that
speeds can be read against rates. Codecs not available here are skipped::

    python benchmarks/bench_end_to_end.py [--images 8] [--repeats 3] [--model default]
        [--quality jpeg=75] [--json benchmarks/results/end_to_end.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _util import KODAK, write_json

from vaerans_ecs import api
from vaerans_ecs.config import get_config
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.eval.codecs import Codec, parse_codec
from vaerans_ecs.models import get_model

DEFAULT_QUALITY = {"jpeg": 75.0, "webp": 75.0, "avif": 60.0, "jxl": 75.0}


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(
    name: str,
    images: list[np.ndarray],
    encode: Callable[[np.ndarray], bytes],
    decode: Callable[[bytes], np.ndarray],
    repeats: int,
) -> dict[str, Any]:
    decode(encode(images[0]))  # warm-up: sessions, encoder libraries
    enc_s = dec_s = 0.0
    nbytes = 0
    for img in images:
        t_enc, data = median_time(lambda i=img: encode(i), repeats)
        t_dec, out = median_time(lambda d=data: decode(d), repeats)
        assert out.shape == img.shape
        enc_s += t_enc
        dec_s += t_dec
        nbytes += len(data)
    pixels = sum(i.shape[0] * i.shape[1] for i in images)
    return {
        "codec": name,
        "bpp": nbytes * 8 / pixels,
        "encode_s": enc_s,
        "decode_s": dec_s,
        "encode_images_per_s": len(images) / enc_s,
        "decode_images_per_s": len(images) / dec_s,
        "encode_mpix_per_s": pixels / enc_s / 1e6,
        "decode_mpix_per_s": pixels / dec_s / 1e6,
    }


def batch_measure(images: list[np.ndarray], quality: float, model: str, repeats: int) -> dict[str, Any]:
    api.decompress_batch(api.compress_batch(images[:1], quality, model))
    t_enc, streams = median_time(lambda: api.compress_batch(images, quality, model), repeats)
    t_dec, _ = median_time(lambda: api.decompress_batch(streams), repeats)
    pixels = sum(i.shape[0] * i.shape[1] for i in images)
    return {
        "codec": "vaerans (batch)",
        "bpp": sum(len(s) for s in streams) * 8 / pixels,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encode_images_per_s": len(images) / t_enc,
        "decode_images_per_s": len(images) / t_dec,
        "encode_mpix_per_s": pixels / t_enc / 1e6,
        "decode_mpix_per_s": pixels / t_dec / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8, help="first N Kodak images (default 8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="default")
    ap.add_argument("--quality", action="append", default=[], metavar="CODEC=Q", help="e.g. vaerans=50, avif=40")
    ap.add_argument("--codecs", default="jpeg,webp,avif,jxl", help="baselines (default jpeg,webp,avif,jxl)")
    ap.add_argument("--no-batch", action="store_true", help="skip the compress_batch/decompress_batch line")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not KODAK.is_dir():
        print(f"skipped: Kodak images not found at {KODAK}")
        return 0
    from PIL import Image

    quality = {"vaerans": float(get_config().codec.quality), **DEFAULT_QUALITY}
    for item in args.quality:
        key, _, value = item.partition("=")
        quality[key.strip().lower()] = float(value)
    try:
        spec = get_model(args.model)
    except VaeransError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    images = []
    for path in sorted(KODAK.glob("*.png"))[: args.images]:
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB")))
    q_ours = quality["vaerans"]
    rows = [
        measure(
            "vaerans",
            images,
            lambda img: api.compress(img, q_ours, spec.name),
            api.decompress,
            args.repeats,
        )
    ]
    if not args.no_batch:
        rows.append(batch_measure(images, q_ours, spec.name, args.repeats))
    skipped = {}
    for name in [c for c in args.codecs.split(",") if c]:
        codec: Codec = parse_codec(name)
        reason = codec.unavailable()
        if reason is not None:
            skipped[codec.label] = reason
            print(f"skipping {codec.label}: {reason}", file=sys.stderr)
            continue
        q = quality.get(codec.family, 75.0)
        rows.append(
            measure(
                codec.label,
                images,
                lambda img, c=codec, q=q: c.encode(img, q)[0],
                lambda data, c=codec: c.decode(data)[0],
                args.repeats,
            )
        )
        rows[-1]["quality"] = q
    rows[0]["quality"] = q_ours
    ours = rows[0]
    for r in rows:
        r["encode_ratio_ours_over_this"] = ours["encode_images_per_s"] / r["encode_images_per_s"]
        r["decode_ratio_ours_over_this"] = ours["decode_images_per_s"] / r["decode_images_per_s"]
    print(
        f"{len(images)} Kodak images, median of {args.repeats}, model {spec.name}; "
        f"ratio = our images/s over theirs (single-image API)"
    )
    print(
        f"{'codec':>16} {'q':>5} {'bpp':>6} {'enc img/s':>10} {'enc MP/s':>9} {'dec img/s':>10} {'dec MP/s':>9} "
        f"{'enc ratio':>10} {'dec ratio':>10}"
    )
    for r in rows:
        q = r.get("quality")
        print(
            f"{r['codec']:>16} {q if q is not None else '':>5} {r['bpp']:>6.3f} {r['encode_images_per_s']:>10.2f} "
            f"{r['encode_mpix_per_s']:>9.2f} {r['decode_images_per_s']:>10.2f} {r['decode_mpix_per_s']:>9.2f} "
            f"{r['encode_ratio_ours_over_this']:>10.3f} {r['decode_ratio_ours_over_this']:>10.3f}"
        )
    if args.json:
        write_json(
            args.json,
            {
                "images": len(images),
                "repeats": args.repeats,
                "model": spec.name,
                "python": platform.python_version(),
                "rows": rows,
                "skipped": skipped,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
