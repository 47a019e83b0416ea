"""Codec benchmark on the Kodak set: stream bytes vs the per-band entropy bound, and time per stage.

    python benchmarks/bench_codec.py [--data ../shared/data/kodak] [--qualities 1 25 50 75 100]
                                     [--model default] [--limit N] [--json benchmarks/results/codec.json]

For every quality: total stream bytes (header, quantizer side info and coder tables included)
against the bound sum_bands n*H(band)/8 that ignores the cost of describing the model, and the
median time of each stage for compress and decompress (VAE stages vs the rest).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _util import KODAK, write_json
from PIL import Image

from vaerans_ecs.api import decode_streams, encode_entities, entity_to_bytes
from vaerans_ecs.components import RGB, SymbolsU8
from vaerans_ecs.core import World
from vaerans_ecs.models import get_model
from vaerans_ecs.systems.entropy import empirical_entropy_bound_bytes

VAE_STAGES = {"OnnxVAEEncode", "OnnxVAEDecode"}


def bound_bytes(world: World, eid: int) -> float:
    """Per-band empirical entropy bound of the entity's quantized symbols."""
    sym = world.get_component(eid, SymbolsU8)
    planes = world.view(sym.ref)
    bands = [planes[c, b.offset : b.offset + b.size] for c in range(planes.shape[0]) for b in sym.bands]
    return empirical_entropy_bound_bytes(bands)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=KODAK)
    parser.add_argument("--qualities", type=float, nargs="+", default=[1, 25, 50, 75, 100])
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--json", default="benchmarks/results/codec.json")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.png"))[: args.limit or None]
    if not files:
        print(f"skipped: no PNG images in {args.data} (the Kodak set lives in ../shared/data/kodak)")
        return 0
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    spec = get_model(args.model)
    print(f"model {spec.name} ({spec.fingerprint}), {len(images)} images from {args.data}")
    rows = []
    stage_ms: dict[str, dict[str, list[float]]] = {"compress": defaultdict(list), "decompress": defaultdict(list)}
    for q in args.qualities:
        total = bound = 0.0
        pixels = 0
        for img in images:
            world = World()
            eid = world.spawn_image(img)
            world.timings.clear()
            t0 = time.perf_counter()
            data = encode_entities(world, [eid], quality=q, model=spec.name)[0]
            t_enc = time.perf_counter() - t0
            for name, _, sec in world.timings:
                stage_ms["compress"][name].append(sec * 1e3)
            stage_ms["compress"]["serialize+other"].append((t_enc - sum(s for _, _, s in world.timings)) * 1e3)
            bound += bound_bytes(world, eid)
            total += len(data)
            pixels += img.shape[0] * img.shape[1]
            assert entity_to_bytes(world, eid) == data
            dworld = World()
            t0 = time.perf_counter()
            out = decode_streams(dworld, [data])
            t_dec = time.perf_counter() - t0
            for name, _, sec in dworld.timings:
                stage_ms["decompress"][name].append(sec * 1e3)
            stage_ms["decompress"]["parse+other"].append((t_dec - sum(s for _, _, s in dworld.timings)) * 1e3)
            assert dworld.has_component(out[0], RGB) is False
        rows.append({"quality": q, "bytes": total, "bound": bound, "ratio": total / bound, "bpp": total * 8 / pixels})
    print(f"\n{'quality':>8} {'bpp':>7} {'bytes':>10} {'bound':>10} {'bytes/bound':>12}")
    for r in rows:
        print(f"{r['quality']:8.0f} {r['bpp']:7.4f} {r['bytes']:10.0f} {r['bound']:10.0f} {r['ratio']:12.4f}")
    split = {}
    for phase, stages in stage_ms.items():
        med = {name: statistics.median(v) for name, v in stages.items()}
        vae = sum(v for k, v in med.items() if k in VAE_STAGES)
        rest = sum(v for k, v in med.items() if k not in VAE_STAGES)
        split[phase] = {"stages_ms": med, "vae_ms": vae, "rest_ms": rest, "rest_share": rest / (vae + rest)}
        print(f"\n{phase}: median ms per image by stage")
        for name, v in sorted(med.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<18} {v:8.2f}")
        print(f"  {'VAE total':<18} {vae:8.2f}")
        print(f"  {'non-VAE total':<18} {rest:8.2f}  ({100 * rest / (vae + rest):.1f} %)")
    write_json(args.json, {"model": spec.name, "fingerprint": spec.fingerprint, "images": len(images),
                           "rate": rows, "timing": split})
    return 0


if __name__ == "__main__":
    sys.exit(main())
