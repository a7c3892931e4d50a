"""Turn untrusted image bytes into an RGB array, or say precisely why not.

The header is read first (Pillow parses it without decoding pixels) so that a
decompression bomb is refused before any memory is spent; OpenCV then decodes,
applying the EXIF orientation, converting grey/alpha/16-bit/CMYK to 8-bit RGB.
HEIF/HEIC (the iPhone default), which OpenCV cannot read, is decoded by libheif
(pillow-heif) instead, applying its irot/imir orientation, then handled the same.

Memory stays bounded within the limits too: a valid image can still be large (a 143 KB
PNG may declare 7000x7000), so large JPEGs are decoded at reduced scale by libjpeg, the
pixels being decoded at once across threads are bounded (`Limits.max_decoding_pixels`:
further decodes wait their turn), and what is returned is at most MAX_SIDE on its long
side: the pipeline needs a 224 px CNN input and local features of a few hundred pixels.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import pillow_heif
from PIL import Image, UnidentifiedImageError

from lookalike.config import Settings

# lookalike applies its own pixel limit (Limits.max_pixels) right after reading the header,
# with a message that names the limit; Pillow's global one would pre-empt it.
Image.MAX_IMAGE_PIXELS = None
# Pillow reads HEIF headers through pillow-heif's opener (format "HEIF"): size before pixels.
pillow_heif.register_heif_opener()

# Formats shops and phones send: OpenCV decodes all but HEIF (HEIC), which libheif decodes.
# GIF (animation), AVIF and the rest are refused by name.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF"})
MAX_ASPECT = 20.0
MAX_SIDE = 1600  # long side of a decoded image; larger ones are shrunk right after decoding


class ImageRejected(ValueError):
    """The bytes are not an image lookalike accepts; the message says why."""


class ImageTooLarge(ImageRejected):
    """The image exceeds a configured size limit."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 16
    # In this process, across threads; a PNG decode peaks at about 6 bytes per pixel.
    max_decoding_pixels: int = 50_000_000

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_image_bytes, settings.max_image_pixels, settings.min_image_side,
                   settings.max_decoding_pixels)


class _PixelBudget:
    """A counting semaphore in pixels: how much may be being decoded at once."""

    def __init__(self) -> None:
        self._used, self._free = 0, threading.Condition()

    @contextmanager
    def hold(self, pixels: int, capacity: int) -> Iterator[None]:
        pixels = min(pixels, capacity)  # one image over the budget still decodes, alone
        with self._free:
            self._free.wait_for(lambda: self._used + pixels <= capacity)
            self._used += pixels
        try:
            yield
        finally:
            with self._free:
                self._used -= pixels
                self._free.notify_all()


_DECODING = _PixelBudget()

# ftyp brands: of HEVC-coded HEIF, of the generic HEIF container (any codec), of AV1 (AVIF).
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = _HEVC_BRANDS | {b"mif1", b"msf1"}  # the major brands pillow-heif's opener takes
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def _brands(data: bytes) -> list[bytes]:
    """Major then compatible brands of the ISO-BMFF ftyp box data starts with, if any."""
    if data[4:8] != b"ftyp":
        return []
    body = data[8:min(int.from_bytes(data[:4], "big"), len(data), 1024)]
    return [body[i:i + 4] for i in range(0, len(body) - 3, 4) if i != 4]  # 4:8 is a version


def _cut_heif(data: bytes, unreadable: bool = False) -> str | None:
    """Why a HEIF file is truncated: its top-level ISO-BMFF box that runs past the end of data.

    unreadable: libheif could not parse it; a file ending before any meta box is truncated too.
    """
    offset, kinds = 0, set()
    while offset + 8 <= len(data):
        size, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8]
        if size == 1:  # a 64-bit size follows
            size = int.from_bytes(data[offset + 8:offset + 16], "big") if offset + 16 <= len(data) else -1
        if size == 0 or 0 < size < 8:  # the box runs to the end of the file; malformed, not cut
            return None
        if size < 0 or offset + size > len(data):
            box = kind.decode("ascii") if kind.isascii() and kind.isalnum() else "last"
            return f"truncated HEIF: the data ({len(data):,} bytes) ends inside its {box} box"
        kinds.add(kind)
        offset += size
    if unreadable and b"meta" not in kinds:
        return f"truncated HEIF: the data ({len(data):,} bytes) ends before its meta box"
    return None


