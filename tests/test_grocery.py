"""Real product photos (GroceryStoreDataset, in ../shared): all 2,591 store photos searched
over gRPC against the 40 catalogue images ingested through the worker (about a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike import bulk, evaluate
from lookalike.catalogue import read_catalogue
from lookalike.client import Client
from lookalike.local import local_service


@pytest.fixture(scope="module")
def report(grocery: Path, tmp_path_factory: pytest.TempPathFactory,
           service_env: dict[str, str]) -> evaluate.Report:
    with local_service(tmp_path_factory.mktemp("grocery"), env=service_env) as target:
        with Client(target) as client:
            (job,) = bulk.ingest(client, read_catalogue(grocery))
            assert (job.done, job.failed) == (40, 0)
            return evaluate.run(client, grocery)


def test_off_the_shelf_recall_matches_the_reference(report: evaluate.Report) -> None:
    summary = report.summary()
    assert summary["products"] == 40 and summary["queries"] == 2591
    # Reference for global-average-pooled EfficientNet-Lite0 at 224 px: R@1 ~0.32, R@5 ~0.69.
    assert 0.28 <= summary["recall@1"] <= 0.40
    assert 0.62 <= summary["recall@5"] <= 0.80
    assert summary["recall@1"] <= summary["recall@5"] <= summary["recall@10"] <= 1
    assert 0 < summary["mAP"] < 1
