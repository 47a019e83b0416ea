"""Pillow plugin: ``import vaerans_ecs.pillow`` and Pillow reads and writes ``.vae`` streams.

::

    import vaerans_ecs.pillow  # noqa: F401  (registers the format)
    from PIL import Image

    Image.open("photo.png").save("photo.vae", quality=60)       # or target_bpp=0.5, model="NAME"
    img = Image.open("photo.vae")     # size, mode and info known here; nothing decoded yet
    img.load()                        # decodes (any Pillow operation does it when needed)

The format is ``"VAERANS"``, extension ``.vae``, MIME type ``image/x-vaerans``; files are
recognised by their magic bytes (:func:`vaerans_ecs.core.container.accept`), whatever their
name. Opening parses and checks the header only (:func:`vaerans_ecs.api.inspect`: CRC, declared
size against ``[runtime] max_pixels`` and Pillow's decompression-bomb limit); decoding happens in
``load()``. The image mode is the stored layout: ``L``, ``LA``, ``RGB``, ``RGBA`` or ``I;16``
(palette and 1-bit sources are stored as their colours; :func:`vaerans_ecs.api.decompress_image`
restores those modes). ``img.info`` holds ``model``, ``fingerprint``, ``bpp``, ``pipeline`` and
the source's ``icc_profile`` and ``exif`` when the stream carries them.

A file with the vaerans magic whose header is invalid raises :class:`InvalidStreamError` from
``Image.open``: both a :class:`~PIL.UnidentifiedImageError` (what Pillow raises for files it
cannot read) and a :class:`~vaerans_ecs.errors.BitstreamError`, whose message says what is wrong
(Pillow would otherwise report only "cannot identify image file"). A payload that fails to decode
raises :class:`~vaerans_ecs.errors.BitstreamError` from ``load()``.

Saving accepts any image the codec accepts (:mod:`vaerans_ecs.imaging` rules; its ICC profile and
EXIF block travel with it) with the keywords ``quality`` (1..100), ``target_bpp``, ``lossless``
(``save(..., lossless=True)``), ``max_error`` (1..16) and ``model`` (default ``"default"``).
Pillow has no entry points for plugins, so the import (or :func:`register_vaerans_opener`) is
needed once per process.
"""

from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile, UnidentifiedImageError

from vaerans_ecs.core.container import accept
from vaerans_ecs.errors import BitstreamError

__all__ = ["EXTENSION", "FORMAT", "MIME", "InvalidStreamError", "VaeransImageFile", "register_vaerans_opener"]

#: Pillow mode of each stored layout (channels, bit depth).
_MODES = {(1, 8): "L", (2, 8): "LA", (3, 8): "RGB", (4, 8): "RGBA", (1, 16): "I;16"}

FORMAT = "VAERANS"
EXTENSION = ".vae"
MIME = "image/x-vaerans"


class InvalidStreamError(BitstreamError, UnidentifiedImageError):
    """``Image.open`` of a file with the vaerans magic and an invalid header; the message says why.

    Why both bases: Pillow lets any exception but ``SyntaxError`` (and a few others) out of a
    plugin's ``_open`` unchanged, so the reason reaches the caller, while code that catches
    ``UnidentifiedImageError`` for unreadable files keeps working.
    """


def _accept(prefix: bytes) -> bool:
    return accept(prefix)


class VaeransImageFile(ImageFile.ImageFile):
    """Pillow image file of a vaerans stream (decoded on ``load()``)."""

    format = FORMAT
    format_description = "vaerans_ecs learned image compression stream"

    def _open(self) -> None:
        from vaerans_ecs import api
        from vaerans_ecs.errors import VaeransError

        assert self.fp is not None
        data = self.fp.read()
        if not accept(data[:4]):
            raise SyntaxError("not a vaerans stream")
        try:
            info = api.inspect(data)
        except VaeransError as exc:
            raise InvalidStreamError(f"invalid vaerans stream: {exc}") from None
        mode = _MODES.get((info.channels, info.bit_depth))
        if mode is None:
            raise InvalidStreamError(
                f"{info.channels} channels of {info.bit_depth} bits have no Pillow mode: use vaerans_ecs.decompress"
            )
        self._mode = mode
        self._size = (info.width, info.height)
        meta = info.stream.metadata
        if "icc" in meta:
            self.info["icc_profile"] = meta["icc"]
        if "exif" in meta:
            self.info["exif"] = b"Exif\x00\x00" + meta["exif"]
        self.info["model"] = info.model
        self.info["fingerprint"] = info.fingerprint
        self.info["bpp"] = info.bpp
        self.info["pipeline"] = [s.get_config() for s in info.pipeline]
        self.tile = [ImageFile._Tile(FORMAT, (0, 0, info.width, info.height), 0, None)]


class VaeransDecoder(ImageFile.PyDecoder):
    """Decodes the whole stream at once (reads the file itself)."""

    _pulls_fd = True

    def decode(self, buffer: Any) -> tuple[int, int]:
        from vaerans_ecs import api

        assert self.fd is not None
        data = self.fd.read()
        image = api.decompress(data)
        self.set_as_raw(image.tobytes(), self.mode)
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from vaerans_ecs import api

    opts = im.encoderinfo
    quality = opts.get("quality")
    target_bpp = opts.get("target_bpp")
    max_error = opts.get("max_error")
    fp.write(
        api.compress(
            im,
            None if quality is None else float(quality),
            str(opts.get("model", "default")),
            target_bpp=None if target_bpp is None else float(target_bpp),
            lossless=bool(opts.get("lossless", False)),
            max_error=None if max_error is None else int(max_error),
        )
    )


def register_vaerans_opener() -> None:
    """Register the format with Pillow (idempotent; done on import of this module)."""
    Image.register_open(FORMAT, VaeransImageFile, _accept)
    Image.register_decoder(FORMAT, VaeransDecoder)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register_vaerans_opener()
