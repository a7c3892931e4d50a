"""Search with words (SearchRequest.text) through the real service: alone, fused with a
photo, and refused when too long or when neither a photo nor words are sent."""

from __future__ import annotations

import csv
from pathlib import Path

import grpc
import pytest

from lookalike.client import Client
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue


@pytest.fixture(scope="module")
def catalogue(client: Client, sample: Path) -> bulk.IngestOutcome:
    return bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))


def query_photos(sample: Path) -> dict[str, bytes]:
    """product_id -> one store photo of it."""
    with (sample / "queries.csv").open() as f:
        return {r["product_id"]: (sample / "queries" / r["query_file"]).read_bytes()
                for r in csv.DictReader(f)}


def test_words_alone_find_products_by_their_title_and_category(client: Client,
                                                               catalogue) -> None:
    response = client.search(b"", top_k=5, text="espresso cup")
    assert response.matches[0].product_id == "coffee-cup"
    assert response.matches[0].title == "Espresso cup and saucer"
    assert response.verify == "off" and response.model
    scores = [m.score for m in response.matches]
    assert scores == sorted(scores, reverse=True) and scores[0] > 1.0  # BM25, not a cosine
    posters = client.search(b"", top_k=10, text="posters")  # the category's word
    assert {m.product_id for m in posters.matches} == {"cat-poster", "astronaut-print",
                                                       "camera-print"}
    prints = client.search(b"", top_k=10, text="print", categories=["posters"])
    assert {m.product_id for m in prints.matches} == {"astronaut-print", "camera-print"}
    assert list(client.search(b"", text="zeppelin").matches) == []


def test_a_photo_and_words_are_fused(client: Client, sample: Path, catalogue) -> None:
    photo = query_photos(sample)["moon-lamp"]
    alone = client.search(photo, top_k=5, verify="off")
    assert alone.matches[0].product_id == "moon-lamp"
    # Words naming another product: both rankings count (reciprocal rank fusion).
    fused = client.search(photo, top_k=5, text="moon lamp")
    assert fused.matches[0].product_id == "moon-lamp" and fused.verify == "off"
    assert 0 < fused.matches[0].score < 0.05  # an RRF score: sum of 1 / (60 + rank)
    both = {m.product_id for m in client.search(photo, top_k=14, text="gravel bag").matches}
    assert {"moon-lamp", "gravel-bag"} <= both


def test_text_is_bounded_and_something_must_be_sent(client: Client, catalogue) -> None:
    with pytest.raises(grpc.RpcError) as too_long:
        client.search(b"", text="a" * 1001)
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1,001 characters; at most 1,000" in too_long.value.details()
    assert client.search(b"", text="tile " * 200).matches[0].product_id == "brick-tile"
    with pytest.raises(grpc.RpcError) as nothing:
        client.search(b"", text="  ")
    assert nothing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty image: 0 bytes" in nothing.value.details()
    assert "no text" in nothing.value.details()
