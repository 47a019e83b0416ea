"""Mutations of sequence streams for the fuzz test and ``benchmarks/fuzz_sequence.py``.

Raw edits leave the checksums alone (the container's CRC, or a frame's own CRC, must catch
them); ``*_crc`` kinds recompute every checksum and section length after the edit, so the
parsers and payload decoders behind the checks see forged but consistent-looking data.
"""

from __future__ import annotations

import random
import struct
import zlib

from tests.fixtures.streamfuzz import pack_v2, split_sections
from vaerans_ecs.sequence.format import pack_frame_info, read_frame_info, section_code

__all__ = ["KINDS", "join", "mutate", "refit_frame", "split"]

KINDS = (
    "bitflip", "byte", "truncate", "extend", "delete",
    "frame_bitflip_crc", "frame_byte_crc", "frame_truncate_crc", "header_crc", "index_crc",
    "frame_drop_crc", "frame_dup_crc", "frame_swap_crc", "frame_kind_crc", "random_crc",
)


def split(data: bytes) -> list[tuple[int, bytes]]:
    """Top-level (code, body) sections of a well-formed stream."""
    return split_sections(data[5:-4])


def join(sections: list[tuple[int, bytes]]) -> bytes:
    """A stream of these sections with a valid container CRC."""
    return pack_v2(sections)


def refit_frame(body: bytes, rest: bytes | None = None, *, key: bool | None = None, image: bool | None = None,
                bi: bool | None = None) -> bytes:
    """A frame body with new ``rest`` and flags and a correct frame CRC (number and pixel check kept)."""
    info, old_rest = read_frame_info(body, None)
    rest = old_rest if rest is None else rest
    k = info.key if key is None else key
    i = info.image if image is None else image
    b = info.bi if bi is None else bi
    return pack_frame_info(info.number, k, i, rest, info.pixels_crc, b) + rest


def _edit(blob: bytes, rng: random.Random, kind: str) -> bytes:
    b = bytearray(blob)
    if not b:
        return bytes([rng.randrange(256)])
    if kind == "bitflip":
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    return bytes(b)


def _frames(sections: list[tuple[int, bytes]]) -> list[int]:
    return [i for i, (c, _) in enumerate(sections) if c == section_code("frame")]


def mutate(data: bytes, rng: random.Random, kind: str | None = None) -> tuple[str, bytes]:
    """One mutation of a valid sequence stream; returns (kind, mutated bytes)."""
    kind = kind or rng.choice(KINDS)
    if kind in ("bitflip", "byte"):
        return kind, _edit(data, rng, kind)
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    if kind == "extend":
        return kind, data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    if kind == "delete":
        at = rng.randrange(len(data))
        return kind, data[:at] + data[at + rng.randrange(1, 8):]
    sections = split(data)
    frames = _frames(sections)
    if kind.startswith("frame_") and kind[6:] in ("bitflip_crc", "byte_crc", "truncate_crc"):
        i = rng.choice(frames)
        body = sections[i][1]
        _, rest = read_frame_info(body, None)
        sections[i] = (sections[i][0], refit_frame(body, _edit(rest, rng, kind[6:-4])))
    elif kind == "header_crc":
        w = bytearray(sections[0][1])
        w[rng.randrange(len(w))] = rng.choice([0, 1, 2, 3, 0x7F, 0x80, 0xFF])
        sections[0] = (sections[0][0], bytes(w))
    elif kind == "index_crc":
        i = next((j for j, (c, _) in enumerate(sections) if c == section_code("frame-index")), None)
        if i is not None:
            sections[i] = (sections[i][0], _edit(sections[i][1], rng, rng.choice(["bitflip", "byte", "truncate"])))
    elif kind == "frame_drop_crc" and len(frames) > 1:
        del sections[rng.choice(frames)]
    elif kind == "frame_dup_crc":
        i = rng.choice(frames)
        sections.insert(i, sections[i])
    elif kind == "frame_swap_crc" and len(frames) > 1:
        a, b = rng.sample(frames, 2)
        sections[a], sections[b] = sections[b], sections[a]
    elif kind == "frame_kind_crc":
        i = rng.choice(frames)
        key = rng.random() < 0.5
        sections[i] = (sections[i][0], refit_frame(sections[i][1], key=key, image=key and rng.random() < 0.5,
                                                   bi=not key and rng.random() < 0.5))
    elif kind == "random_crc":
        raw = join(sections)
        cut = rng.randrange(5, len(raw) - 4)
        tail = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        body = raw[:cut] + tail
        return kind, body + struct.pack("<I", zlib.crc32(body))
    return kind, join(sections)
