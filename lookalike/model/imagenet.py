"""`efficientnet-lite0`: the ImageNet network as is, global average pooled (1280-d)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from lookalike.model import backbone
from lookalike.model.base import EmbeddingModel, unit


class ImageNetLite0(EmbeddingModel):
    def __init__(self, name: str, version: str, batch_size: int = 32) -> None:
        self.name, self.version, self.batch_size = name, version, batch_size
        self.dim = backbone.FEATURE_DIM
        network = backbone.pretrained_lite0(include_top=False)
        # Called inside a tf.function with a fixed signature: model.predict costs 45-120 ms
        # of overhead per call.
        spec = tf.TensorSpec([None, self.side, self.side, 3], tf.float32)
        self._forward = tf.function(lambda x: network(x, training=False), input_signature=[spec])

    def embed_prepared(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        x = np.stack(batch).astype(np.float32)
        parts = [self._forward(x[i : i + self.batch_size]).numpy()
                 for i in range(0, len(x), self.batch_size)]
        return unit(np.concatenate(parts)).astype(np.float32)
