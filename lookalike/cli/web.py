"""`lookalike web`: the HTTP/JSON gateway and the web page on their own, in front of a gRPC
service elsewhere (a container or Deployment of its own)."""

from __future__ import annotations

from typing import Annotated

import typer

from lookalike.cli.app import ExitCode, app, console, fail
from lookalike.config import get_settings


@app.command()
def web(
    grpc_target: Annotated[str, typer.Option(
        "--grpc", help="the gRPC query service (default: LOOKALIKE_SERVER)")] = "",
    listen: Annotated[str, typer.Option(
        help="HOST:PORT to serve HTTP on (default: LOOKALIKE_HTTP_LISTEN, else 127.0.0.1:8080)",
    )] = "",
) -> None:
    """Serve the HTTP/JSON API and the web page, calling the gRPC service at --grpc."""
    import uvicorn

    from lookalike.config import ConfigError
    from lookalike.observability import setup_logging
    from lookalike.web import create_app
    from lookalike.web.runner import split_address

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    address = listen or settings.http_listen or "127.0.0.1:8080"
    try:
        host, port = split_address(address)
    except ConfigError as exc:
        raise fail(str(exc), ExitCode.USAGE) from None
    target = grpc_target or settings.server
    console.print(f"lookalike web on http://{address}/ -> gRPC {target}")
    uvicorn.run(create_app(settings, target), host=host, port=port, log_config=None,
                access_log=False, timeout_graceful_shutdown=5)
