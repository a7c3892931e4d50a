"""The model is served by LiteRT: the same vectors as the Keras reference (so one model id
covers both), a conversion that does not reproduce them is refused, and it is made once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.config import ConfigError, Settings, get_settings
from lookalike.imaging import decode
from lookalike.model import load_model, runtime
from lookalike.model.base import EmbeddingModel


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
        runtime.LiteRTForward(keras_model.network, "refused@1", keras_model.side, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir()), "a refused conversion must leave nothing to load later"


def test_the_conversion_is_made_once_and_reused(keras_model: EmbeddingModel, tmp_path: Path,
                                                photos: list[np.ndarray]) -> None:
    first = runtime.LiteRTForward(keras_model.network, "cached@1", keras_model.side, cache_dir=tmp_path)
    (made,) = tmp_path.glob("*.tflite")
    stamp = made.stat().st_mtime_ns
    again = runtime.LiteRTForward(keras_model.network, "cached@1", keras_model.side, cache_dir=tmp_path)
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
