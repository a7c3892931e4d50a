"""Fit the tail (or a projection head) on trunk features; learn the per-domain means.

`mode="head"` trains a linear projection on the frozen pooled feature; `mode="unfreeze"`
trains the last `unfreeze` MBConv blocks + head conv (BN statistics frozen) and keeps the
1280-d pooled feature as the embedding. `loss="ce"` is softmax cross-entropy on a linear
classifier, `loss="cosine"` the normalised softmax (`CosineClassifier`); the classifier is
thrown away after training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from lookalike.model import backbone
from lookalike.model.preprocess import to_model_input
from lookalike.model.tail import (
    BLOCKS,
    N_BLOCKS,
    block_output,
    forward_batched,
    gem,
    l2n,
    split_model,
    trainable_layer_names,
)
from lookalike.model.views import ingest_views
from lookalike.training.config import TrainConfig
from lookalike.training.data import Dataset
from lookalike.training.training_set import TrainingSet


class CosineClassifier(layers.Layer):
    """Logits = cosine(embedding, class proxy) / temperature."""

    def __init__(self, n: int, temperature: float, **kw):
        super().__init__(**kw)
        self.n, self.t = n, temperature

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], self.n), initializer="glorot_normal", name="proxies")

    def call(self, x):
        return tf.matmul(tf.math.l2_normalize(x, -1), tf.math.l2_normalize(self.w, 0)) / self.t


@dataclass
class TrainedTail:
    """The tail with its trained weights, and what else goes into the artifact."""

    cfg: TrainConfig
    tail: keras.Model
    proj: np.ndarray | None       # mode "head": [1280, proj_dim]
    trained_layers: list[str]
    seconds: float = 0.0
    cat_mean: np.ndarray | None = None
    query_mean: np.ndarray | None = None

    def embed_features(self, feats: np.ndarray) -> np.ndarray:
        """Trunk output -> L2-normalised embedding (before domain-mean subtraction)."""
        if not hasattr(self, "_fn"):
            p = self.cfg.gem_p
            self._fn = tf.function(lambda x: gem(self.tail(x, training=False), p), reduce_retracing=True)
        v = forward_batched(self._fn, feats, 128)
        return l2n(v @ self.proj if self.proj is not None else v)

    def subtract_domain_mean(self, v: np.ndarray, domain: str) -> np.ndarray:
        """Embeddings of one domain ("catalogue" or photos) with that domain's mean taken out."""
        mean = self.cat_mean if domain == "catalogue" else self.query_mean
        return l2n(v - mean) if mean is not None else v


def _classifier(n_classes: int, cfg: TrainConfig) -> layers.Layer:
    return CosineClassifier(n_classes, cfg.temperature) if cfg.loss == "cosine" else layers.Dense(n_classes)


def fit(ts: TrainingSet, cfg: TrainConfig, full: keras.Model | None = None, log=print) -> TrainedTail:
    """Train the tail (or a head) on trunk features; returns the tail with trained weights."""
    keras.utils.set_random_seed(cfg.seed)
    started = time.time()
    _, tail = split_model(cfg.split, full)
    rng = np.random.default_rng(cfg.seed)
    fit_mode = _fit_projection if cfg.mode == "head" else _fit_last_blocks
    return fit_mode(ts, cfg, tail, rng, started, log)


def _fit_projection(ts: TrainingSet, cfg: TrainConfig, tail: keras.Model, rng: np.random.Generator,
                    started: float, log) -> TrainedTail:
    """mode "head": a linear projection of the frozen pooled feature."""
    labels = ts.labels.astype(np.int32)
    pooled = forward_batched(tf.function(lambda x: gem(tail(x, training=False), cfg.gem_p)), ts.features, 128)
    proj = layers.Dense(cfg.proj_dim, use_bias=False)
    classifier = _classifier(len(ts.classes), cfg)
    opt = keras.optimizers.Adam(cfg.head_lr)
    proj.build((None, pooled.shape[1]))
    classifier.build((None, cfg.proj_dim))
    variables = proj.trainable_weights + classifier.trainable_weights

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            e = proj(x)
            if cfg.loss == "cosine":
                e = tf.math.l2_normalize(e, -1)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, classifier(e), from_logits=True))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    n_steps = cfg.steps + cfg.head_steps
    for s in range(n_steps):
        idx = rng.integers(0, len(pooled), cfg.batch)
        loss = step(tf.constant(pooled[idx], tf.float32), tf.constant(labels[idx]))
        if s % 100 == 0 or s == n_steps - 1:
            log(f"  head step {s}: loss {float(loss):.3f}")
    return TrainedTail(cfg, tail, proj.get_weights()[0], [], time.time() - started)


