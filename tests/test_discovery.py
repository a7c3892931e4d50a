"""Recommend and FindDuplicates through a real service, and their CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from lookalike.client import Client
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.v1 import lookalike_pb2 as pb


def reencoded(path: Path, quality: int = 70, flip: bool = False) -> bytes:
    image = cv2.imread(str(path))
    return cv2.imencode(".jpg", image[:, ::-1] if flip else image,
                        [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@pytest.fixture(scope="module")
def catalogue(client: Client, sample: Path) -> bulk.IngestOutcome:
    """The sample catalogue, plus a duplicate listing (the cup re-encoded under another id),
    a product shot twice (the lamp twice under one id) and a copy in another product set."""
    outcome = bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))
    cup, lamp = sample / "catalogue" / "coffee-cup.png", sample / "catalogue" / "moon-lamp.png"
    job = client.wait_job(client.submit([
        pb.IngestItem(product_id="cup-listing-2", image_id="a", image=reencoded(cup),
                      title="Espresso cup (again)"),
        pb.IngestItem(product_id="moon-lamp", image_id="again", image=reencoded(lamp, 80)),
        pb.IngestItem(product_id="cup", image_id="a", image=cup.read_bytes(), product_set="b"),
    ]))
    assert job.done == 3 and outcome.failures == []
    return outcome


def groups(found: pb.FindDuplicatesResponse) -> list[list[tuple[str, str]]]:
    return [[(i.product_id, i.image_id) for i in g.images] for g in found.groups]


def test_duplicate_listings_are_grouped_across_products(client: Client, catalogue) -> None:
    found = client.duplicates()
    assert groups(found) == [[("coffee-cup", "front"), ("cup-listing-2", "a")]]
    assert found.threshold == pytest.approx(0.85) and found.images == 16
    assert found.groups[0].images[0].score == pytest.approx(1.0, abs=0.01)
    assert 0.85 <= found.groups[0].images[1].score < 1.0
    assert groups(client.duplicates()) == groups(found)  # stable from call to call
    within = groups(client.duplicates(within_products=True))
    assert [("moon-lamp", "again"), ("moon-lamp", "front")] in within and len(within) == 2
    assert groups(client.duplicates(product_set="b")) == []  # one image there: nothing to pair
    # Lower the bar far enough and different products group too: the threshold is what decides.
    assert len(client.duplicates(0.2).groups[0].images) > 2
    with pytest.raises(grpc.RpcError) as err:
        client.duplicates(1.5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_duplicates_command_writes_json_and_a_sheet(service: str, catalogue,
                                                    tmp_path: Path) -> None:
    from tests.test_cli import lookalike

    done = lookalike("duplicates", "--json", str(tmp_path / "d.json"), "--sheet",
                     str(tmp_path / "d.png"), server=service)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 duplicate group among 16 images" in done.stdout
    written = json.loads((tmp_path / "d.json").read_text())
    assert [i["productId"] for i in written["groups"][0]["images"]] == ["coffee-cup",
                                                                       "cup-listing-2"]
    picture = cv2.imread(str(tmp_path / "d.png"))
    assert picture is not None and picture.shape[1] >= 2 * 200 and np.ptp(picture) > 0


def test_recommend_leaves_the_inputs_out_and_pushes_negatives_down(client: Client,
                                                                   catalogue) -> None:
    liked = client.recommend(["cat-poster"], top_k=13)
    ranked = [m.product_id for m in liked.matches]
    assert "cat-poster" not in ranked and len(ranked) == len(set(ranked)) == 13
    assert ranked[0] != "cat-poster" and liked.model
    pushed = [m.product_id for m in client.recommend(["cat-poster"], [ranked[0]],
                                                     top_k=13).matches]
    assert ranked[0] not in pushed  # a negative is an input: left out
    assert pushed[0] != ranked[0]
    posters = client.recommend(["cat-poster"], categories=["Posters"]).matches
    assert {m.category for m in posters} == {"posters"} and len(posters) == 2
    varied = [m.product_id for m in client.recommend(["cat-poster"], top_k=5,
                                                      diversity=0.9).matches]
    assert len(varied) == 5 and "cat-poster" not in varied and varied != ranked[:5]
    assert client.recommend(["cup"], product_set="b").matches == []  # only product of set b
    for call, code in ((lambda: client.recommend(["no-such"]), grpc.StatusCode.NOT_FOUND),
                       (lambda: client.recommend([]), grpc.StatusCode.INVALID_ARGUMENT),
                       (lambda: client.recommend(["cat-poster"], diversity=2),
                        grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code


def test_similar_command(service: str, catalogue) -> None:
    from tests.test_cli import lookalike

    done = lookalike("similar", "cat-poster", "--not", "coffee-cup", "-k", "3", "--json",
                     server=service)
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [m["productId"] for m in json.loads(done.stdout)["matches"]]
    assert len(ids) == 3 and not {"cat-poster", "coffee-cup"} & set(ids)
