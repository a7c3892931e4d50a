"""Settings, read from the environment (and a .env file) with documented defaults.

One source of truth for every knob: the services, the CLI, docker-compose and the
Kubernetes manifests all use these names.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", env_file=".env", extra="ignore")

    # Redis: Celery broker, result backend and ingest job records.
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "LOOKALIKE_REDIS_URL")
    )
    # Empty: embedded Qdrant under data_dir (one process only). Set: a Qdrant server.
    qdrant_url: str = Field("", validation_alias=AliasChoices("QDRANT_URL", "LOOKALIKE_QDRANT_URL"))
    qdrant_api_key: str = Field(
        "", validation_alias=AliasChoices("QDRANT_API_KEY", "LOOKALIKE_QDRANT_API_KEY")
    )
    data_dir: Path = Path(user_data_dir("lookalike"))
    collection: str = "lookalike"

    model: str = "lite0-shelf"

    # gRPC query service.
    listen: str = "[::]:50051"
    # Where clients (CLI) find the query service.
    server: str = "localhost:50051"
    grpc_workers: int = 8
    # Searches embedded together at most (lookalike.embedding.QueryBatcher); 1: one at a time.
    query_batch: int = 8
    # Calls in progress at once (running or waiting for a thread); beyond that a call is
    # answered RESOURCE_EXHAUSTED at once instead of queueing without bound.
    max_concurrent_rpcs: int = 32
    # Request size limits: one search photo; one SubmitIngest batch (the gRPC message limit).
    max_search_bytes: int = 16 * 1024 * 1024
    max_ingest_bytes: int = 64 * 1024 * 1024
    default_top_k: int = 10
    max_top_k: int = 100

    # Access. "keys": every call but health/reflection needs an x-api-key from read_keys
    # (Search, GetJob, GetStats) or write_keys (everything); "none" is for local use only.
    auth: Literal["keys", "none"] = "keys"
    read_keys: str = ""   # comma-separated
    write_keys: str = ""  # comma-separated; a write key may also read
    # TLS for gRPC: PEM files; empty: plaintext. Clients: tls_ca to trust a private CA.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls: bool = False  # clients: TLS with the system's CAs
    api_key: str = ""  # what the CLI/client sends
    # Ingest by reference: folders the service may read (comma-separated; empty: none)
    # and whether URLs may point at loopback/private/link-local addresses.
    ingest_roots: str = ""
    allow_private_urls: bool = False

    # Images: refuse anything larger before decoding it (decompression bombs).
    max_image_pixels: int = 50_000_000
    min_image_side: int = 16
    max_image_bytes: int = 20 * 1024 * 1024

    # Observability: Prometheus /metrics port (0: off) and JSON log lines.
    metrics_port: int = 9464
    log_json: bool = True
    log_level: str = "INFO"

    # Worker.
    chunk_size: int = 32
    queue: str = "lookalike.ingest"
    # Seconds before Redis hands an unacknowledged chunk (its worker died) to another worker.
    # Must exceed the time one chunk takes.
    visibility_timeout_s: int = 3600
    # Chunk retries while the store is unavailable: exponential backoff with jitter.
    store_retries: int = 8
    retry_backoff_s: int = 2
    fetch_timeout_s: float = 10.0
    job_ttl_s: int = 7 * 24 * 3600

    # --- Vector store (lookalike/store.py; measured by bench/vector_store.py) ---
    # Embedded store (QDRANT_URL empty), applied to collections created from now on.
    # Vector storage: turbo8 (8-bit rotated codes, 1.3 KB per 1280-d image), turbo4 (4-bit,
    # 0.65 KB; lower recall, see README Performance), float16, float32.
    vector_datatype: str = "turbo8"
    # HNSW graph, built aside by `lookalike serve` (every index_check_s seconds it looks for
    # more than indexing_threshold_kb KB of unindexed vectors; 0: never) or `lookalike
    # optimize`; smaller catalogues are searched exactly. hnsw_ef 0: the engine default.
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 0
    indexing_threshold_kb: int = 20000
    index_check_s: float = 30
    # Qdrant server (QDRANT_URL set): passed to create_collection; 0 leaves it to the server.
    shard_number: int = 0
    replication_factor: int = 0
    write_consistency_factor: int = 0
    # --- end vector store ---

    @staticmethod
    def _split(value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]

    @property
    def read_key_list(self) -> list[str]:
        return self._split(self.read_keys)

    @property
    def write_key_list(self) -> list[str]:
        return self._split(self.write_keys)

    @property
    def ingest_root_list(self) -> list[Path]:
        return [Path(root).resolve() for root in self._split(self.ingest_roots)]

    @property
    def embedded(self) -> bool:
        return not self.qdrant_url

    @property
    def ingest_queue(self) -> str:
        """The queue this deployment's workers consume.

        An embedded store has exactly one worker, in the process that owns the store, so
        its queue is private to that data directory: two embedded instances sharing a
        Redis must not take each other's chunks.
        """
        if not self.embedded:
            return self.queue
        digest = hashlib.sha1(str(Path(self.data_dir).resolve()).encode()).hexdigest()[:10]
        return f"{self.queue}.embedded.{digest}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
