"""Per-band uint8 quantizer: WaveletPyr / YUVW4 / Latent4 <-> SymbolsU8 + QuantParams.

Step sizes
    The base step is ``step`` when given, else :func:`step_for_quality` (quality 100 -> ``step_min``,
    1 -> ``step_max``, log-linear in between), rounded to float32 (the precision the side
    information stores). Band ``b`` uses ``base * weight_b / gain_b * k`` where ``gain_b`` is the
    wavelet synthesis gain (:func:`vaerans_ecs.systems.wavelet.synthesis_gains`), so one step costs
    the same squared error in the transform's input in every band, ``weight_b`` defaults to 1 and
    ``k`` is the widening factor (usually 1). A YUVW4 / Latent4 source is one band ``LL0`` per
    channel with gain 1. ``q = rint(c / step)``.

Symbols and zero points
    ``symbol = v + zero`` where ``v`` is ``q`` (minus an integer offset, see anchors) or, for a DPCM
    band, the prediction residual. The zero point is 128 whenever ``v`` lies in ``[-128, 127]``
    (one bit of side information; band modes then sit at 128, where the entropy coder's mode
    predictor starts), else ``max(0, -min(v))``. Nothing is ever clipped: a band whose values do
    not fit 256 levels is first tried with DPCM (low-pass band only), then its step is widened by
    the smallest integer factor that makes it fit.

Anchors (``QuantParams.anchors``; empty means every anchor is 0)
    One integer per band added back after decoding: for a DPCM band the value its first
    coefficient is predicted from (so an LL band at 1e4 costs no widening), for a plain band an
    offset used when its values fit 256 levels but not ``[-255, 255]``.

DPCM (low-pass band, i.e. band 0 of each channel)
    Lossless prediction on the integer ``q``, so the decoder reproduces it exactly (no drift). The
    predictor follows from the band size alone: LOCO-I / JPEG-LS MED (``median(a, b, a + b - c)``
    of the left, top and top-left neighbours) for bands of at most :data:`MED_MAX_SIZE`
    coefficients, the left neighbour (top for the first column) above that. Neighbours outside
    the band are 0 after subtracting the anchor, so the first row uses the left and the first
    column the top neighbour. Encoding is vectorised; MED decoding is inherently sequential (a
    Python loop, about 0.14 us per coefficient: ~0.22 ms for four 16x24 LL3 bands), left decoding is
    two cumulative sums. DPCM is used whenever it fits and its empirical entropy plus the anchor's
    cost is below the plain band's.

Reconstruction offsets
    For ``|q| >= 1`` the decoder outputs ``sign(q) * (|q| - delta) * step``. ``delta`` is the
    band's least-squares centroid shift toward zero, rounded to a multiple of 1/32 in ``[0, 15/32]``
    (never worse than ``delta = 0``: the MSE is a parabola in ``delta`` and 0 is on the grid).

Side information (:mod:`.sideinfo`, format version 1)
    Byte 0: ``version << 5 | has_weights << 4 | source << 2`` (source: 0 WaveletPyr, 1 YUVW4,
    2 Latent4); bytes 1-4: base step (float32 LE); if ``has_weights``: one float32 LE weight per
    band. Then a big-endian bit string: for a WaveletPyr ``ue(wavelet index in WAVELETS)``,
    ``ue(levels)``; then channel-major, band by band: for band 0 a DPCM bit and, when set,
    ``se(anchor)``; a widening bit and, when set, ``ue(k - 2)``; an explicit-zero bit and, when
    set, 8 bits of zero point plus (plain bands) ``se(anchor)``; 4 bits of ``delta * 32``. Zero
    padding to a byte. ``ue``/``se``: unsigned/signed exp-Golomb. Typically 6 bits per band plus
    6 bytes: 37 bytes for 4 channels x 10 bands. Steps are not stored: they are recomputed from the
    base step, weights, gains (of the band layout) and factors with the same float64 formula.
    :data:`MED_MAX_SIZE`, :data:`RECON_GRID` and :data:`CANONICAL_ZERO` are part of the format.
"""

from vaerans_ecs.systems.quantize.dpcm import MED_MAX_SIZE, dpcm_decode, dpcm_residual
from vaerans_ecs.systems.quantize.sideinfo import pack_quant_params, unpack_quant_params
from vaerans_ecs.systems.quantize.steps import (
    CANONICAL_ZERO,
    RECON_GRID,
    RECON_MAX_CODE,
    SOURCES,
    band_unit_steps,
    quality_for_step,
    step_for_quality,
)
from vaerans_ecs.systems.quantize.systems import Dequantize, QuantizeU8

__all__ = [
    "CANONICAL_ZERO",
    "MED_MAX_SIZE",
    "RECON_GRID",
    "RECON_MAX_CODE",
    "SOURCES",
    "Dequantize",
    "QuantizeU8",
    "band_unit_steps",
    "dpcm_decode",
    "dpcm_residual",
    "pack_quant_params",
    "quality_for_step",
    "step_for_quality",
    "unpack_quant_params",
]
