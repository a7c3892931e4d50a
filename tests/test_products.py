"""Product-level management and product sets, through a real service: GetProduct,
ListProducts, UpdateProduct, DeleteImages, sets isolated in search, stats and delete, filters
that ignore case, and the `lookalike products` / `ingest --sync` walkthrough."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from lookalike.client import AsyncClient, Client
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.v1 import lookalike_pb2 as pb


@pytest.fixture(scope="module")
def catalogue(client: Client, sample: Path) -> bulk.IngestOutcome:
    outcome = bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))
    assert outcome.failures == []
    return outcome


def image(sample: Path, product_id: str) -> bytes:
    return (sample / "catalogue" / f"{product_id}.png").read_bytes()


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_get_and_list_products(client: Client, catalogue) -> None:
    cup = client.product("coffee-cup")
    assert (cup.category, cup.title, cup.image_count) == ("kitchen", "Espresso cup and saucer", 1)
    assert [i.image_id for i in cup.images] == ["front"]
    first = client.list_products(page_size=5)
    assert first.total == 14 and len(first.products) == 5 and first.next_page_token
    every = [p.product_id for p in client.products(page_size=5)]
    assert every == sorted(every) and len(every) == 14
    posters = [p.product_id for p in client.products(categories=["POSTERS"])]  # any case
    assert posters == ["astronaut-print", "camera-print", "cat-poster"]
    assert code_of(lambda: client.product("no-such-product")) == grpc.StatusCode.NOT_FOUND
    bad_token = grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: client.list_products(page_token="%%%")) == bad_token
    assert code_of(lambda: client.list_products(page_size=5000)) == bad_token


def test_update_changes_every_image_and_search_sees_it(client: Client, sample: Path,
                                                       catalogue) -> None:
    lamp = image(sample, "moon-lamp")
    job = client.wait_job(client.submit([pb.IngestItem(product_id="moon-lamp", image_id="side",
                                                       image=lamp, category="home",
                                                       title="Moon surface lamp")]))
    assert job.done == 1
    updated = client.update_product("moon-lamp", title="Lunar lamp", labels=["new", "Sale"])
    assert (updated.title, list(updated.labels), updated.category) == (
        "Lunar lamp", ["new", "Sale"], "home")
    assert updated.image_count == 2
    best = client.search(lamp, top_k=1, labels=["sale"]).matches  # labels ignore case too
    assert [(m.product_id, m.title) for m in best] == [("moon-lamp", "Lunar lamp")]
    with pytest.raises(ValueError, match="nothing to update"):
        client.update_product("moon-lamp")
    request = pb.UpdateProductRequest(product=pb.Product(product_id="moon-lamp"))
    request.update_mask.paths.append("image_id")
    with pytest.raises(grpc.RpcError) as err:
        client.stub.UpdateProduct(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "image_id" in err.value.details()
    assert code_of(lambda: client.update_product("ghost", title="x")) == grpc.StatusCode.NOT_FOUND
    assert client.delete_images("moon-lamp", ["side"]) == 1
    assert client.product("moon-lamp").image_count == 1
    assert client.stats().points == 14


def test_product_sets_do_not_see_each_other(client: Client, sample: Path, catalogue) -> None:
    cup = image(sample, "coffee-cup")
    items = [pb.IngestItem(product_id="mug", image_id="a", image=cup, category="Kitchen",
                           title="Store B mug", product_set="store-b"),
             pb.IngestItem(product_id="coffee-cup", image_id="a", image=cup, title="B's cup",
                           product_set="store-b")]
    assert client.wait_job(client.submit(items)).done == 2
    in_b = client.search(cup, top_k=5, product_set="store-b").matches
    assert {m.product_id for m in in_b} == {"mug", "coffee-cup"}
    assert all(m.title != "Espresso cup and saucer" for m in in_b)
    assert all(m.product_id != "mug" for m in client.search(cup, top_k=20).matches)
    b = client.stats("store-b")
    assert (b.points, b.products, b.product_set) == (2, 2, "store-b")
    assert {(c.category, c.products) for c in b.categories} >= {("Kitchen", 1)}
    assert client.stats().products == 14
    assert client.delete(["coffee-cup"], "store-b") == 1
    assert client.product("coffee-cup").title == "Espresso cup and saucer"  # default set kept
    assert [p.product_id for p in client.products("store-b")] == ["mug"]
    assert client.search(cup, top_k=5, product_set="store-c").matches == []
    bad = pb.IngestItem(product_id="x", image=cup, product_set="../etc")
    job = client.wait_job(client.submit([bad]))
    assert job.failed == 1 and "not a set name" in job.failures[0].reason
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: client.search(cup, product_set="a b")) == invalid


def test_async_client_offers_every_call_of_the_sync_client(service: str, catalogue) -> None:
    import asyncio

    public = {name for name in dir(Client) if not name.startswith("_")} - {"close"}
    assert public <= {name for name in dir(AsyncClient) if not name.startswith("_")}

    async def main() -> tuple[int, int, str, bool]:
        async with AsyncClient(service) as c:
            listed = [p.product_id async for p in c.products(page_size=4)]
            product = await c.product("coin-set")
            return len(listed), (await c.stats()).products, product.title, await c.healthy()

    assert asyncio.run(main()) == (14, 14, "Greek coin set", True)
