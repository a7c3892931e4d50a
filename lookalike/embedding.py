"""Images in, L2-normalised vectors out: the CNN behind both ingest and search.

The Keras model is called directly inside a tf.function with a fixed input
signature; `model.predict` costs 45-120 ms of overhead per call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lookalike import backbone  # noqa: E402
from lookalike.imaging import to_model_input  # noqa: E402


@dataclass(frozen=True)
class ModelSpec:
    # Names the weights and the pooling: vectors of two versions are never compared.
    version: str


MODELS: dict[str, ModelSpec] = {
    "efficientnet-lite0": ModelSpec("imagenet-57934424.gap224"),
}


class Embedder:
    side = 224

    def __init__(self, name: str = "efficientnet-lite0", batch_size: int = 32) -> None:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        self.name, self.version, self.batch_size = name, MODELS[name].version, batch_size
        self.dim = backbone.FEATURE_DIM
        model = backbone.pretrained_lite0(include_top=False)
        spec = tf.TensorSpec([None, self.side, self.side, 3], tf.float32)
        self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 arrays of any size -> (n, dim) float32, unit length."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        batch = np.stack([to_model_input(img, self.side) for img in images]).astype(np.float32)
        parts = [self._forward(batch[i : i + self.batch_size]).numpy()
                 for i in range(0, len(batch), self.batch_size)]
        vectors = np.concatenate(parts)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_query(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """One vector per search photo."""
        return self.embed(images)

    def embed_catalogue(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One (views, dim) array per catalogue image; each view is stored as a point."""
        return [vector[None] for vector in self.embed(images)]

    def warmup(self) -> None:
        """Trace the graph once so the first request does not pay for it."""
        self.embed([np.zeros((self.side, self.side, 3), np.uint8)])
