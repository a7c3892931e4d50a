"""GET /v1/thumbnails/{product_set}/{product_id}/{image_id}: a catalogue image, small.

The gateway never reads a path that a request names. It asks the service for the product
(GetProduct, with the caller's key), takes the image's stored source, and reads it only when
that is an absolute path (or file:// URI) that resolves inside LOOKALIKE_INGEST_ROOTS,
through the ingest pipeline's own confinement (lookalike.pipeline.sources.fetch). Anything
else (a URL, no source, a path outside the roots, a file that is not an image) gets a
placeholder. The product set "-" is the default set.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

from fastapi.responses import Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from lookalike.config import Settings
from lookalike.pipeline.sources import FetchError, fetch
from lookalike.web.errors import HttpError

SIDE = 320
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF", b"BM")
PLACEHOLDER = (b'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160" '
               b'viewBox="0 0 160 160"><rect width="160" height="160" fill="#e5e7eb"/>'
               b'<path d="M40 110l25-30 20 22 15-15 20 23z" fill="#9ca3af"/>'
               b'<circle cx="105" cy="58" r="10" fill="#9ca3af"/></svg>')
HEADERS = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}


def local_source(source: str) -> str | None:
    """The source when it is a local absolute path or file:// URI; None otherwise."""
    if source.lower().startswith("file://"):
        return source
    if "://" in source or not PurePosixPath(source).is_absolute():
        return None
    return source


def shrink(data: bytes, max_pixels: int) -> bytes:
    """A JPEG at most SIDE pixels a side (ValueError/OSError when it is no image)."""
    if not data.startswith(MAGIC):
        raise ValueError("not an image")
    with Image.open(io.BytesIO(data)) as image:
        if image.width * image.height > max_pixels:
            raise ValueError("too many pixels")
        image.draft("RGB", (SIDE, SIDE))
        small = image.convert("RGB")
        small.thumbnail((SIDE, SIDE))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=82)
        return out.getvalue()


def placeholder(reason: str) -> Response:
    return Response(PLACEHOLDER, media_type="image/svg+xml",
                    headers={**HEADERS, "X-Lookalike-Thumbnail": f"placeholder: {reason}"})


async def thumbnail(calls, settings: Settings, product_set: str, product_id: str,
                    image_id: str) -> Response:
    product = await calls.product(product_id, "" if product_set == "-" else product_set)
    image = next((i for i in product.images if i.image_id == image_id), None)
    if image is None:
        raise HttpError(404, "NOT_FOUND", f"product {product_id!r} has no image {image_id!r}")
    source = local_source(image.source)
    if source is None:
        return placeholder("not a local file")
    roots = settings.ingest_root_list
    if not roots:
        return placeholder("no ingest roots")
    try:
        data = await run_in_threadpool(fetch, source, settings.max_image_bytes,
                                       settings.fetch_timeout_s, roots)
        small = await run_in_threadpool(shrink, data, settings.max_image_pixels)
    except FetchError:
        return placeholder("outside the ingest roots or unreadable")
    except (ValueError, OSError, Image.DecompressionBombError):
        return placeholder("not an image")
    return Response(small, media_type="image/jpeg", headers=HEADERS)
