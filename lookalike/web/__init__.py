"""The HTTP/JSON gateway and the web page, in front of the gRPC service.

Every endpoint is one gRPC call made through `lookalike.client.AsyncClient` with the caller's
`x-api-key`: keys, validation, limits and error texts are the service's own. `create_app`
builds the ASGI app; `lookalike.web.runner` serves it with uvicorn (`lookalike serve` with
LOOKALIKE_HTTP_LISTEN set, or `lookalike web --grpc HOST:PORT`).
"""

from lookalike.web.app import create_app

__all__ = ["create_app"]
