"""`lookalike reindex`: a new model's collection is built from the catalogue's sources and
made live by moving the alias; the old model's collection stays searchable meanwhile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.imaging import decode
from lookalike.model import load_model, registry
from lookalike.model.base import EmbeddingModel
from lookalike.pipeline.ingest import process_chunk
from lookalike.pipeline.jobs import JobStore
from lookalike.pipeline.queue import ItemMessage
from lookalike.pipeline.reindex import reindex
from lookalike.store import CatalogueStore, ModelMismatch
from lookalike.tools.sample import PRODUCTS


@pytest.fixture(scope="module")
def lite0() -> EmbeddingModel:
    return load_model("efficientnet-lite0")


def test_reindex_moves_the_catalogue_to_a_new_model(
    tmp_path: Path, sample: Path, redis_url: str, lite0: EmbeddingModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(data_dir=tmp_path, qdrant_url="", redis_url=redis_url, chunk_size=4,
                        ingest_roots=str(sample))
    jobs = JobStore.from_url(redis_url, ttl_s=600)
    old = CatalogueStore.open(settings, lite0.model_id, lite0.dim)
    items = [ItemMessage(index=i, product_id=pid, image_id="front", category=category,
                         title=title, source=str(sample / "catalogue" / f"{pid}.png"),
                         uri=str(sample / "catalogue" / f"{pid}.png"))
             for i, (pid, (_, category, title)) in enumerate(PRODUCTS.items())]
    items.append(ItemMessage(index=len(items), product_id="uploaded", image_id="x",
                             source="upload",
                             image=(sample / "catalogue" / "moon-lamp.png").read_bytes()))
    assert process_chunk(jobs.create(len(items)), items, lite0, old, jobs, settings) == 15
    old.close()

    # A second model: same network, another version, so its vectors may not be mixed.
    monkeypatch.setitem(registry.MODELS, "lite0-b",
                        registry.ModelSpec("b.1", registry.MODELS["efficientnet-lite0"].load))
    report = reindex(settings, "lite0-b", jobs)
    assert (report.images, report.stored, report.promoted) == (15, 14, False)
    (failure,) = report.failures
    assert failure.product_id == "uploaded" and "without a source path" in failure.reason

    report = reindex(settings, "lite0-b", jobs, force=True)  # resumes: nothing left to embed
    assert report.promoted and report.stored == 0

    new = CatalogueStore.open(settings, "lite0-b@b.1", lite0.dim)
    assert new.live_model() == "lite0-b@b.1" and new.count() == 14
    query = lite0.embed_query([decode((sample / "catalogue" / "coffee-cup.png").read_bytes())])[0]
    assert new.search(query, 1)[0].product_id == "coffee-cup"
    # The old model's service still finds its own collection; an unknown model gets a clear error.
    stale = CatalogueStore(new.client, settings.collection, lite0.model_id, lite0.dim)
    assert stale.count() == 15
    with pytest.raises(ModelMismatch, match="built by model 'lite0-b@b.1'"):
        CatalogueStore(new.client, settings.collection, "other@1", 3).search(np.ones(3), 1)
    new.close()


def test_reindex_rereads_sources_under_the_ingest_confinement(
    tmp_path: Path, sample: Path, redis_url: str, lite0: EmbeddingModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write key chose each `source`: reindex may not read what ingest would have refused,
    and one bad source fails alone."""
    settings = Settings(data_dir=tmp_path, qdrant_url="", redis_url=redis_url, chunk_size=8,
                        ingest_roots=str(sample))
    jobs = JobStore.from_url(redis_url, ttl_s=600)
    store = CatalogueStore.open(settings, lite0.model_id, lite0.dim)
    image = (sample / "catalogue" / "coffee-cup.png").read_bytes()
    hostile = {"passwd": "/etc/passwd", "metadata": "http://169.254.169.254/latest/meta-data",
               "loopback": "http://127.0.0.1:1/x.jpg", "malformed": "http://[::1",
               "nul": "/etc/passwd\x00.jpg"}
    items = [ItemMessage(index=i, product_id=name, image_id="front", source=source, image=image)
             for i, (name, source) in enumerate(hostile.items())]
    items.append(ItemMessage(index=len(items), product_id="cup", image_id="front",
                             uri=str(sample / "catalogue" / "coffee-cup.png"), source="cup.png"))
    assert process_chunk(jobs.create(len(items)), items, lite0, store, jobs, settings) == 6
    store.close()

    monkeypatch.setitem(registry.MODELS, "lite0-b",
                        registry.ModelSpec("b.1", registry.MODELS["efficientnet-lite0"].load))
    report = reindex(settings, "lite0-b", jobs)
    assert (report.images, report.stored, report.promoted) == (6, 1, False)
    reasons = {f.product_id: f.reason for f in report.failures}
    assert set(reasons) == set(hostile)
    assert "outside the ingest roots" in reasons["passwd"]
    assert "loopback/private/link-local" in reasons["metadata"]
    assert "loopback/private/link-local" in reasons["loopback"]
    assert "malformed URI" in reasons["malformed"] and "control characters" in reasons["nul"]
    assert not any("root:" in reason for reason in reasons.values())
