"""Timing of the uint8 quantizer stage (QuantizeU8 / Dequantize) and its side information.

Usage: ``python benchmarks/bench_quantize.py [--batch N] [--repeat R] [--shape C H W] [--levels L]``

The input is a deterministic synthetic latent (smooth random field plus Laplacian detail), pushed
through Hadamard4 and a CDF 5/3 pyramid. Reported times are medians over ``--repeat`` runs of the
systems' ``run`` (component creation and arena allocation included), plus pack/unpack of the
side information and its size in bytes per band.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components import QuantParams, WaveletPyr
from vaerans_ecs.core.world import World
from vaerans_ecs.systems.hadamard import hadamard4
from vaerans_ecs.systems.quantize import Dequantize, QuantizeU8, pack_quant_params, unpack_quant_params
from vaerans_ecs.systems.wavelet import band_layout, wavelet_forward


def synthetic_latent(seed: int, c: int, h: int, w: int) -> npt.NDArray[np.float32]:
    """Roughly like the default model's latents: std about 2, LL fitting 256 levels at step 0.5."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 1.0, (c, h, w)), axis=1), axis=2)
    walk *= 2.0 / walk.std(axis=(1, 2), keepdims=True)
    out: npt.NDArray[np.float32] = (walk + rng.laplace(0, 0.7, (c, h, w))).astype(np.float32)
    return out


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--shape", type=int, nargs=3, default=(4, 192, 128), metavar=("C", "H", "W"))
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--quality", type=float, default=75.0)
    args = ap.parse_args()
    c, h, w = args.shape
    bands = band_layout(h, w, args.levels)
    world = World()
    eids = []
    for i in range(args.batch):
        lat = synthetic_latent(i, c, h, w)
        coef = wavelet_forward(hadamard4(lat) if c == 4 else lat, "cdf53", args.levels)
        pyr = WaveletPyr(
            ref=world.arena.copy_in(coef), height=h, width=w, wavelet="cdf53", levels=args.levels, bands=bands
        )
        eids.append(world.spawn(pyr))
    quant = QuantizeU8(quality=args.quality, step_min=0.5, step_max=10.0)
    base_step = quant.base_step
    quant_sys = quant.with_source(WaveletPyr)
    deq = Dequantize("WaveletPyr")
    pyrs = [world.get_component(e, WaveletPyr) for e in eids]

    def encode() -> None:
        quant_sys.run(world, eids)

    def decode() -> None:
        deq.run(world, eids)
        for e, p in zip(eids, pyrs, strict=True):  # restore the input pyramid for the next round
            world.add_component(e, p)

    t_q = median_ms(encode, args.repeat)
    t_d = median_ms(decode, args.repeat)
    params = world.get_component(eids[0], QuantParams)
    data = pack_quant_params(params, c, bands, base_step)
    t_p = median_ms(lambda: pack_quant_params(params, c, bands, base_step), args.repeat)
    t_u = median_ms(lambda: unpack_quant_params(data, c, bands), args.repeat)
    n = args.batch
    print(f"input {n} x ({c}, {h}, {w}), {args.levels} levels, {len(bands)} bands/channel, quality {args.quality}")
    print(f"QuantizeU8.run  {t_q:7.3f} ms  ({t_q / n:.3f} ms per entity)")
    print(f"Dequantize.run  {t_d:7.3f} ms  ({t_d / n:.3f} ms per entity)")
    print(f"pack / unpack   {t_p:7.3f} / {t_u:.3f} ms")
    print(f"side info       {len(data)} bytes = {len(data) / (c * len(bands)):.2f} bytes per band (entity 0)")
    print(f"DPCM LL bands   {sum(params.dpcm)} of {c}")


if __name__ == "__main__":
    main()