def _fit_last_blocks(ts: TrainingSet, cfg: TrainConfig, tail: keras.Model, rng: np.random.Generator,
                     started: float, log) -> TrainedTail:
    """mode "unfreeze": the last `unfreeze` blocks + head conv, after a classifier warm-up."""
    labels = ts.labels.astype(np.int32)
    names = trainable_layer_names(tail, cfg.unfreeze)
    sub, features = _trained_part(tail, cfg.split, N_BLOCKS - cfg.unfreeze, ts.features)
    classifier = _classifier(len(ts.classes), cfg)
    classifier.build((None, backbone.FEATURE_DIM))
    backbone_vars = [w for nm in names for w in sub.get_layer(nm).trainable_weights]
    opt_backbone, opt_head = keras.optimizers.Adam(cfg.lr), keras.optimizers.Adam(cfg.head_lr)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            f = gem(sub(x, training=False), cfg.gem_p)  # BN statistics stay frozen
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, classifier(f), from_logits=True))
        n_head = len(classifier.trainable_weights)
        g = tape.gradient(loss, classifier.trainable_weights + backbone_vars)
        opt_head.apply_gradients(zip(g[:n_head], classifier.trainable_weights))
        opt_backbone.apply_gradients(zip(g[n_head:], backbone_vars))
        return loss

    if cfg.head_steps:  # classifier warm-up on the frozen pooled features
        pooled = forward_batched(tf.function(lambda x: gem(sub(x, training=False), cfg.gem_p)), features, 128)
        warm = tf.function(lambda x, y: _classifier_step(classifier, opt_head, x, y))
        for _ in range(cfg.head_steps):
            idx = rng.integers(0, len(pooled), cfg.batch)
            loss = warm(tf.constant(pooled[idx], tf.float32), tf.constant(labels[idx]))
        log(f"  warm-up: loss {float(loss):.3f}")
    for s in range(cfg.steps):
        idx = rng.integers(0, len(features), cfg.batch)
        loss = step(tf.constant(features[idx], tf.float32), tf.constant(labels[idx]))
        if s % 50 == 0 or s == cfg.steps - 1:
            log(f"  step {s}: loss {float(loss):.3f}  ({time.time() - started:.0f}s)")
    for nm in names:  # copy back into the full tail
        tail.get_layer(nm).set_weights(sub.get_layer(nm).get_weights())
    return TrainedTail(cfg, tail, None, names, time.time() - started)


def _trained_part(tail: keras.Model, split: int, first: int,
                  features: np.ndarray) -> tuple[keras.Model, np.ndarray]:
    """The tail from block `first` on, and its input: the frozen blocks before it run once here."""
    if first <= split:
        return tail, features
    frozen = keras.Model(tail.input, block_output(tail, first - 1))
    features = forward_batched(tf.function(lambda x: frozen(x, training=False)), features, 128).astype(np.float16)
    sub_in = keras.Input(features.shape[1:])
    x = sub_in
    for i in range(first, N_BLOCKS):
        x = backbone.block(x, i, *BLOCKS[i])
    for nm in ("head_conv", "head_bn", "head_relu6"):
        x = tail.get_layer(nm)(x)
    sub = keras.Model(sub_in, x)
    for layer in sub.layers:
        if layer.weights and layer.name.startswith("block"):
            layer.set_weights(tail.get_layer(layer.name).get_weights())
    return sub, features


def _classifier_step(classifier, opt, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, classifier(x), from_logits=True))
    opt.apply_gradients(zip(tape.gradient(loss, classifier.trainable_weights), classifier.trainable_weights))
    return loss


def fit_domain_means(tr: TrainedTail, trunk_fn, ds: Dataset) -> None:
    """Mean embedding of the catalogue ingest views and of the (clean) photos of ds."""
    cfg = tr.cfg
    views = [v for img in ds.catalogue for v in ingest_views(img, cfg.n_views, cfg.seed, cfg.side, cfg.view_kind)]
    cat = tr.embed_features(forward_batched(trunk_fn, np.stack(views).astype(np.float32)))
    photos = np.stack([to_model_input(p, cfg.side) for p in ds.photos]).astype(np.float32)
    qry = tr.embed_features(forward_batched(trunk_fn, photos))
    tr.cat_mean, tr.query_mean = cat.mean(0), qry.mean(0)
