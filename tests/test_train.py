"""lookalike.training: a couple of steps on synthetic products; the artifact round-trips through
lookalike.model.shelf.ShelfModel; a projected (shrunk) artifact searches its source's vectors projected;
a quantized one runs its source's network in int8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.model.registry import DEFAULT_MODEL, INT8, MODELS, model_id
from lookalike.model.shelf import ShelfModel
from lookalike.model.tail import split_model
from lookalike.tools import sample
from lookalike.training import Dataset, TrainConfig, train
from lookalike.training.projection import fit_projection, shrink
from lookalike.training.quantize import quantize


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


def test_a_projection_keeps_the_directions_that_carry_the_vectors() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    vectors = (rng.standard_normal((200, 3)) * [5, 3, 2]) @ basis[:, :3].T
    vectors += 0.01 * rng.standard_normal(vectors.shape)
    proj, kept = fit_projection(vectors, 3)
    assert proj.shape == (8, 3) and kept > 0.99
    np.testing.assert_allclose(proj.T @ proj, np.eye(3), atol=1e-5)
    # its columns span the three directions the vectors lie in
    np.testing.assert_allclose(np.linalg.norm(basis[:, :3].T @ proj, axis=0), 1, atol=1e-3)
    for wrong in (0, 8):
        with pytest.raises(ValueError, match="--dim"):
            fit_projection(vectors, wrong)
    with pytest.raises(ValueError, match="at least"):
        fit_projection(vectors[:2], 3)


def test_a_shrunk_model_searches_the_projected_vectors_of_its_source(tmp_path: Path) -> None:
    ds = _dataset()
    cfg = TrainConfig(steps=1, head_steps=0, batch=4, n_aug_photo=1, n_aug_catalogue=1, side=64)
    train(ds, tmp_path / "m", cfg, log=lambda *a: None)
    shrink(tmp_path / "m", ds, tmp_path / "small", 4, log=lambda *a: None)
    meta = json.loads((tmp_path / "small.json").read_text())
    assert meta["projection"]["dim"] == 4 and meta["projection"]["fitted_on"] == 3 + 9
    source, small = ShelfModel("m", "test", tmp_path / "m"), ShelfModel("s", "test", tmp_path / "small")
    assert (source.dim, small.dim) == (1280, 4)
    proj = np.load(tmp_path / "small.npz")["proj"].astype(np.float32)
    expected = source.embed_query(ds.photos[:4]) @ proj
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(small.embed_query(ds.photos[:4]), expected, atol=1e-4)
    assert np.stack(small.embed_catalogue(ds.catalogue)).shape == (3, 1, 4)


def test_the_shipped_640_model_is_the_default_model_projected() -> None:
    small, default = MODELS["lite0-shelf-640"].artifact, MODELS[DEFAULT_MODEL].artifact
    arrays, base = np.load(small), np.load(default)
    assert arrays["proj"].shape == (1280, 640)
    assert all(np.array_equal(arrays[k], base[k]) for k in base.files)  # the same network
    meta = json.loads(small.with_suffix(".json").read_text())
    assert meta["projection"] == {**meta["projection"], "from": DEFAULT_MODEL, "dim": 640}
    assert model_id("lite0-shelf-640") != model_id(DEFAULT_MODEL)


def test_a_quantized_model_runs_its_source_network_in_int8(tmp_path: Path) -> None:
    ds = _dataset(4, 8)
    cfg = TrainConfig(steps=1, head_steps=0, batch=4, n_aug_photo=1, n_aug_catalogue=1, side=64)
    train(ds, tmp_path / "m", cfg, log=lambda *a: None)
    with pytest.raises(ValueError, match="too few"):
        quantize(tmp_path / "m", Dataset(ds.catalogue, ds.catalogue_labels, [], []))
    network = quantize(tmp_path / "m", ds, log=lambda *a: None)
    meta = json.loads((tmp_path / "m.int8.json").read_text())
    assert network == tmp_path / "m.int8.tflite"
    assert meta["calibration"] == {"catalogue_images": 4, "photos": 32}
    source = ShelfModel("m", "test", tmp_path / "m")
    int8 = ShelfModel("m", "test", tmp_path / "m", runtime=INT8, int8=network)
    cosine = np.sum(int8.embed_query(ds.photos) * source.embed_query(ds.photos), axis=1)
    assert cosine.min() > 0.9 and cosine.max() < 0.9999, cosine
