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

    def embed_prepared(self, batch: list[np.ndarray]) -> np.ndarray:
        self.sizes.append(len(batch))
        if self.fail.is_set():
            raise RuntimeError("model failed")
        return self.embedder.embed_prepared(batch)


def test_the_crops_of_a_photo_go_through_one_pass(embedder: EmbeddingModel,
                                                 photos: list[np.ndarray]) -> None:
    from lookalike.model.preprocess import query_crops

    photo = photos[0]
    views = query_crops(photo, 5)
    h, w = photo.shape[:2]
    assert len(views) == 6 and views[0] is photo and len(query_crops(photo, 0)) == 1
    assert views[1].shape[:2] == (round(0.6 * h), round(0.6 * w))
    assert np.array_equal(views[4], photo[h - round(0.6 * h):, w - round(0.6 * w):])  # bottom right
    spy = Spy(embedder)
    vectors = QueryBatcher(spy, max_batch=8).embed_queries(views)
    assert spy.sizes == [6] and vectors.shape == (6, embedder.dim)
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
