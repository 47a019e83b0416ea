"""Read and write .vae files with Pillow.

    python examples/pillow_plugin.py [IMAGE] [--model NAME] [--quality Q] [--out DIR]

Without IMAGE a synthetic test picture is used. Writes IMAGE.vae and the decoded IMAGE.vae.png
into DIR (default: a temporary folder) and prints what Pillow sees.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import vaerans_ecs.pillow  # noqa: F401  (registers the "VAERANS" format, extension .vae)


def test_picture(h: int = 256, w: int = 384) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 23.0)
    g = 128 + 100 * np.cos(yy / 31.0)
    b = 255 * ((xx // 32 + yy // 32) % 2)
    return Image.fromarray(np.clip(np.dstack([r, g, b]), 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", help="any image Pillow reads (default: a synthetic picture)")
    parser.add_argument("--model", default="default", help="model name (see `vaerans models`)")
    parser.add_argument("--quality", type=float, default=60)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="vaerans-pillow-"))
    out.mkdir(parents=True, exist_ok=True)
    src = Image.open(args.image) if args.image else test_picture()
    stem = Path(args.image).stem if args.image else "test-picture"
    vae_path = out / f"{stem}.vae"

    # Saving: the extension picks the format; quality / target_bpp / model are save options.
    src.save(vae_path, quality=args.quality, model=args.model)

    # Opening: only the header is read here ...
    with Image.open(vae_path) as img:
        print(f"{vae_path}: format {img.format} ({img.get_format_mimetype()}), {img.size[0]}x{img.size[1]} {img.mode}")
        print(f"  model {img.info['model']}, {img.info['bpp']:.3f} bpp, {vae_path.stat().st_size} bytes")
        # ... and decoding happens on load(), or on any operation that needs the pixels.
        img.save(out / f"{stem}.vae.png")
        a = np.asarray(src.convert("RGB"), dtype=np.float64)
        b = np.asarray(img, dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    psnr = 10 * np.log10(255**2 / mse) if mse else float("inf")
    print(f"  decoded to {out / f'{stem}.vae.png'}: PSNR {psnr:.2f} dB")


if __name__ == "__main__":
    main()
