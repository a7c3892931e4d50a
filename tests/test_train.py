"""lookalike.training: a couple of steps on synthetic products; the artifact round-trips through
lookalike.model.shelf.ShelfModel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.model.shelf import ShelfModel
from lookalike.model.tail import split_model
from lookalike.tools import sample
from lookalike.training import Dataset, TrainConfig, train


def _dataset(n_products: int = 3, photos: int = 3) -> Dataset:
    rng = np.random.default_rng(0)
    names = list(sample.PRODUCTS)[:n_products]
    ds = Dataset([], [], [], [])
    for name in names:
        img = sample._rgb(sample.PRODUCTS[name][0])
        cat = np.full((img.shape[0] + 40, img.shape[1] + 40, 3), 255, np.uint8)  # white margin
        cat[20:-20, 20:-20] = img
        ds.catalogue.append(cat)
        ds.catalogue_labels.append(name)
        for _ in range(photos):
            ds.photos.append(sample.store_photo(img, rng, side=160))
            ds.photo_labels.append(name)
    return ds


@pytest.mark.parametrize("mode", ["unfreeze", "head"])
def test_train_save_reload(tmp_path, mode):
    ds = _dataset()
    cfg = TrainConfig(mode=mode, loss="cosine", steps=2, head_steps=1, batch=4, n_aug_photo=1,
                      n_aug_catalogue=2, n_views=3, side=64, proj_dim=32)
    train(ds, tmp_path / "m", cfg, log=lambda *a: None)
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["config"]["mode"] == mode and meta["data"]["photos"] == 9
    assert (tmp_path / "m.npz").stat().st_size < 8e6
    arrays = np.load(tmp_path / "m.npz")
    if mode == "unfreeze":
        assert all(arrays[k].dtype == np.float16 for k in arrays.files if k.startswith("layer/"))
        assert meta["trained_layers"] and all(n.startswith(("block15_", "head_")) for n in meta["trained_layers"])

    a, b = ShelfModel("m", "test", tmp_path / "m.npz"), ShelfModel("m", "test", tmp_path / "m")
    dim = 32 if mode == "head" else 1280
    assert a.dim == dim and a.n_views == 3
    g1, g2 = np.stack(a.embed_catalogue(ds.catalogue[:2])), np.stack(b.embed_catalogue(ds.catalogue[:2]))
    q1, q2 = a.embed_query(ds.photos[:4]), b.embed_query(ds.photos[:4])
    assert g1.shape == (2, 3, dim) and q1.shape == (4, dim)
    assert g1.dtype == np.float32 and q1.dtype == np.float32
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_allclose(np.linalg.norm(g1, axis=-1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(q1, axis=-1), 1, atol=1e-5)
    # a catalogue image's views do not depend on its place in the batch
    np.testing.assert_allclose(a.embed_catalogue(ds.catalogue[1:2])[0], g1[1], atol=1e-5)
    assert a.embed_query([]).shape == (0, dim)


def test_trained_weights_differ_from_imagenet(tmp_path):
    ds = _dataset(2, 2)
    cfg = TrainConfig(steps=2, head_steps=0, batch=4, n_aug_photo=1, n_aug_catalogue=1, n_views=1,
                      side=64, lr=1e-2)
    tr = train(ds, tmp_path / "m", cfg, log=lambda *a: None)
    _, base = split_model(cfg.split)
    w0 = base.get_layer("head_conv").get_weights()[0]
    w1 = tr.tail.get_layer("head_conv").get_weights()[0]
    assert not np.allclose(w0, w1)
