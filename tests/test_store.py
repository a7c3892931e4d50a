"""The store contract, on every backend: the embedded edge engine (the default), the Qdrant
server path (lookalike/server_store.py) through qdrant-client's local mode (same client API,
same code) and through a real Qdrant server in a container when a Docker engine answers.

Idempotent ids, grouping by product, filters, min_score, delete, counts, model lock,
alias promotion and reindex, reopening, outages."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.store import CatalogueImage, CatalogueStore, ModelMismatch, local_client, open_client
from lookalike.store.edge import EdgeBackend

BACKENDS = ["edge", "qdrant", "qdrant-container"]
QDRANT_IMAGE = "qdrant/qdrant:v1.20.0"  # docker-compose.yml's


@pytest.fixture(scope="session")
def qdrant_server() -> Iterator[str]:
    """A real Qdrant server (the image compose runs), when a Docker engine answers."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - no engine, no socket, no permission: all mean skip
        pytest.skip(f"no Docker engine answers ({type(exc).__name__}): the Qdrant server "
                    "container case runs where one does; qdrant-client's local mode ran the "
                    "same cases through the same server code path")
    from testcontainers.qdrant import QdrantContainer

    with QdrantContainer(QDRANT_IMAGE) as container:
        yield f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Settings:
    if backend != "qdrant-container":
        return Settings(data_dir=tmp_path, qdrant_url="")
    # A collection name of its own per test: the container is shared by the session.
    return Settings(data_dir=tmp_path, qdrant_url=request.getfixturevalue("qdrant_server"),
                    collection=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def connect(settings: Settings, backend: str):
    """A new client of the same store each call (a restart of the process)."""
    def connect():
        if backend == "qdrant":
            return local_client(Path(settings.data_dir) / "qdrant")
        return open_client(settings)
    return connect


@pytest.fixture
def store(settings: Settings, connect):
    s = CatalogueStore.open(settings, "model-a@1", 4, connect())
    images = [
        CatalogueImage("shoe", "front", "footwear", "Shoe", ("red", "sale")),
        CatalogueImage("shoe", "side", "footwear", "Shoe", ("red", "sale")),
        CatalogueImage("hat", "front", "headwear", "Hat", ("blue",)),
        CatalogueImage("sock", "front", "footwear", "Sock", ()),
    ]
    vectors = np.array([[1, 0, 0, 0], [0.8, 0.6, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], np.float32)
    s.upsert(images, vectors)
    yield s
    s.close()


QUERY = np.array([0.95, 0.2, 0.1, 0], np.float32)


def test_the_default_embedded_store_is_the_edge_engine(tmp_path: Path) -> None:
    client = open_client(Settings(data_dir=tmp_path, qdrant_url=""))
    assert isinstance(client, EdgeBackend)
    client.close()


def test_a_server_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    """What the worker retries and Search answers UNAVAILABLE for (lookalike.interceptors)."""
    from lookalike.store.server import StoreUnavailable

    down = open_client(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:1"))
    store = CatalogueStore(down, "lookalike", "model-a@1", 4)
    for call in (store.live_collection, lambda: store.search(QUERY, 3), store.count,
                 lambda: store.upsert([CatalogueImage("a", "b")], np.ones((1, 4), np.float32))):
        with pytest.raises(StoreUnavailable, match="vector store unavailable"):
            call()


def test_server_collections_are_laid_out_for_scale() -> None:
    """int8 quantisation in RAM with rescoring, originals and payload on disk, HNSW from the
    settings (the local mode accepts and ignores them; a server applies them)."""
    from qdrant_client import models

    from lookalike.store import server_options

    options = server_options(Settings(hnsw_m=32, hnsw_ef_construct=200, hnsw_ef=96))
    config = options.collection_config()
    scalar = config["quantization_config"].scalar
    assert (scalar.type, scalar.always_ram) == (models.ScalarType.INT8, True)
    assert config["on_disk_payload"] is True
    assert (config["hnsw_config"].m, config["hnsw_config"].ef_construct) == (32, 200)
    params = options.search_params()
    assert params.hnsw_ef == 96 and params.quantization.rescore is True
    assert params.quantization.oversampling == 2.0
    none = server_options(Settings(server_quantization="none")).collection_config()
    assert none["quantization_config"] is None


def test_one_match_per_product_ranked_by_cosine(store: CatalogueStore) -> None:
    matches = store.search(QUERY, 10)
    assert [m.product_id for m in matches] == ["shoe", "hat", "sock"]
    assert matches[0].image_id == "front"  # the product's best image
    # turbo8 storage (the embedded default) keeps scores to about 1e-3.
    assert matches[0].score == pytest.approx(0.95 / np.linalg.norm(QUERY), abs=5e-3)
    assert matches[0].labels == ["red", "sale"] and matches[0].category == "footwear"
    assert [m.product_id for m in store.search(QUERY, 2)] == ["shoe", "hat"]


def test_several_query_vectors_score_each_product_by_its_best(store: CatalogueStore) -> None:
    """The photo and its crops: a product counts with the best of its images over all of them."""
    hat_like, sock_like = np.array([0.1, 1, 0, 0], np.float32), np.array([0, 0, 1, 0.2], np.float32)
    views = np.stack([v / np.linalg.norm(v) for v in (hat_like, sock_like)])
    matches = store.search_views(views, 3)
    assert [m.product_id for m in matches] == ["hat", "sock", "shoe"]
    assert matches[1].score == pytest.approx(1 / np.linalg.norm(sock_like), abs=5e-3)
    assert [m.product_id for m in store.search_views(views[:1], 2)] == \
        [m.product_id for m in store.search(views[0], 2)]


def test_grouping_goes_past_a_product_with_many_images(store: CatalogueStore) -> None:
    """One product's images fill the over-fetched candidates: the others still come back."""
    many = [CatalogueImage("boot", f"img{i}", "footwear") for i in range(60)]
    store.upsert(many, np.tile(np.array([[1, 0.05, 0, 0]], np.float32), (60, 1)))
    matches = store.search(QUERY, 3)
    assert [m.product_id for m in matches] == ["boot", "shoe", "hat"]
    assert len({m.product_id for m in store.search(QUERY, 10)}) == 4


def test_reingest_overwrites(store: CatalogueStore) -> None:
    before = store.count()
    store.upsert([CatalogueImage("shoe", "front", "footwear", "New shoe")],
                 np.array([[1, 0, 0, 0]], np.float32))
    assert store.count() == before == 4
    assert store.search(QUERY, 1)[0].title == "New shoe"


def test_filters(store: CatalogueStore) -> None:
    assert [m.product_id for m in store.search(QUERY, 10, categories=["headwear"])] == ["hat"]
    assert [m.product_id for m in store.search(QUERY, 10, categories=["headwear", "footwear"])
            ] == ["shoe", "hat", "sock"]
    assert [m.product_id for m in store.search(QUERY, 10, labels=["red", "sale"])] == ["shoe"]
    assert store.search(QUERY, 10, labels=["none"]) == []
    assert [m.product_id for m in store.search(QUERY, 10, min_score=0.2)] == ["shoe", "hat"]


def test_delete_and_stats(store: CatalogueStore) -> None:
    assert store.count_products() == 3
    assert store.delete_products(["shoe"]) == 2
    assert store.delete_products(["nothing"]) == 0
    assert store.count() == 2 and store.count_products() == 2
    assert [m.product_id for m in store.search(QUERY, 10)] == ["hat", "sock"]


def test_stats_count_products_right_after_a_delete(store: CatalogueStore) -> None:
    """Products with several images, deleted after more were written: the engine's product
    facet keeps the deleted value (count 0) until it rebuilds; it must not be counted."""
    more = [CatalogueImage(p, i, "c") for p in ("a", "b", "c") for i in ("1", "2")]
    store.upsert(more, np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 2]])
    assert store.stats() == (10, 6, {"c": 3, "footwear": 2, "headwear": 1})
    assert store.delete_products(["b", "hat"]) == 3
    assert store.stats() == (7, 4, {"c": 2, "footwear": 2})


def test_product_sets_are_isolated(store: CatalogueStore) -> None:
    """The same product id in another set is another product: searched, counted, listed,
    updated and deleted apart; the default set ("") is untouched by all of it."""
    other = [CatalogueImage("shoe", "front", "boots", "Boot", ("x",), product_set="store-2"),
             CatalogueImage("boot", "front", "boots", "Boot", (), product_set="store-2")]
    store.upsert(other, np.array([QUERY, [0, 1, 0, 0]], np.float32))
    assert [m.product_id for m in store.search(QUERY, 10, product_set="store-2")] == ["shoe", "boot"]
    assert [m.product_id for m in store.search(QUERY, 10)] == ["shoe", "hat", "sock"]
    assert store.search(QUERY, 10)[0].title == "Shoe"
    assert store.stats("store-2") == (2, 2, {"boots": 2})
    assert store.stats()[:2] == (4, 3)
    assert store.delete_products(["shoe"], "store-2") == 1
    assert store.count("store-2") == 1 and store.count("") == 4 and store.count() == 5
    assert store.search(QUERY, 10, product_set="nobody") == []


def test_a_product_has_one_set_of_fields(store: CatalogueStore) -> None:
    """A new image with new product fields rewrites them on the product's older images;
    set_product changes them everywhere without touching the vectors."""
    store.upsert([CatalogueImage("shoe", "back", "shoes", "Runner", ("new",), description="d")],
                 np.array([[0, 0, 0, 1]], np.float32))
    shoe = store.products("", ["shoe"])[0]
    assert (shoe.category, shoe.title, shoe.labels, shoe.description) == (
        "shoes", "Runner", ["new"], "d")
    assert [image_id for image_id, _ in shoe.images] == ["back", "front", "side"]
    assert {(m.product_id, m.title) for m in store.search(QUERY, 10)} >= {("shoe", "Runner")}
    store.set_product("", "shoe", {"title": "Trail runner", "labels": ["sale"]})
    shoe = store.products("", ["shoe"])[0]
    assert (shoe.category, shoe.title, shoe.labels) == ("shoes", "Trail runner", ["sale"])
    assert store.search(QUERY, 1, labels=["sale"])[0].score > 0.9  # same vector, new labels
    assert store.product_ids("", ["shoes"]) == {"shoe": 3}
    assert store.vocabulary("", "category") == ["footwear", "headwear", "shoes"]
    assert store.delete_images("shoe", ["back", "nothing"]) == 1
    assert [i for i, _ in store.products("", ["shoe"])[0].images] == ["front", "side"]


def test_a_collection_from_before_product_sets_gets_the_tenant_index(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, qdrant_url="")
    old = EdgeBackend(tmp_path / "edge")
    old.create_collection("lookalike--m-1", 4, "m@1", ("product_id", "category", "labels"))
    old.set_alias("lookalike", "lookalike--m-1")
    old.close()
    store = CatalogueStore.open(settings, "m@1", 4)
    with store.client.shard(store.collection) as shard:
        index = shard.info().payload_schema["product_set"]
    assert index.params.is_tenant
    store.close()


def test_scroll_gives_every_payload(store: CatalogueStore) -> None:
    keys = {(p["product_id"], p["image_id"]) for p in store.scroll(batch=3)}
    assert keys == {("shoe", "front"), ("shoe", "side"), ("hat", "front"), ("sock", "front")}


def test_reopen_keeps_everything(settings: Settings, connect, store: CatalogueStore) -> None:
    store.close()
    again = CatalogueStore.open(settings, "model-a@1", 4, connect())
    assert again.count() == 4 and again.live_model() == "model-a@1"
    assert [m.product_id for m in again.search(QUERY, 10)] == ["shoe", "hat", "sock"]
    again.close()


def test_collection_of_another_model_is_refused(settings: Settings, connect,
                                                store: CatalogueStore) -> None:
    store.close()
    other = CatalogueStore.open(settings, "model-b@2", 4, connect())
    with pytest.raises(ModelMismatch, match="built by model 'model-a@1'.*runs 'model-b@2'"):
        other.search(QUERY, 5)
    with pytest.raises(ModelMismatch, match="reindex"):
        other.upsert([CatalogueImage("x", "y")], np.ones((1, 4), np.float32))
    other.close()


def test_a_new_model_goes_live_by_moving_the_alias(settings: Settings, connect,
                                                   store: CatalogueStore) -> None:
    store.close()
    new = CatalogueStore.open(settings, "model-b@2", 3, connect())
    assert new.live_model() == "model-a@1"
    new.create()  # what `lookalike reindex` fills before promoting
    new.create()  # idempotent
    new.upsert([CatalogueImage("hat", "front")], np.array([[0, 1, 0]], np.float32))
    assert new.live_model() == "model-a@1"
    new.promote()
    assert new.live_model() == "model-b@2" and new.live_collection() == new.collection
    # The old model's collection is still there for services not yet restarted.
    assert new.client.collection_exists(store.collection)
    old = CatalogueStore(new.client, settings.collection, "model-a@1", 4)
    assert old.count() == 4
    assert [m.product_id for m in new.search(np.array([0, 1, 0], np.float32), 5)] == ["hat"]
    new.close()
    again = CatalogueStore.open(settings, "model-b@2", 3, connect())
    assert again.live_model() == "model-b@2" and again.count() == 1  # the alias persisted
    again.close()


def test_threads_search_while_another_writes(store: CatalogueStore) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(20):
                store.upsert([CatalogueImage(f"p{i}", "front", "misc")],
                             np.array([[0, 0, 0.5, 1]], np.float32))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(50):
                assert store.search(QUERY, 3)[0].product_id == "shoe"
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.count() == 24


CRASH_AFTER_WRITES = """
import os, signal, sys
import numpy as np
from lookalike.config import Settings
from lookalike.store import CatalogueImage, CatalogueStore
store = CatalogueStore.open(Settings(data_dir=sys.argv[1], qdrant_url=""), "model-a@1", 4)
for i in range(50):
    store.upsert([CatalogueImage(f"p{i}", "front", "misc")], np.eye(4, dtype=np.float32)[[i % 4]])
store.delete_products(["p0", "p1"])
print("written", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit: a crash right after the writes
"""


def test_a_write_that_returned_survives_a_kill(settings: Settings) -> None:
    """The embedded store has no write-ahead log: each update is flushed before it returns."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", CRASH_AFTER_WRITES, str(settings.data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "written" in proc.stdout, proc.stderr
    store = CatalogueStore.open(settings, "model-a@1", 4)
    assert store.count() == 48 and store.count_products() == 48
    assert store.search(np.eye(4, dtype=np.float32)[2], 1)[0].score > 0.99  # vectors intact
    store.close()


def test_stats_are_cached_for_a_bounded_time(store: CatalogueStore) -> None:
    """Counting products is a pass over the catalogue: GetStats counts at most every
    stats_cache_s; a write through the same store recounts at once."""
    import time

    store.stats_cache_s = 1.0
    assert store.stats()[:2] == (4, 3)
    other = CatalogueStore(store.client, store.catalogue, store.model_id, store.dim)  # a worker
    other.upsert([CatalogueImage("cap", "front", "headwear")], np.array([[0, 1, 1, 0]], np.float32))
    assert store.stats()[:2] == (4, 3)  # within the bound: the cached counts
    time.sleep(1.1)
    assert store.stats()[:2] == (5, 4)
    store.delete_products(["cap", "shoe"])
    assert store.stats()[:2] == (2, 2)  # this store's own write: counted again at once


def test_int8_and_search_threads_of_the_embedded_store_are_settings(tmp_path: Path) -> None:
    from lookalike.store import edge_options

    options = edge_options(Settings(data_dir=tmp_path, edge_int8=True, search_threads=2))
    assert options.int8 and options.search_threads == 2
    config = options.config(16)
    assert config.quantization_config is not None and config.max_search_threads == 2
    assert edge_options(Settings(data_dir=tmp_path)).config(16).quantization_config is None


def test_local_features_are_read_by_id_survive_a_restart_and_go_with_their_product(
        settings: Settings, connect) -> None:
    blob = "AQE" + "x" * 40_000  # stands for a packed feature set: only the shortlist reads it
    s = CatalogueStore.open(settings, "model-a@1", 4, connect())
    s.upsert([CatalogueImage("shoe", "front", features=blob), CatalogueImage("hat", "front")],
             np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32))
    matches = s.search(QUERY, 2)
    assert [m.product_id for m in matches] == ["shoe", "hat"]
    assert s.local_features(matches) == [blob, ""]
    assert all("features" not in p for p in s.scroll())  # listing the catalogue skips them
    s.close()

    s = CatalogueStore.open(settings, "model-a@1", 4, connect())  # a restart
    matches = s.search(QUERY, 2)
    assert s.local_features(matches) == [blob, ""]
    s.delete_products(["shoe"])
    assert s.local_features(matches) == ["", ""]
    s.close()


def test_a_match_s_stored_vector_is_read_by_id(store: CatalogueStore) -> None:
    """DetectCopy compares a region of the photo with the original's vector, read by point."""
    matches = store.search(QUERY, 2)
    vectors = store.vectors(matches)
    for match, vector in zip(matches, vectors):
        assert vector is not None and vector.shape == (4,)
        assert float(QUERY / np.linalg.norm(QUERY) @ vector) == pytest.approx(match.score, abs=5e-3)
    store.delete_products([matches[0].product_id])
    assert store.vectors(matches)[0] is None and store.vectors(matches)[1] is not None


# -- text search, fused search, recommend (the engine's BM25, RRF, recommend and MMR) --------
SHOP = [  # product, title, description, category, labels, vector (QUERY points at kettle)
    ("kettle", "Kettle", "Boils water fast", "kitchen", ("steel",), [1, 0, 0, 0]),
    ("mug", "Tea mug", "A large mug", "kitchen", (), [0.9, 0.43, 0, 0]),
    ("jug", "Jug", "", "kitchen", (), [0.7, 0.7, 0, 0]),
    ("vase", "Vase", "", "home", (), [0.5, 0.86, 0, 0]),
    ("tea", "Green tea", "Loose leaf green tea from Japan", "drinks", (), [0, 0, 1, 0]),
]


@pytest.fixture
def shop(settings: Settings, connect):
    s = CatalogueStore.open(settings, "model-a@1", 4, connect())
    s.upsert([CatalogueImage(p, "front", c, t, labels, description=d) for p, t, d, c, labels, _ in SHOP],
             np.array([v for *_, v in SHOP], np.float32))
    yield s
    s.close()


def test_text_search_finds_products_by_their_words_ranked_by_bm25(shop: CatalogueStore,
                                                                  backend: str) -> None:
    matches = shop.search_text("green tea", 10)
    assert [m.product_id for m in matches] == ["tea", "mug"]  # both words, then one
    assert matches[0].score > matches[1].score > 0 and matches[0].title == "Green tea"
    assert [m.product_id for m in shop.search_text("KETTLE", 10)] == ["kettle"]  # lowercased
    assert [m.product_id for m in shop.search_text("water", 10)] == ["kettle"]  # description
    assert [m.product_id for m in shop.search_text("drinks steel", 10)] == ["tea", "kettle"] or \
        [m.product_id for m in shop.search_text("drinks steel", 10)] == ["kettle", "tea"]
    assert shop.search_text("nothing", 10) == []
    if backend != "qdrant":  # English stems (the local mode's text index has none)
        assert [m.product_id for m in shop.search_text("kettles", 10)] == ["kettle"]


def test_text_search_respects_filters_and_product_sets(shop: CatalogueStore) -> None:
    assert [m.product_id for m in shop.search_text("tea", 10, categories=["kitchen"])] == ["mug"]
    assert [m.product_id for m in shop.search_text("kettle mug", 10, labels=["steel"])] == [
        "kettle"]
    shop.upsert([CatalogueImage("tea", "front", "drinks", "Black tea", product_set="store-2"),
                 CatalogueImage("tea", "back", "drinks", "Black tea", product_set="store-2")],
                np.array([[0, 0, 1, 0], [0, 0, 0.9, 0.1]], np.float32))
    assert [m.product_id for m in shop.search_text("black", 10)] == []
    assert [(m.product_id, m.title) for m in shop.search_text("tea", 10, product_set="store-2")
            ] == [("tea", "Black tea")]  # one match for its two images
    assert shop.search_text("tea", 10, product_set="nobody") == []


def test_text_search_goes_past_a_product_with_many_images(shop: CatalogueStore) -> None:
    shop.upsert([CatalogueImage("pot", f"img{i}", "kitchen", "Tea pot") for i in range(30)],
                np.tile(np.array([[0, 0, 0, 1]], np.float32), (30, 1)))
    assert {m.product_id for m in shop.search_text("tea pot", 3)} == {"pot", "tea", "mug"}


def test_fused_search_puts_the_product_matching_photo_and_words_first(shop: CatalogueStore) -> None:
    """Photo ranking kettle, mug, jug, vase, tea; words ("green tea") ranking tea, mug:
    mug is second in both and comes first by reciprocal rank fusion."""
    assert [m.product_id for m in shop.search(QUERY, 5)][:2] == ["kettle", "mug"]
    fused = shop.search_hybrid(QUERY[None], "green tea", 5)
    assert [m.product_id for m in fused] == ["mug", "tea", "kettle", "jug", "vase"]
    assert fused[0].score == pytest.approx(2 / 61, rel=1e-3)  # RRF 1/(60 + r), r counted from 0
    assert [m.product_id for m in shop.search_hybrid(QUERY[None], "green tea", 2)] == ["mug", "tea"]
    assert [m.product_id for m in shop.search_hybrid(QUERY[None], "green tea", 5,
                                                     categories=["kitchen"])][0] == "mug"


def test_recommend_excludes_the_inputs_and_pushes_negatives_down(store: CatalogueStore) -> None:
    more = [CatalogueImage("boot", "front", "footwear"), CatalogueImage("cap", "front", "headwear"),
            CatalogueImage("slipper", "front", "footwear")]
    store.upsert(more, np.array([[0.9, 0.1, 0.1, 0], [0.1, 1, 0, 0], [0.7, 0, 0.7, 0]], np.float32))
    liked = [m.product_id for m in store.recommend(["shoe"], top_k=10)]
    assert liked[0] == "boot" and "shoe" not in liked
    assert liked.index("cap") < liked.index("sock")
    disliked = [m.product_id for m in store.recommend(["shoe"], ["hat"], top_k=10)]
    assert "hat" not in disliked and disliked[0] == "boot"
    assert disliked.index("cap") > disliked.index("sock")  # like the negative: pushed down
    assert [m.product_id for m in store.recommend(["shoe"], top_k=10, categories=["headwear"])
            ] == ["cap", "hat"]
    with pytest.raises(LookupError, match="positive nothing, nobody"):
        store.recommend(["shoe", "nothing", "nobody"])


def test_recommend_with_diversity_spreads_the_results(store: CatalogueStore) -> None:
    twins = [CatalogueImage(p, "front", "footwear") for p in ("boot", "boot-2", "boot-3")]
    store.upsert(twins, np.array([[0.9, 0.1, 0.1, 0], [0.9, 0.11, 0.1, 0], [0.9, 0.1, 0.11, 0]],
                                 np.float32))
    plain = [m.product_id for m in store.recommend(["shoe"], top_k=3)]
    assert sorted(plain) == ["boot", "boot-2", "boot-3"]
    diverse = [m.product_id for m in store.recommend(["shoe"], top_k=3, diversity=0.9)]
    assert diverse[0] in plain and len(set(diverse) - set(plain)) == 2  # one twin, then others
    assert "shoe" not in diverse


def test_set_product_rewrites_the_text_from_the_whole_record(store: CatalogueStore) -> None:
    assert [m.product_id for m in store.search_text("hat", 10)] == ["hat"]
    store.set_product("", "hat", {"title": "Running cap"})
    assert [m.product_id for m in store.search_text("running", 10)] == ["hat"]
    assert store.search_text("hat", 10) == []
    # The fields not given keep their words: category and labels.
    assert [m.product_id for m in store.search_text("headwear blue", 10)] == ["hat"]


def test_a_collection_from_before_text_search_gets_the_text_index(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, qdrant_url="")
    old = EdgeBackend(tmp_path / "edge")
    old.create_collection("lookalike--m-1", 4, "m@1", ("product_set", "product_id"))
    old.set_alias("lookalike", "lookalike--m-1")
    old.close()
    store = CatalogueStore.open(settings, "m@1", 4)
    with store.client.shard(store.collection) as shard:
        assert "text" in shard.info().payload_schema
    store.close()
