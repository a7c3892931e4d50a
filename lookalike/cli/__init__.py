"""The `lookalike` command line.

Client commands (ingest, search, stats, delete, health) need only the client install;
the service and training commands import their parts when they run.
"""

from __future__ import annotations

import sys

# isort: off
# Registers the commands, in the order `lookalike --help` lists them.
from lookalike.cli import service, catalogue, evaluation  # noqa: F401
# isort: on
from lookalike.cli.app import app, console

__all__ = ["app", "main"]


def main() -> None:
    """The console script: a failed call to the service is one line, not a traceback."""
    import grpc
    from rich.markup import escape

    from lookalike.config import ConfigError

    try:
        app(prog_name="lookalike")
    except ConfigError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        sys.exit(2)
    except grpc.RpcError as exc:
        details = exc.details() if hasattr(exc, "details") else str(exc)
        code = exc.code().name if hasattr(exc, "code") else "ERROR"
        hint = " (is the service running? set --server or LOOKALIKE_SERVER)" if code == "UNAVAILABLE" else ""
        console.print(f"[red]{escape(f'{code}: {details}{hint}')}[/]", soft_wrap=True)
        sys.exit(1)
