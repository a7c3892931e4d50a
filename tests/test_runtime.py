"""The model is served by LiteRT: the same vectors as the Keras reference (so one model id
covers both), a conversion that does not reproduce them is refused, and it is made once.
The int8 network gives close but other vectors, under its own model id, and only for the
network it was quantized from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import ConfigError, Settings, get_settings
from lookalike.imaging import decode
from lookalike.model import load_model, model_id, runtime
from lookalike.model.base import EmbeddingModel
from lookalike.model.registry import ARTIFACTS, INT8
from lookalike.model.shelf import ShelfModel


@pytest.fixture(scope="module")
def keras_model() -> EmbeddingModel:
    return load_model(runtime="keras")


@pytest.fixture(scope="module")
def photos(sample: Path) -> list[np.ndarray]:
    return [decode(p.read_bytes()) for p in sorted((sample / "queries").glob("*.jpg"))]


def test_litert_gives_the_keras_vectors_under_the_same_model_id(
        keras_model: EmbeddingModel, photos: list[np.ndarray]) -> None:
    served = load_model(runtime="litert")
    assert served.runtime == "litert" and served.model_id == keras_model.model_id
    for embed in ("embed_query", "embed_catalogue"):
        a = np.vstack(list(getattr(served, embed)(photos)))
        b = np.vstack(list(getattr(keras_model, embed)(photos)))
        assert a.shape == b.shape and a.dtype == np.float32
        assert np.min(np.sum(a * b, axis=1)) > 0.9999, embed
    # A lone photo runs on one interpreter with every thread, several are dealt to one
    # single-thread interpreter per core: both give the same vectors.
    lone = served.embed_query(photos[:1])[0]
    assert float(lone @ keras_model.embed_query(photos[:1])[0]) > 0.9999
    assert float(lone @ served.embed_query(photos)[0]) > 0.9999
    # Different photos stay different: the check above is not met by a constant output.
    vectors = served.embed_query(photos)
    assert np.max(vectors[0] @ vectors[1:].T) < 0.99


def test_a_conversion_that_changes_the_vectors_is_refused(
        keras_model: EmbeddingModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No conversion can reach a cosine above 1: this stands for one that drifted.
    monkeypatch.setattr(runtime, "_MIN_PROBE_COSINE", 1.001)
    with pytest.raises(RuntimeError, match="LOOKALIKE_RUNTIME=keras"):
        runtime.converted(keras_model.network, "refused@1", keras_model.side, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir()), "a refused conversion must leave nothing to load later"


def test_the_conversion_is_made_once_and_reused(keras_model: EmbeddingModel, tmp_path: Path,
                                                photos: list[np.ndarray]) -> None:
    first = runtime.converted(keras_model.network, "cached@1", keras_model.side, cache_dir=tmp_path)
    (made,) = tmp_path.glob("*.tflite")
    stamp = made.stat().st_mtime_ns
    again = runtime.converted(keras_model.network, "cached@1", keras_model.side, cache_dir=tmp_path)
    assert made.stat().st_mtime_ns == stamp and list(tmp_path.glob("*.tflite")) == [made]
    x = np.stack([keras_model.prepare(p) for p in photos[:2]]).astype(np.float32)
    assert np.allclose(first(x), again(x)) and first(x).shape == (2, keras_model.network(x).shape[1])


def test_the_runtime_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().runtime == "litert"
    monkeypatch.setenv("LOOKALIKE_RUNTIME", "tensorrt")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="LOOKALIKE_RUNTIME"):
            get_settings()
    finally:
        monkeypatch.delenv("LOOKALIKE_RUNTIME")
        get_settings.cache_clear()
    with pytest.raises(ValueError, match="unknown runtime"):
        load_model("efficientnet-lite0", runtime="tensorrt")


def test_int8_gives_close_vectors_under_its_own_model_id(
        keras_model: EmbeddingModel, photos: list[np.ndarray]) -> None:
    int8 = load_model(runtime=INT8)
    assert int8.model_id == model_id(int8.name, INT8) != keras_model.model_id
    assert int8.model_id.startswith(keras_model.model_id + ".int8-")
    for embed in ("embed_query", "embed_catalogue"):
        a = np.vstack(list(getattr(int8, embed)(photos)))
        b = np.vstack(list(getattr(keras_model, embed)(photos)))
        cosine = np.sum(a * b, axis=1)
        assert a.shape == b.shape and a.dtype == np.float32
        # Close (quantisation error), but not the float vectors: the reason for the own id.
        assert cosine.min() > 0.9 and cosine.mean() > 0.95 and cosine.max() < 0.9999, (embed, cosine)
    # One interpreter with every thread and one per core give the same integer arithmetic.
    lone = int8.embed_query(photos[:1])[0]
    assert float(lone @ int8.embed_query(photos)[0]) > 0.9999
    vectors = int8.embed_query(photos)
    assert np.max(vectors[0] @ vectors[1:].T) < 0.99


def test_an_int8_network_runs_only_the_network_it_was_quantized_from(tmp_path: Path) -> None:
    for name in ("lite0-shelf.npz", "lite0-shelf.json", "lite0-shelf.int8.tflite"):
        (tmp_path / name).write_bytes((ARTIFACTS / name).read_bytes())
    meta = json.loads((ARTIFACTS / "lite0-shelf.int8.json").read_text())
    (tmp_path / "lite0-shelf.int8.json").write_text(json.dumps({**meta, "network": "retrained"}))
    network = tmp_path / "lite0-shelf.int8.tflite"
    with pytest.raises(ValueError, match="quantized from another network.*make model"):
        ShelfModel("lite0-shelf", "x", tmp_path / "lite0-shelf", runtime=INT8, int8=network)
    (tmp_path / "lite0-shelf.int8.json").unlink()
    with pytest.raises(FileNotFoundError, match="metadata is unreadable"):
        ShelfModel("lite0-shelf", "x", tmp_path / "lite0-shelf", runtime=INT8, int8=network)
    # The 640-d model keeps lite0-shelf's network: the shipped int8 network is its own too.
    assert load_model("lite0-shelf-640", runtime=INT8).embed_query(
        [np.full((64, 64, 3), 128, np.uint8)]).shape == (1, 640)


def test_a_model_without_an_int8_network_says_which_runtime_runs_it() -> None:
    for call in (lambda: model_id("efficientnet-lite0", INT8),
                 lambda: load_model("efficientnet-lite0", runtime=INT8)):
        with pytest.raises(ConfigError, match="has no int8 network; LOOKALIKE_RUNTIME=litert"):
            call()
    assert Settings(runtime=INT8).runtime == INT8
