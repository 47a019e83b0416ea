"""Components validate shapes, dtypes and layouts on construction."""

from __future__ import annotations

import numpy as np
import pytest

from vaerans_ecs.components import (
    RGB,
    YUVW4,
    ANSBitstream,
    Band,
    BlurRGB,
    ImageInfo,
    Latent4,
    QuantParams,
    ReconRGB,
    Residual,
    SymbolsU8,
    WaveletPyr,
)
from vaerans_ecs.core.arena import Arena
from vaerans_ecs.errors import ComponentError

arena = Arena(1 << 16)


def ref(shape: tuple[int, ...], dtype: str) -> object:
    return arena.alloc_tensor(shape, dtype)


@pytest.mark.parametrize(
    ("cls", "good", "bad"),
    [
        (RGB, ((4, 5, 3), "uint8"), [((4, 5, 5), "uint8"), ((4, 5, 3), "float32"), ((4, 5), "uint8")]),
        (RGB, ((4, 5, 1), "uint16"), [((4, 5, 0), "uint16"), ((4, 5, 2), "int16")]),
        (ReconRGB, ((4, 5, 4), "uint8"), [((4, 5, 5), "uint8")]),
        (Latent4, ((4, 2, 3), "float32"), [((3, 2, 3), "float32"), ((4, 2, 3), "float64"), ((4, 0, 3), "float32")]),
        (YUVW4, ((4, 2, 3), "float32"), [((4, 2), "float32")]),
        (Residual, ((2, 2, 3), "int16"), [((2, 2, 3), "uint8"), ((2, 2, 6), "int32")]),
    ],
)
def test_tensor_components(cls: type, good: tuple, bad: list) -> None:
    cls(ref=ref(*good))
    for shape, dtype in bad:
        with pytest.raises(ComponentError, match=cls.__name__):
            cls(ref=ref(shape, dtype))


def test_blur_and_info() -> None:
    BlurRGB(ref=ref((2, 2, 3), "float32"), sigma=1.5)
    with pytest.raises(ComponentError):
        BlurRGB(ref=ref((2, 2, 3), "float32"))  # sigma missing
    with pytest.raises(ComponentError, match="positive"):
        ImageInfo(height=0, width=3)


def _bands() -> tuple[Band, ...]:
    return (Band(name="LL1", level=1, h=1, w=2, offset=0), Band(name="HL1", level=1, h=1, w=2, offset=2),
            Band(name="LH1", level=1, h=1, w=2, offset=4), Band(name="HH1", level=1, h=1, w=2, offset=6))


def test_wavelet_and_symbols_layout() -> None:
    bands = _bands()
    WaveletPyr(ref=ref((4, 8), "float32"), height=2, width=4, wavelet="cdf53", levels=1, bands=bands)
    SymbolsU8(ref=ref((4, 8), "uint8"), height=2, width=4, bands=bands)
    with pytest.raises(ComponentError, match="cover"):
        WaveletPyr(ref=ref((4, 8), "float32"), height=2, width=4, wavelet="cdf53", levels=1, bands=bands[:3])
    with pytest.raises(ComponentError, match="offset"):
        SymbolsU8(ref=ref((4, 8), "uint8"), height=2, width=4, bands=(bands[1], bands[0], *bands[2:]))
    with pytest.raises(ComponentError, match="per channel"):
        SymbolsU8(ref=ref((4, 9), "uint8"), height=2, width=4, bands=bands)


def test_quant_params_validation() -> None:
    QuantParams(steps=(1.0,), zeros=(128,), dpcm=(False,), recon=(0.1,), source="YUVW4")
    with pytest.raises(ComponentError, match="one entry per band"):
        QuantParams(steps=(1.0, 2.0), zeros=(128,), dpcm=(False,), recon=(0.1,), source="YUVW4")
    with pytest.raises(ComponentError, match="positive"):
        QuantParams(steps=(float("nan"),), zeros=(0,), dpcm=(False,), recon=(0.0,), source="YUVW4")
    with pytest.raises(ComponentError, match="zero points"):
        QuantParams(steps=(1.0,), zeros=(300,), dpcm=(False,), recon=(0.0,), source="YUVW4")
    with pytest.raises(ComponentError, match="unknown source"):
        QuantParams(steps=(1.0,), zeros=(0,), dpcm=(False,), recon=(0.0,), source="RGB")


def test_components_are_frozen_and_strict() -> None:
    bs = ANSBitstream(data=b"abc", coder="rans", channels=4, height=2, width=4, bands=_bands())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        bs.data = b"x"  # type: ignore[misc]
    with pytest.raises(ComponentError, match="Extra inputs"):
        ANSBitstream(data=b"", coder="rans", channels=4, height=2, width=4, bands=_bands(), bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ComponentError, match="channels"):
        ANSBitstream(data=b"", coder="rans", channels=0, height=2, width=4, bands=_bands())
    with pytest.raises(ComponentError, match="coder"):  # no default: the coders own it
        ANSBitstream(data=b"", channels=4, height=2, width=4, bands=_bands())  # type: ignore[call-arg]
    assert np.dtype(RGB(ref=ref((1, 1, 3), "uint8")).ref.dtype) == np.uint8
