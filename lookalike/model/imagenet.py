"""`efficientnet-lite0`: the ImageNet network as is, global average pooled (1280-d)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from lookalike.model import backbone
from lookalike.model.base import EmbeddingModel, unit
from lookalike.model.runtime import make_forward


class ImageNetLite0(EmbeddingModel):
    def __init__(self, name: str, version: str, batch_size: int = 32, runtime: str = "keras",
                 threads: int = 0) -> None:
        self.name, self.version, self.batch_size, self.runtime = name, version, batch_size, runtime
        self.dim = backbone.FEATURE_DIM
        network = backbone.pretrained_lite0(include_top=False)
        # Called inside a tf.function with a fixed signature: model.predict costs 45-120 ms
        # of overhead per call.
        spec = tf.TensorSpec([None, self.side, self.side, 3], tf.float32)
        self.network = tf.function(lambda x: network(x, training=False), input_signature=[spec])
        self.forward = make_forward(runtime, self.network, self.model_id, self.side, batch_size, threads)

    def embed_prepared(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return unit(self.forward(np.stack(batch).astype(np.float32))).astype(np.float32)
