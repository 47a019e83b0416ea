"""Entropy-coding stage: bands of uint8 quantizer symbols <-> one compact payload.

Coders are registered by name (:func:`register_coder`, :func:`get_coder`, :func:`coder_names`):

``"rans"``
    rANS (constriction's ``AnsCoder``) with the cheapest of several compact models per band and
    all side information coded in the same stream: :mod:`.search` chooses the models,
    :mod:`.plan` lays out the stream, :mod:`.bandmodel` and :mod:`.priors` define them.
``"rans-ctx"`` (default, :data:`DEFAULT_CODER`)
    rANS with the same models, applied per band to groups of coefficients sorted by a context
    computed from the bands already decoded (:mod:`.context`): about 7 %
    fewer bits than ``"rans"`` on VAE latents. It needs the bands' 2-D layout, which
    :class:`ANSEncode` / :class:`ANSDecode` pass on (:meth:`EntropyCoder.encode_layout`);
    without one every band is a single group.
``"range"``
    The same models and stream plan as ``"rans"`` with constriction's range coder (FIFO).
``"zlib"``, ``"lzma"``
    Stdlib baselines over the concatenated bands.

Systems (:mod:`.stages`): :class:`ANSEncode` (SymbolsU8 + QuantParams -> ANSBitstream) and :class:`ANSDecode`
(ANSBitstream -> SymbolsU8), bands taken channel-major (channel 0's bands in layout order, then
channel 1's, ...), the same order as QuantParams.

Payload of the table coders: the coder's 32-bit words, little-endian, with up to three trailing
zero bytes of the last word dropped (the decoder restores them and rejects non-canonical
lengths). The payload length is the word count, so the payload must be stored with its exact
length. The last symbol decoded is a 20-bit CRC of the band sizes and all symbols (it fills the
coder's initial state, so it costs about nothing); with the requirement that the coder ends
exactly empty it catches wrong sizes, truncation and corruption. All bands empty -> empty
payload. There is no version field inside the payload: a format change needs a new coder name.
"""

from vaerans_ecs.systems.entropy.coders import (
    CODERS,
    DEFAULT_CODER,
    MAX_BANDS,
    MAX_SYMBOLS,
    ContextRansCoder,
    EntropyCoder,
    Layout,
    LzmaCoder,
    RangeCoder,
    RansCoder,
    TableCoder,
    ZlibCoder,
    bytes_to_words,
    coder_names,
    empirical_entropy_bound_bytes,
    get_coder,
    register_coder,
    words_to_bytes,
)
from vaerans_ecs.systems.entropy.search import clear_caches
from vaerans_ecs.systems.entropy.stages import ANSDecode, ANSEncode

__all__ = [
    "CODERS",
    "DEFAULT_CODER",
    "MAX_BANDS",
    "MAX_SYMBOLS",
    "ANSDecode",
    "ANSEncode",
    "ContextRansCoder",
    "EntropyCoder",
    "Layout",
    "LzmaCoder",
    "RangeCoder",
    "RansCoder",
    "TableCoder",
    "ZlibCoder",
    "bytes_to_words",
    "clear_caches",
    "coder_names",
    "empirical_entropy_bound_bytes",
    "get_coder",
    "register_coder",
    "words_to_bytes",
]
