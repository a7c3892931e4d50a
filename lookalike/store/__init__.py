"""The catalogue's vectors: CatalogueStore over an embedded engine or a Qdrant server."""

from lookalike.store.backends import Backend, edge_options, local_client, open_client, server_options
from lookalike.store.catalogue import (
    CatalogueImage,
    CatalogueStore,
    Match,
    ModelMismatch,
    collection_for,
)
from lookalike.store.lock import StoreLocked
from lookalike.store.server import StoreUnavailable

__all__ = ["Backend", "CatalogueImage", "CatalogueStore", "Match", "ModelMismatch", "StoreLocked",
           "StoreUnavailable", "collection_for", "edge_options", "local_client", "open_client",
           "server_options"]
