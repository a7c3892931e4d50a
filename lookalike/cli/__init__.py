"""The `lookalike` command line.

Client commands (ingest, search, stats, delete, health) need only the client install;
the service and training commands import their parts when they run.
"""

from __future__ import annotations

# isort: off
# Registers the commands, in the order `lookalike --help` lists them.
from lookalike.cli import service, catalogue, products, discovery, evaluation, copies, web, web_health  # noqa: F401
# isort: on
from lookalike.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """The console script. A user error is one red line and an exit status of app.ExitCode,
    never a traceback: app.OneLineErrors maps them for every command."""
    app(prog_name="lookalike")
