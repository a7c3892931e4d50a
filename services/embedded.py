"""The all-in-one process of the embedded default (`lookalike serve`): the query service
and the ingest worker share one model and the embedded store, which only one process may
open. The worker runs in the main thread (Celery wants it), the gRPC server beside it.
"""

from __future__ import annotations

import socket

from lookalike_services.query.main import build_parts, serve
from lookalike_services.worker.main import build_app, run

from lookalike.config import get_settings
from lookalike.observability import setup_logging


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    parts = build_parts(settings)
    app = build_app(settings, parts.model, parts.store, parts.jobs)
    # Blocks until SIGTERM/SIGINT (Celery's warm shutdown), then the server stops.
    serve(parts, lambda: run(app, settings, hostname=f"embedded@{socket.gethostname()}"))


if __name__ == "__main__":
    main()
