"""EfficientNet-Lite0 cut in two: a frozen trunk and the tail that training fine-tunes.

The shelf model runs trunk + trained tail + GeM pooling; training computes the trunk's
output once and fits only the tail.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from lookalike.model import backbone

N_BLOCKS = sum(r for r, *_ in backbone.BLOCK_ARGS)  # 16


def _block_specs() -> list[tuple[int, int, int, int, int]]:
    out = []
    for repeats, k, s, e, ci, co in backbone.BLOCK_ARGS:
        for r in range(repeats):
            out.append((k, s if r == 0 else 1, e, ci if r == 0 else co, co))
    return out


BLOCKS = _block_specs()


def block_output(model: keras.Model, i: int):
    names = {layer.name for layer in model.layers}
    return model.get_layer(f"block{i}_add" if f"block{i}_add" in names else f"block{i}_project_bn").output


def split_model(split: int = 13, full: keras.Model | None = None) -> tuple[keras.Model, keras.Model]:
    """(trunk: image -> output of block split-1, tail: that -> 1280-channel map), ImageNet weights."""
    full = full if full is not None else backbone.pretrained_lite0(include_top=False)
    trunk = keras.Model(full.input, block_output(full, split - 1), name="trunk")
    inp = keras.Input((None, None, BLOCKS[split][3]), name="tail_in")
    x = inp
    for i in range(split, N_BLOCKS):
        x = backbone.block(x, i, *BLOCKS[i])
    x = layers.Conv2D(backbone.FEATURE_DIM, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu6")(x)
    tail = keras.Model(inp, x, name="tail")
    for layer in tail.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
    return trunk, tail


def trainable_layer_names(tail: keras.Model, unfreeze: int) -> list[str]:
    """Layers of the last `unfreeze` blocks + head conv/bn (unfreeze=0: none)."""
    if unfreeze <= 0:
        return []
    first = N_BLOCKS - unfreeze
    keep = tuple(f"block{i}_" for i in range(first, N_BLOCKS)) + ("head_",)
    return [layer.name for layer in tail.layers if layer.weights and layer.name.startswith(keep)]


def gem(x: tf.Tensor, p: float) -> tf.Tensor:
    if p == 1:
        return tf.reduce_mean(x, axis=[1, 2])
    return tf.pow(tf.reduce_mean(tf.pow(tf.maximum(x, 1e-6), p), axis=[1, 2]), 1.0 / p)


def l2n(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def forward_batched(fn, x: np.ndarray, bs: int = 64) -> np.ndarray:
    return np.concatenate([fn(tf.constant(x[i:i + bs], tf.float32)).numpy() for i in range(0, len(x), bs)])
