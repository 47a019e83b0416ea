"""``python -m vaerans_ecs.demo [IMAGE]``: compress and decompress one image with the default model(s).

With no argument a synthetic 512x384 test image is generated, so the command works on a fresh
machine with nothing but the installed package. Prints size, bits per pixel, PSNR and timings.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import numpy.typing as npt

import vaerans_ecs
from vaerans_ecs.api import inspect
from vaerans_ecs.models import default_models


def test_image(height: int = 384, width: int = 512) -> npt.NDArray[np.uint8]:
    """A deterministic image with smooth gradients, edges and texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0)
    g = 255 * (x / width) * (y / height) ** 0.5
    b = 128 + 90 * np.sign(np.sin((x + y) / 29.0))
    disc = (x - width * 0.6) ** 2 + (y - height * 0.4) ** 2 < (min(height, width) / 5) ** 2
    img = np.stack([r, g, b], axis=-1)
    img[disc] = [230, 200, 40]
    img += np.random.default_rng(0).normal(0, 2, img.shape)  # mild sensor-like noise
    out: npt.NDArray[np.uint8] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        from PIL import Image

        img = np.asarray(Image.open(args[0]).convert("RGB"))
        name = args[0]
    else:
        img, name = test_image(), "generated 512x384 test image"
    specs = default_models()
    models = ", ".join(f"{spec.name} (fingerprint {spec.fingerprint})" for spec in specs)
    width = max(len("TransformCode"), *(len(spec.name) for spec in specs))
    print(f"vaerans_ecs {vaerans_ecs.__version__}, default model {models}, {name}")
    for quality in (25, 50, 75, 100):
        t0 = time.perf_counter()
        data = vaerans_ecs.compress(img, quality=quality)
        t1 = time.perf_counter()
        recon = vaerans_ecs.decompress(data)
        t2 = time.perf_counter()
        mse = float(np.mean((recon.astype(np.float64) - img) ** 2))
        psnr = 10 * np.log10(255.0**2 / max(mse, 1e-12))
        bpp = len(data) * 8 / (img.shape[0] * img.shape[1])
        info = inspect(data)
        model = info.model or info.pipeline[-1].name  # the VAE that coded it, or the coder
        print(
            f"quality {quality:3d}: {model:{width}}  {len(data):7d} bytes  {bpp:6.3f} bpp  PSNR {psnr:6.2f} dB  "
            f"compress {1e3 * (t1 - t0):6.1f} ms  decompress {1e3 * (t2 - t1):6.1f} ms"
        )
        if recon.shape != img.shape:
            print("error: decoded shape differs", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
