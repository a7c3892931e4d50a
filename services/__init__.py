"""The services, each wiring its own parts (installed as `lookalike_services`).

- query: the gRPC API (`python -m lookalike_services.query`);
- worker: the Celery ingest worker (`python -m lookalike_services.worker`);
- embedded: both in one process, sharing the model and the embedded store (`lookalike serve`).
"""
