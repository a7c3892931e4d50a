"""Request body limits, checked while the body arrives (before any parsing): the gRPC ones
(`max_search_bytes`, `max_ingest_bytes`) plus room for the multipart/base64 wrapping, so
that the service's own check and message decide the cases in between."""

from __future__ import annotations

import json

from lookalike.config import Settings
from lookalike.web.errors import error_body

OTHER_BYTES = 1024 * 1024  # like the gRPC guard's default for the other methods
MULTIPART_ROOM = 256 * 1024


def body_limits(settings: Settings) -> dict[str, int]:
    search = settings.max_search_bytes + MULTIPART_ROOM
    # JSON items carry images in base64 (4 bytes for 3).
    return {"/v1/search": search, "/v1/copies": search,
            "/v1/ingest": settings.max_ingest_bytes * 4 // 3 + MULTIPART_ROOM}


class TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over the path's limit is answered 413 RESOURCE_EXHAUSTED."""

    def __init__(self, app, limits: dict[str, int], default: int = OTHER_BYTES) -> None:
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"].rstrip("/"), self.default)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            return await _refuse(send, int(length) if length.isdigit() else None, limit, scope)
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge
            return message

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            if not started:
                await _refuse(send, seen, limit, scope)


async def _refuse(send, size: int | None, limit: int, scope) -> None:
    what = f"{size:,} bytes" if size is not None else "of an unreadable length"
    body = json.dumps(error_body("RESOURCE_EXHAUSTED", f"{scope['path']} request body is {what}; "
                                 f"the limit is {limit:,}")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
