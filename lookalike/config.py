"""Settings, read from the environment (and a .env file) with documented defaults.

One source of truth for every knob: the services, the CLI, docker-compose and the
Kubernetes manifests all use these names.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """The service cannot start with these settings; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", env_file=".env", extra="ignore")

    # Redis: Celery broker and ingest job records. Its password comes apart from the URL (a
    # Secret in Kubernetes, .env in compose): anyone reaching an open Redis could queue chunks.
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "LOOKALIKE_REDIS_URL")
    )
    redis_password: str = Field(
        "", validation_alias=AliasChoices("REDIS_PASSWORD", "LOOKALIKE_REDIS_PASSWORD"))
    # Empty: embedded Qdrant under data_dir (one process only). Set: a Qdrant server.
    qdrant_url: str = Field("", validation_alias=AliasChoices("QDRANT_URL", "LOOKALIKE_QDRANT_URL"))
    qdrant_api_key: str = Field(
        "", validation_alias=AliasChoices("QDRANT_API_KEY", "LOOKALIKE_QDRANT_API_KEY")
    )
    data_dir: Path = Path(user_data_dir("lookalike"))
    collection: str = "lookalike"

    model: str = "lite0-shelf"
    # What runs the model's network: litert (XNNPACK, 0.25x the Keras forward pass on 2
    # cores; its vectors equal Keras's to float rounding, checked at conversion), litert-int8
    # (its shipped full-integer network, ~0.6x litert's time; other vectors, so another model
    # id: a catalogue is built and searched with one of them) or keras (the reference, what
    # training uses). model_threads: cores it uses, 0: one per core up to 4 (bench/forward.py
    # measures the scaling).
    runtime: Literal["litert", "litert-int8", "keras"] = "litert"
    model_threads: int = Field(0, ge=0, le=256)

    # gRPC query service.
    listen: str = "[::]:50051"
    # Where clients (CLI) find the query service.
    server: str = "localhost:50051"
    grpc_workers: int = 8
    # Searches embedded together at most (lookalike.model.batcher.QueryBatcher); 1: one at a time.
    query_batch: int = 8
    # Calls in progress at once (running or waiting for a thread); beyond that a call is
    # answered RESOURCE_EXHAUSTED at once instead of queueing without bound.
    max_concurrent_rpcs: int = 32
    # Streaming calls (health Watch, reflection) hold a handler thread each: at most this many
    # at once, each ended after stream_lifetime_s, so they can never starve the API.
    max_streams: int = 2
    stream_lifetime_s: float = 60.0
    # Server reflection (grpcurl without the proto); needs a read key when keys are on.
    reflection: bool = True
    # HTTP/JSON gateway and the web page (lookalike/web), in front of the gRPC service: where
    # `lookalike serve` also serves it (empty: off; `make serve` sets 127.0.0.1:8080), and the
    # origins other sites may call it from (comma-separated; empty: no CORS headers).
    http_listen: str = ""
    http_cors_origins: str = ""
    # Request size limits, checked per method before a request is parsed: one search photo;
    # one SubmitIngest batch (also the gRPC message limit) and its items.
    max_search_bytes: int = 16 * 1024 * 1024
    max_ingest_bytes: int = 24 * 1024 * 1024
    max_ingest_items: int = 1000
    default_top_k: int = 10
    max_top_k: int = 100
    # Stage 2 (lookalike/verify): the global-vector shortlist re-ranked by local features
    # verified with a RANSAC homography; verified products go first. auto: among them, cosine
    # plus evidence; on: by inliers; off: stage 1 only. A Search may ask for another mode.
    verify: Literal["auto", "off", "on"] = "auto"
    shortlist: int = 50  # products verified per search (top_k when larger)
    # Crops of the photo searched beside it (0-5; the best score over them counts): products
    # that fill part of the frame rank higher, at the cost of one forward pass per crop.
    query_crops: int = Field(0, ge=0, le=5)
    # Catalogue local features, computed by the worker at ingest (none: no stage 2).
    local_features: Literal["sift", "orb", "none"] = "sift"
    verify_min_inliers: int = 8  # a product is verified from this many inliers
    object_shortlist: int = 100  # catalogue images looked for in the photo by a per-object search
    # FindDuplicates: the cosine from which two catalogue images count as one picture. 0.85
    # found 85-100 % of JPEG re-encodes, half-size copies, flips, brightness changes and text
    # overlays of the dev catalogues' images (crops and 10-degree rotations: 40-98 %), and
    # paired 3 of 780 different-product pairs (near-identical carton variants) in
    # GroceryStoreDataset, none of 1,225 among the DVD covers; 0.93 paired none but found
    # 42-75 % of the grocery re-encodes. scripts/duplicate_threshold.py measures it.
    duplicate_threshold: float = Field(0.85, gt=0.0, le=1.0)

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
    # Pixels being decoded at once in a process (further decodes wait): bounds memory
    # whatever the mix of concurrent requests.
    max_decoding_pixels: int = 50_000_000

    # Observability: Prometheus /metrics port (0: off) and address (empty: the host of
    # `listen`, so a loopback service keeps its metrics on loopback), JSON log lines.
    metrics_port: int = 9464
    metrics_host: str = ""
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
    # GetStats counts are cached this long (a delete through this process refreshes them).
    stats_cache_s: float = 5.0

    # --- Vector store (lookalike/store/; measured by bench/vector_store.py) ---
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
    # int8 scalar quantization kept in RAM, originals rescore (new embedded collections);
    # search threads per query, 0: one per CPU.
    edge_int8: bool = False
    search_threads: int = 0
    # Qdrant server (QDRANT_URL set): passed to create_collection; 0 leaves it to the server.
    shard_number: int = 0
    replication_factor: int = 0
    write_consistency_factor: int = 0
    # Qdrant server collections (created from now on), as Qdrant recommends for millions of
    # vectors: int8 scalar quantisation kept in RAM, searched with oversampling and rescored
    # with the originals, which stay on disk with the payload (docs/scaling.md).
    server_quantization: Literal["int8", "none"] = "int8"
    server_on_disk: bool = True
    server_oversampling: float = 2.0
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
    def http_cors_origin_list(self) -> list[str]:
        return self._split(self.http_cors_origins)

    @property
    def ingest_root_list(self) -> list[Path]:
        return [Path(root).resolve() for root in self._split(self.ingest_roots)]

    @property
    def redis_dsn(self) -> str:
        """redis_url with redis_password in it (when set): what the clients connect with."""
        if not self.redis_password:
            return self.redis_url
        parts = urlsplit(self.redis_url)
        netloc = f":{quote(self.redis_password, safe='')}@{parts.netloc.rpartition('@')[2]}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def metrics_address(self) -> str:
        if self.metrics_host:
            return self.metrics_host
        host = self.listen.rsplit(":", 1)[0].strip("[]")
        return "0.0.0.0" if host in ("", "::", "0.0.0.0") else host

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
    """The settings from the environment; a value that does not parse is a ConfigError
    naming the variable, not a validation traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [f"LOOKALIKE_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                    for e in exc.errors()]
        raise ConfigError("; ".join(problems)) from None
