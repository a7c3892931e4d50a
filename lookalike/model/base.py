"""What the services need from an embedding model, whichever it is.

A model owns its preprocessing: `query_views` says which parts of a photo are searched,
`prepare` turns one (RGB uint8, any size) into its network input, `embed_prepared` runs the
network on a batch of those. The query path prepares in the caller's thread and batches
forward passes (model/batcher.py); ingest calls `embed_catalogue`, which may store several
views of one image.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from lookalike.model.preprocess import centre_crop, query_crops, to_model_input  # noqa: E402


class EmbeddingModel(ABC):
    name: str
    version: str  # names the weights and the pooling: vectors of two versions are never compared
    dim: int
    side: int = 224
    n_views: int = 1  # vectors stored per catalogue image
    # A photo is searched by its middle 0.8 of each side: shoppers frame the product, the
    # edges hold shelf and hands. Catalogue images stay whole. Measured for lite0-shelf and
    # efficientnet-lite0 on GroceryStoreDataset (and on products held out of training) and the
    # SMVS DVD covers: it raised Recall@1 and recall@10 on both (0.7 more on DVD covers, but it
    # lost a held-out fold; 0.6 and less lost on groceries).
    query_crop: float = 0.8

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """An image (a query view or a catalogue image) -> the network input of this model."""
        return to_model_input(image, self.side)

    def query_views(self, photo: np.ndarray, crops: int = 0, whole: bool = False
                    ) -> list[np.ndarray]:
        """What is searched for a photo: its middle (query_crop), then `crops` of its corner and
        centre crops (preprocess.query_crops), then the photo itself when `whole` (a per-object
        search looks for products anywhere in it). A product scores its best over them."""
        return ([centre_crop(photo, self.query_crop)] + query_crops(photo, crops)
                + ([photo] if whole else []))

    @abstractmethod
    def embed_prepared(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared photos -> (n, dim) float32, unit length."""

    def embed_query(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Decoded photos -> (n, dim) float32, unit length: one per photo (its first view)."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_prepared([self.prepare(self.query_views(image)[0]) for image in images])

    def embed_catalogue(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One (n_views, dim) array per catalogue image; each view is stored as a point."""
        if not images:
            return []
        return [vector[None] for vector in self.embed_prepared([self.prepare(i) for i in images])]

    def warmup(self) -> None:
        """Trace the graph once so the first request does not pay for it."""
        self.embed_query([np.zeros((self.side, self.side, 3), np.uint8)])


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
