"""Concurrent searches share forward passes (QueryBatcher): same vectors as one at a time,
batches form only when queries wait, and a failing batch fails its callers, not the batcher."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lookalike.imaging import decode
from lookalike.model import load_model
from lookalike.model.base import EmbeddingModel
from lookalike.model.batcher import QueryBatcher


@pytest.fixture(scope="module")
def embedder() -> EmbeddingModel:
    model = load_model()
    model.warmup()
    return model


@pytest.fixture(scope="module")
def photos(sample: Path) -> list[np.ndarray]:
    return [decode(p.read_bytes()) for p in sorted((sample / "queries").glob("*.jpg"))]


class Spy:
    """The real embedder, recording the size of every batch it is given."""

    def __init__(self, embedder: EmbeddingModel) -> None:
        self.embedder, self.side, self.sizes = embedder, embedder.side, []
        self.fail = threading.Event()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return self.embedder.prepare(image)

    def query_views(self, photo: np.ndarray) -> list[np.ndarray]:
        return self.embedder.query_views(photo)

    def embed_prepared(self, batch: list[np.ndarray]) -> np.ndarray:
        self.sizes.append(len(batch))
        if self.fail.is_set():
            raise RuntimeError("model failed")
        return self.embedder.embed_prepared(batch)


def test_a_photo_is_searched_by_its_middle_and_a_catalogue_image_whole(
        embedder: EmbeddingModel, photos: list[np.ndarray]) -> None:
    from lookalike.model.preprocess import centre_crop

    photo = photos[0]
    h, w = photo.shape[:2]
    (middle,) = embedder.query_views(photo)
    assert middle.shape[:2] == (round(0.8 * h), round(0.8 * w))
    assert np.array_equal(middle, photo[(h - middle.shape[0]) // 2:][:middle.shape[0],
                                        (w - middle.shape[1]) // 2:][:, :middle.shape[1]])
    assert centre_crop(photo, 1.0) is photo
    whole = embedder.embed_prepared([embedder.prepare(photo)])[0]
    np.testing.assert_allclose(embedder.embed_catalogue([photo])[0][0], whole, atol=1e-4)
    query = embedder.embed_query([photo])[0]
    np.testing.assert_allclose(query, embedder.embed_prepared([embedder.prepare(middle)])[0],
                               atol=1e-4)
    assert float(query @ whole) < 0.999  # the crop is what the network saw


def test_the_views_of_a_photo_go_through_one_pass(embedder: EmbeddingModel,
                                                  photos: list[np.ndarray]) -> None:
    photo = photos[0]
    views = embedder.query_views(photo, crops=5, whole=True)
    h, w = photo.shape[:2]
    assert len(views) == 7 and views[-1] is photo and len(embedder.query_views(photo)) == 1
    assert views[1].shape[:2] == (round(0.6 * h), round(0.6 * w))
    assert np.array_equal(views[4], photo[h - round(0.6 * h):, w - round(0.6 * w):])  # bottom right
    spy = Spy(embedder)
    vectors = QueryBatcher(spy, max_batch=8).embed_views(views)
    assert spy.sizes == [7] and vectors.shape == (7, embedder.dim)
    np.testing.assert_allclose(vectors[0], embedder.embed_query([photo])[0], atol=1e-4)


def test_batched_vectors_are_the_vectors_of_single_queries(embedder: EmbeddingModel,
                                                          photos: list[np.ndarray]) -> None:
    spy = Spy(embedder)
    batcher = QueryBatcher(spy, max_batch=8)
    alone = np.stack([embedder.embed_query([p])[0] for p in photos])
    with ThreadPoolExecutor(8) as pool:  # 8 searches in flight, 3 rounds
        together = list(pool.map(batcher.embed_query, photos * 3))
    np.testing.assert_allclose(np.stack(together), np.concatenate([alone] * 3), atol=1e-4)
    assert max(spy.sizes) > 1 and max(spy.sizes) <= 8, spy.sizes
    assert sum(spy.sizes) == 3 * len(photos)

    spy.sizes.clear()
    for p in photos[:3]:  # one at a time: nothing waits, nothing is batched
        batcher.embed_query(p)
    assert spy.sizes == [1, 1, 1]


def test_a_failing_batch_fails_its_callers_and_the_next_one_works(
        embedder: EmbeddingModel, photos: list[np.ndarray]) -> None:
    spy = Spy(embedder)
    batcher = QueryBatcher(spy, max_batch=8)
    spy.fail.set()
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.embed_query(photos[0])
    spy.fail.clear()
    vector = batcher.embed_query(photos[0])
    np.testing.assert_allclose(vector, embedder.embed_query([photos[0]])[0], atol=1e-4)
