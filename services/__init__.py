"""The services, each wiring its own parts (installed as `lookalike_services`).

- query: the gRPC API (`python -m lookalike_services.query`);
- worker: the Celery ingest worker (`python -m lookalike_services.worker`);
- embedded: both in one process, sharing the model and the embedded store (`lookalike serve`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(main: Callable[[], None]) -> None:
    """A service's entry point: a setting it cannot start with is one line on stderr, exit 2."""
    from lookalike.config import ConfigError
    from lookalike.store import StoreLocked

    try:
        main()
    except (ConfigError, StoreLocked) as exc:
        print(f"lookalike: {exc}", file=sys.stderr)
        sys.exit(2)
