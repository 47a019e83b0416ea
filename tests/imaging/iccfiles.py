"""A hand-made CMYK printer profile for the tests (littleCMS reads it; no CMYK profile ships with Pillow)."""

from __future__ import annotations

import struct


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def cmyk_gray_profile() -> bytes:
    """ICC v2 profile whose A2B0 maps every CMYK value to a neutral gray (a* = b* = 0).

    L* = 100 * (1 - K) * (1 - (C + M + Y) / 6) on a 2-point grid, so colour conversion through it
    gives R = G = B, which Pillow's CMYK formula does not.
    """
    clut = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    light = (1 - k) * (1 - (c + m + y) / 6)
                    clut += [round(light * 0xFF00), 0x8000, 0x8000]
    ident = [0, 65535]
    lut = (b"mft2" + b"\0" * 4 + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + struct.pack(">HH", 2, 2) + struct.pack(">8H", *(ident * 4)) + struct.pack(f">{len(clut)}H", *clut)
           + struct.pack(">6H", *(ident * 3)))
    text = b"vaerans test CMYK\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    wtpt = b"XYZ " + b"\0" * 4 + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        body += b"\0" * (-(offset + len(body)) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtr" + b"CMYK"
              + b"Lab " + b"\0" * 12 + b"acsp" + b"\0" * 28 + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
              + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
