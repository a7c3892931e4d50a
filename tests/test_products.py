"""Product-level management and product sets, through a real service: GetProduct,
ListProducts, UpdateProduct, DeleteImages, sets isolated in search, stats and delete, filters
that ignore case, and the `lookalike products` / `ingest --sync` walkthrough."""

from __future__ import annotations

import json
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


def write_csv(path: Path, sample: Path, rows: list[tuple[str, str, str]]) -> Path:
    """rows: (product_id, category, title), one image each, from the sample catalogue."""
    lines = ["image_uri,image_id,product_id,category,title"]
    lines += [f"{sample}/catalogue/{pid}.png,front,{pid},{category},{title}"
              for pid, category, title in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_walkthrough_with_the_cli_across_two_product_sets(running, sample: Path,
                                                          tmp_path: Path) -> None:
    """ingest -> update a title -> sync (one product gone, one new; dry run first) -> list by
    category, in the default set and in another set, checking search and stats each step."""
    from tests.test_cli import lookalike

    server = running.target
    shop = [("cat-poster", "posters", "Tabby cat poster"), ("rocket-model", "toys", "Rocket"),
            ("motorbike", "toys", "Motorbike kit"), ("lawn-seed", "garden", "Lawn seed")]
    other = [("cat-poster", "art", "Cat in store 2"), ("gravel-bag", "garden", "Gravel")]
    with Client(server) as client:
        def products(product_set: str = "") -> list[str]:
            return [p.product_id for p in client.products(product_set)]

        def top(product_id: str, product_set: str = "") -> pb.Match:
            return client.search(image(sample, product_id), top_k=1, verify="off",
                                 product_set=product_set).matches[0]

        before = client.stats().products  # other tests of this module share the default set
        for rows, extra in ((shop, ["--product-set", "walk"]), (other, ["--set", "walk-2"])):
            done = lookalike("ingest", str(write_csv(tmp_path / f"{rows[0][2]}.csv", sample, rows)),
                             *extra, server=server)
            assert done.returncode == 0, done.stdout + done.stderr
        assert products("walk") == ["cat-poster", "lawn-seed", "motorbike", "rocket-model"]
        assert products("walk-2") == ["cat-poster", "gravel-bag"]
        assert client.stats().products == before  # the default set saw nothing
        assert top("cat-poster", "walk-2").title == "Cat in store 2"
        assert top("motorbike", "walk-2").product_id != "motorbike"  # not in that set

        renamed = lookalike("products", "update", "rocket-model", "--title", "Rocket launch kit",
                            "--set", "walk", server=server)
        assert renamed.returncode == 0, renamed.stdout + renamed.stderr
        assert top("rocket-model", "walk").title == "Rocket launch kit"
        assert client.product("cat-poster", "walk-2").title == "Cat in store 2"

        # The file no longer lists lawn-seed, adds coin-set and keeps the new title.
        synced = [shop[0], ("rocket-model", "toys", "Rocket launch kit"), shop[2],
                  ("coin-set", "collectibles", "Coins")]
        csv_path = write_csv(tmp_path / "synced.csv", sample, synced)
        plan = lookalike("ingest", str(csv_path), "--sync", "--dry-run", "--set", "walk",
                         server=server)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "lawn-seed" in plan.stdout and "coin-set" in plan.stdout
        assert "dry run" in plan.stdout.lower()
        assert products("walk") == ["cat-poster", "lawn-seed", "motorbike", "rocket-model"]
        applied = lookalike("ingest", str(csv_path), "--sync", "--set", "walk", server=server)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert products("walk") == ["cat-poster", "coin-set", "motorbike", "rocket-model"]
        assert top("coin-set", "walk").product_id == "coin-set"
        assert top("lawn-seed", "walk").product_id != "lawn-seed"
        stats = client.stats("walk")
        assert (stats.points, stats.products) == (4, 4)
        assert client.product("rocket-model", "walk").title == "Rocket launch kit"
        again = lookalike("ingest", str(csv_path), "--sync", "--set", "walk", server=server)
        assert again.returncode == 0 and "nothing to change" in again.stdout.lower()

        listed = lookalike("products", "list", "--category", "TOYS", "--set", "walk", "--json",
                           server=server)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert [json.loads(line)["productId"] for line in listed.stdout.splitlines()] == [
            "motorbike", "rocket-model"]
        # The other set and the default set went through all of it untouched.
        assert products("walk-2") == ["cat-poster", "gravel-bag"]
        assert client.stats("walk-2").points == 2 and client.stats().products == before


def test_cli_names_the_categories_when_a_category_finds_nothing(service: str, sample: Path,
                                                               catalogue) -> None:
    from tests.test_cli import lookalike

    photo = str(sample / "catalogue" / "coffee-cup.png")
    found = lookalike("search", photo, "--category", "KITCHEN", "-k", "1", server=service)
    assert found.returncode == 0 and "coffee-cup" in found.stdout  # any case
    nothing = lookalike("search", photo, "--category", "shoes", server=service)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "no product of category shoes; the categories of this set: posters (3)" in " ".join(
        nothing.stdout.split())


def test_sync_refuses_a_file_with_unreadable_rows(service: str, sample: Path, tmp_path: Path,
                                                  catalogue) -> None:
    """A row that cannot be read would look like a product to delete: nothing changes."""
    from tests.test_cli import lookalike

    bad = tmp_path / "bad.csv"
    bad.write_text(f"image_uri,product_id\n{sample}/catalogue/coin-set.png,coin-set\n"
                   f"{sample}/catalogue/moon-lamp.png,\n")
    with Client(service) as client:
        before = client.stats().products
        refused = lookalike("ingest", str(bad), "--sync", server=service)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "--sync would delete their products" in " ".join(refused.stdout.split())
        assert client.stats().products == before
