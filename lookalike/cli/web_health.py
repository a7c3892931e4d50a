"""`lookalike web-health`: the container check of `lookalike web` (the image has no curl)."""

from __future__ import annotations

from typing import Annotated

import typer

from lookalike.cli.app import ExitCode, app, console
from lookalike.config import get_settings


def healthz_url(http_listen: str) -> str:
    """/healthz of the gateway listening on http_listen (HOST:PORT; empty: 127.0.0.1:8080),
    asked on loopback when it listens on every interface."""
    host, _, port = (http_listen or "127.0.0.1:8080").rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"


@app.command("web-health")
def web_health(
    url: Annotated[str, typer.Option(
        help="the gateway's /healthz (default: from LOOKALIKE_HTTP_LISTEN, on loopback)")] = "",
    timeout_s: Annotated[float, typer.Option(help="how long to wait for the answer")] = 5.0,
) -> None:
    """Exit 0 when the HTTP gateway answers 200 on /healthz (container probes)."""
    import urllib.error
    import urllib.request

    url = url or healthz_url(get_settings().http_listen)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        console.print(f"{url}: {exc}")
        raise typer.Exit(ExitCode.FAILED) from None
    console.print(f"{url}: {status}")
    raise typer.Exit(ExitCode.OK if status == 200 else ExitCode.FAILED)
