"""What the services need from an embedding model, whichever it is.

A model owns its preprocessing: `prepare` turns a decoded photo (RGB uint8, any size) into
its network input, `embed_prepared` runs the network on a batch of those. The query path
prepares in the caller's thread and batches forward passes (model/batcher.py); ingest
calls `embed_catalogue`, which may store several views of one image.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from lookalike.model.preprocess import to_model_input  # noqa: E402


class EmbeddingModel(ABC):
    name: str
    version: str  # names the weights and the pooling: vectors of two versions are never compared
    dim: int
    side: int = 224
    n_views: int = 1  # vectors stored per catalogue image

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """A decoded photo -> the network input of this model (query preprocessing)."""
        return to_model_input(image, self.side)

    @abstractmethod
    def embed_prepared(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared photos -> (n, dim) float32, unit length."""

    def embed_query(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Decoded photos -> (n, dim) float32, unit length: one per photo."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_prepared([self.prepare(image) for image in images])

    def embed_catalogue(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One (n_views, dim) array per catalogue image; each view is stored as a point."""
        return [vector[None] for vector in self.embed_query(images)]

    def warmup(self) -> None:
        """Trace the graph once so the first request does not pay for it."""
        self.embed_query([np.zeros((self.side, self.side, 3), np.uint8)])


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
