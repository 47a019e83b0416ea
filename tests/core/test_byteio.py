"""LEB128 varints shared by the stream formats (vaerans_ecs.core.byteio)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaerans_ecs.core.byteio import ByteReader, varint_bytes
from vaerans_ecs.errors import BitstreamError, VaeransError


@given(st.lists(st.integers(0, (1 << 62) - 1), max_size=20))
def test_varints_read_back_in_order(values: list[int]) -> None:
    r = ByteReader(b"".join(varint_bytes(v) for v in values), "varints")
    assert [r.varint() for _ in values] == values
    r.end()


def test_varint_layout_is_leb128() -> None:
    assert varint_bytes(0) == b"\x00" and varint_bytes(127) == b"\x7f"
    assert varint_bytes(128) == b"\x80\x01" and varint_bytes(300) == b"\xac\x02"
    with pytest.raises(VaeransError):
        varint_bytes(-1)
    with pytest.raises(BitstreamError):
        ByteReader(varint_bytes(300)[:1]).varint()  # truncated
    with pytest.raises(BitstreamError):
        ByteReader(varint_bytes(300)).varint(limit=299)
