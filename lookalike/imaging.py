"""Turn untrusted image bytes into an RGB array, or say precisely why not.

The header is read first (Pillow parses it without decoding pixels) so that a
decompression bomb is refused before any memory is spent; OpenCV then decodes,
applying the EXIF orientation, converting grey/alpha/16-bit/CMYK to 8-bit RGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# lookalike applies its own pixel limit (Limits.max_pixels) right after reading the header,
# with a message that names the limit; Pillow's global one would pre-empt it.
Image.MAX_IMAGE_PIXELS = None

# Formats OpenCV decodes and shops send; GIF (animation) and the rest are refused by name.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF"})
MAX_ASPECT = 20.0


class ImageRejected(ValueError):
    """The bytes are not an image lookalike accepts; the message says why."""


class ImageTooLarge(ImageRejected):
    """The image exceeds a configured size limit."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 16


def probe(data: bytes, limits: Limits) -> tuple[str, int, int]:
    """Format, width and height from the header alone; raises ImageRejected."""
    if not data:
        raise ImageRejected("empty image: 0 bytes")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageRejected(
            f"not a recognised image ({len(data):,} bytes starting {data[:8]!r}); "
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
    return fmt, width, height


def decode(data: bytes, limits: Limits = Limits(), target_side: int = 224) -> np.ndarray:
    """Decode to an RGB uint8 array (EXIF orientation applied).

    Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale when the result still has
    at least 2*target_side pixels on its short side: it is several times faster
    and the model sees a 224 px image anyway.
    """
    fmt, width, height = probe(data, limits)
    flags = cv2.IMREAD_COLOR
    if fmt == "JPEG":
        short = min(width, height)
        for scale, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                               (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if short // scale >= 2 * target_side:
                flags = reduced
                break
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None or bgr.size == 0:
        raise ImageRejected(f"corrupt {fmt} image: the decoder could not read its pixel data")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_model_input(rgb: np.ndarray, side: int = 224) -> np.ndarray:
    """Resize policy: the whole image, squashed to side x side (no crop, no padding).

    Cropping would cut off products photographed near the frame edge; squashing
    keeps every pixel and matched padding in quick tests. INTER_AREA avoids aliasing.
    """
    interp = cv2.INTER_AREA if min(rgb.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(rgb, (side, side), interpolation=interp)