def _decode_heif(data: bytes) -> np.ndarray:
    """HEIF pixels as 8-bit BGR (alpha dropped, 10/12-bit reduced), upright.

    libheif applies the irot/imir transforms, which are what orients a HEIF image; an EXIF
    orientation tag in it only describes them (pillow-heif resets it to 1), so it is not applied.
    """
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True, bgr_mode=True)
        primary = heif[heif.primary_index]
        primary.load()
        pixels = np.asarray(primary)  # read-only, over libheif's buffer
    except (OSError, ValueError, SyntaxError, RuntimeError, EOFError, IndexError):
        raise ImageRejected("corrupt HEIF image: the decoder could not read its pixel data") from None
    if pixels.dtype == np.uint16:  # 10/12-bit monochrome comes scaled to 16 bits
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR) if pixels.shape[2] == 4 else pixels


def probe(data: bytes, limits: Limits, echo: bool = True) -> tuple[str, int, int]:
    """Format, width and height from the header alone; raises ImageRejected.

    echo: name the first bytes of unrecognised data (the caller's own upload); never for
    bytes fetched from a URL or path, which may be something the caller may not read.
    """
    if not data:
        raise ImageRejected("empty image: 0 bytes")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
        if fmt == "HEIF" and (brands := set(_brands(data))) & _AVIF_BRANDS and not brands & _HEVC_BRANDS:
            fmt = "AVIF"  # an AV1-coded HEIF container is AVIF, whichever Pillow plugin opened it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        if _HEIF_BRANDS.intersection(_brands(data)[:1]) and (cut := _cut_heif(data, unreadable=True)):
            raise ImageRejected(cut) from None
        start = f" starting {data[:8]!r}" if echo else ""
        raise ImageRejected(
            f"not a recognised image ({len(data):,} bytes{start}); "
            f"accepted formats: {', '.join(sorted(ACCEPTED_FORMATS))}"
        ) from None
    if fmt not in ACCEPTED_FORMATS:
        raise ImageRejected(
            f"unsupported image format {fmt}; accepted: {', '.join(sorted(ACCEPTED_FORMATS))}"
        )
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {limits.max_pixels:,}"
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            f"image is {width}x{height} pixels; at least {limits.min_side} on each side is needed"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageRejected(
            f"image is {width}x{height} pixels; aspect ratio above {MAX_ASPECT:g} is not a photo"
        )
    if fmt == "JPEG" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        # libjpeg fills a truncated scan with grey and only warns: catch it here.
        raise ImageRejected("truncated JPEG: the image data ends before its end-of-image marker")
    if fmt == "HEIF" and (cut := _cut_heif(data)):
        # libheif would refuse it only once decoding: say why now, before any pixel is spent.
        raise ImageRejected(cut)
    return fmt, width, height


def decode(data: bytes, limits: Limits = Limits(), target_side: int = 224,
           echo: bool = True) -> np.ndarray:
    """Decode to an RGB uint8 array (EXIF or HEIF orientation applied), at most MAX_SIDE long.

    Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale when the result still has
    at least 2*target_side pixels on its short side: it is several times faster
    and the model sees a 224 px image anyway.
    """
    fmt, width, height = probe(data, limits, echo)
    flags, scale = cv2.IMREAD_COLOR, 1
    if fmt == "JPEG":
        short = min(width, height)
        for scale, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                               (2, cv2.IMREAD_REDUCED_COLOR_2), (1, cv2.IMREAD_COLOR)):
            if short // scale >= 2 * target_side or scale == 1:
                flags = reduced
                break
    with _DECODING.hold(-(-width // scale) * -(-height // scale), limits.max_decoding_pixels):
        if fmt == "HEIF":
            bgr = _decode_heif(data)
        else:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if bgr is None or bgr.size == 0:
            raise ImageRejected(f"corrupt {fmt} image: the decoder could not read its pixel data")
        long_side = max(bgr.shape[:2])
        if long_side > MAX_SIDE:  # the full-size buffer is freed as this returns
            factor = MAX_SIDE / long_side
            size = (max(1, round(bgr.shape[1] * factor)), max(1, round(bgr.shape[0] * factor)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr if bgr.flags.writeable else None)
