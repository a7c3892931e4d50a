"""The `lookalike` command line.

Client commands (ingest, search, stats, delete, health) need only the client install;
the service and training commands import their parts when they run.
"""

from lookalike.cli import service, catalogue, evaluation  # noqa: F401, I001 - registers the commands in this order
from lookalike.cli.app import app

__all__ = ["app"]
