"""The vector engines behind CatalogueStore, chosen by the settings.

- embedded (QDRANT_URL empty, the default): Qdrant's Rust engine in-process (qdrant-edge),
  a folder under data_dir, locked to the one process that opens it (store/edge.py);
- a Qdrant server (QDRANT_URL set), through qdrant-client (store/server.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from qdrant_client import QdrantClient

from lookalike.config import Settings
from lookalike.store.edge import EdgeBackend, EdgeOptions
from lookalike.store.indexing import IndexReport
from lookalike.store.server import QdrantBackend, ServerOptions


class Backend(Protocol):
    """What CatalogueStore needs from a vector engine (EdgeBackend, QdrantBackend)."""

    def collection_exists(self, collection: str) -> bool: ...
    def create_collection(self, collection: str, dim: int, model_id: str,
                          indexed_fields: tuple[str, ...]) -> None: ...
    def collection_model(self, collection: str) -> str: ...
    def alias(self, catalogue: str) -> str | None: ...
    def set_alias(self, catalogue: str, collection: str) -> None: ...
    def upsert(self, collection: str, points: list[tuple[str, np.ndarray, dict]]) -> None: ...
    def search(self, collection: str, vector: np.ndarray, top_k: int,
               must: dict[str, list[str]], min_score: float | None) -> list[tuple[float, dict]]: ...
    def delete(self, collection: str, must: dict[str, list[str]]) -> None: ...
    def set_payload(self, collection: str,
                    updates: list[tuple[dict[str, list[str]], dict]]) -> None: ...
    def count(self, collection: str, must: dict[str, list[str]] | None = None) -> int: ...
    def facet(self, collection: str, key: str,
              must: dict[str, list[str]] | None = None) -> dict[str, int]: ...
    def scroll(self, collection: str, offset: Any, limit: int,
               must: dict[str, list[str]] | None = None) -> tuple[list[dict], Any]: ...
    def scroll_vectors(self, collection: str, offset: Any, limit: int,
                       must: dict[str, list[str]] | None = None
                       ) -> tuple[list[tuple[dict, np.ndarray]], Any]: ...
    def nearest(self, collection: str, vectors: np.ndarray, limit: int,
                must: dict[str, list[str]] | None,
                min_score: float) -> list[list[tuple[float, dict]]]: ...
    def search_text(self, collection: str, words: str, top_k: int,
                    must: dict[str, list[str]]) -> list[tuple[float, dict]]: ...
    def search_hybrid(self, collection: str, vectors: np.ndarray, words: str, top_k: int,
                      must: dict[str, list[str]],
                      min_score: float | None) -> list[tuple[float, dict]]: ...
    def recommend(self, collection: str, positives: np.ndarray, negatives: np.ndarray,
                  top_k: int, must: dict[str, list[str]],
                  exclude: list[str]) -> list[tuple[float, dict]]: ...
    def search_diverse(self, collection: str, vector: np.ndarray, top_k: int,
                       must: dict[str, list[str]], exclude: list[str],
                       diversity: float) -> list[tuple[float, dict]]: ...
    def features(self, collection: str, point_ids: list[str]) -> dict[str, str]: ...
    def vectors(self, collection: str, point_ids: list[str]) -> dict[str, np.ndarray]: ...
    def optimize(self, collection: str) -> bool: ...
    def index_in_background(self, collection: str, every_s: float, report: IndexReport) -> None: ...
    def close(self) -> None: ...


def edge_options(settings: Settings) -> EdgeOptions:
    return EdgeOptions(datatype=settings.vector_datatype, int8=settings.edge_int8,
                       search_threads=settings.search_threads,
                       hnsw_m=settings.hnsw_m, hnsw_ef_construct=settings.hnsw_ef_construct,
                       hnsw_ef=settings.hnsw_ef,
                       indexing_threshold_kb=settings.indexing_threshold_kb)


def server_options(settings: Settings) -> ServerOptions:
    return ServerOptions(shard_number=settings.shard_number,
                         replication_factor=settings.replication_factor,
                         write_consistency_factor=settings.write_consistency_factor,
                         quantization=settings.server_quantization, on_disk=settings.server_on_disk,
                         oversampling=settings.server_oversampling, hnsw_m=settings.hnsw_m,
                         hnsw_ef_construct=settings.hnsw_ef_construct, hnsw_ef=settings.hnsw_ef)


def open_client(settings: Settings) -> Backend:
    """The backend for these settings: a Qdrant server when QDRANT_URL is set, else embedded."""
    if settings.qdrant_url:
        return QdrantBackend(
            QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None),
            server_options(settings))
    return EdgeBackend(Path(settings.data_dir) / "edge", edge_options(settings))


def local_client(path: Path | str) -> Backend:
    """qdrant-client's local mode (numpy brute force): the server API without a server."""
    Path(path).mkdir(parents=True, exist_ok=True)
    # Its text queries rank plain words only (ServerOptions.text_stemming).
    return QdrantBackend(QdrantClient(path=str(path)), ServerOptions(text_stemming=False))
