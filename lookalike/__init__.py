"""lookalike: find the catalogue products that look like a photo."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `lookalike.Client` without importing gRPC for every `import lookalike`.
    if name in ("Client", "AsyncClient"):
        from lookalike import client

        return getattr(client, name)
    raise AttributeError(name)
