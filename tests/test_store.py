"""The embedded Qdrant store: idempotent ids, grouping by product, filters, model lock."""

from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.store import CatalogueImage, CatalogueStore, ModelMismatch


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, qdrant_url="")


@pytest.fixture
def store(settings: Settings):
    s = CatalogueStore.open(settings, "model-a@1", 4)
    images = [
        CatalogueImage("shoe", "front", "footwear", "Shoe", ("red", "sale")),
        CatalogueImage("shoe", "side", "footwear", "Shoe", ("red",)),
        CatalogueImage("hat", "front", "headwear", "Hat", ("blue",)),
        CatalogueImage("sock", "front", "footwear", "Sock", ()),
    ]
    vectors = np.array([[1, 0, 0, 0], [0.8, 0.6, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], np.float32)
    s.upsert(images, vectors)
    yield s
    s.close()


QUERY = np.array([0.95, 0.2, 0.1, 0], np.float32)


def test_one_match_per_product_ranked_by_cosine(store: CatalogueStore) -> None:
    matches = store.search(QUERY, 10)
    assert [m.product_id for m in matches] == ["shoe", "hat", "sock"]
    assert matches[0].image_id == "front"  # the product's best image
    assert matches[0].score == pytest.approx(0.95 / np.linalg.norm(QUERY), abs=1e-5)
    assert matches[0].labels == ["red", "sale"] and matches[0].category == "footwear"


def test_reingest_overwrites(store: CatalogueStore) -> None:
    before = store.count()
    store.upsert([CatalogueImage("shoe", "front", "footwear", "New shoe")],
                 np.array([[1, 0, 0, 0]], np.float32))
    assert store.count() == before == 4
    assert store.search(QUERY, 1)[0].title == "New shoe"


def test_filters(store: CatalogueStore) -> None:
    assert [m.product_id for m in store.search(QUERY, 10, categories=["headwear"])] == ["hat"]
    assert [m.product_id for m in store.search(QUERY, 10, labels=["red", "sale"])] == ["shoe"]
    assert store.search(QUERY, 10, labels=["none"]) == []
    assert [m.product_id for m in store.search(QUERY, 10, min_score=0.2)] == ["shoe", "hat"]


def test_delete_and_stats(store: CatalogueStore) -> None:
    assert store.count_products() == 3
    assert store.delete_products(["shoe"]) == 2
    assert store.count() == 2 and store.count_products() == 2


def test_collection_of_another_model_is_refused(settings: Settings, store: CatalogueStore) -> None:
    store.close()
    other = CatalogueStore.open(settings, "model-b@2", 4)
    with pytest.raises(ModelMismatch, match="built by model 'model-a@1'.*runs 'model-b@2'"):
        other.search(QUERY, 5)
    with pytest.raises(ModelMismatch, match="reindex"):
        other.upsert([CatalogueImage("x", "y")], np.ones((1, 4), np.float32))
    other.close()


def test_a_new_model_goes_live_by_moving_the_alias(settings: Settings,
                                                   store: CatalogueStore) -> None:
    store.close()
    new = CatalogueStore.open(settings, "model-b@2", 3)
    assert new.live_model() == "model-a@1"
    new.create()  # what `lookalike reindex` fills before promoting
    new.upsert([CatalogueImage("hat", "front")], np.array([[0, 1, 0]], np.float32))
    assert new.live_model() == "model-a@1"
    new.promote()
    assert new.live_model() == "model-b@2" and new.live_collection() == new.collection
    # The old model's collection is still there for services not yet restarted.
    assert new.client.collection_exists(store.collection)
    assert [m.product_id for m in new.search(np.array([0, 1, 0], np.float32), 5)] == ["hat"]
    new.close()
