"""End to end on real parts: gRPC client -> query service -> Celery on Redis -> worker ->
TF model -> embedded Qdrant, and back."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from lookalike.client import Client
from lookalike.imaging import decode
from lookalike.model.registry import DEFAULT_MODEL, MODELS, model_id
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc
from tests.test_imaging import BAD
from tests.test_verify import photo_of


def queries(sample: Path) -> list[tuple[bytes, str]]:
    with (sample / "queries.csv").open() as f:
        return [((sample / "queries" / r["query_file"]).read_bytes(), r["product_id"])
                for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def catalogue(client: Client, sample: Path) -> bulk.IngestOutcome:
    return bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))


def test_health_and_reflection(client: Client) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "lookalike.v1.Lookalike"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    (answer,) = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for s in answer.list_services_response.service}
    assert {"lookalike.v1.Lookalike", "grpc.health.v1.Health"} <= names


def test_catalogue_is_stored_and_described(client: Client, catalogue: bulk.IngestOutcome) -> None:
    assert {job.state for job in catalogue.jobs} == {pb.Job.DONE}
    assert sum(job.total for job in catalogue.jobs) == catalogue.done == 14
    assert catalogue.failures == []
    stats = client.stats()
    assert (stats.points, stats.products, stats.vector_size) == (14, 14, 1280)
    assert stats.model_name == DEFAULT_MODEL and stats.model_version == MODELS[DEFAULT_MODEL].version


def test_store_photos_find_their_product(client: Client, sample: Path, catalogue) -> None:
    found = []
    for image, expected in queries(sample):
        response = client.search(image, top_k=5, verify="off")  # stage 1: cosine order
        assert len(response.matches) == 5
        scores = [m.score for m in response.matches]
        assert scores == sorted(scores, reverse=True)
        assert len({m.product_id for m in response.matches}) == 5  # one match per product
        assert response.model == model_id(DEFAULT_MODEL) and response.server_ms > 0
        found.append(response.matches[0].product_id == expected)
    # Off-the-shelf features on the generated store photos: most, not all, are right at rank 1.
    assert sum(found) / len(found) >= 0.7


def test_catalogue_image_is_its_own_best_match(client: Client, sample: Path, catalogue) -> None:
    image = (sample / "catalogue" / "coffee-cup.png").read_bytes()
    best = client.search(image, top_k=1).matches[0]
    assert (best.product_id, best.image_id, best.category, best.title, list(best.labels)) == (
        "coffee-cup", "front", "kitchen", "Espresso cup and saucer", ["sample"])
    # The query is the photo's middle (model.query_crop), the catalogue vector the whole image:
    # close, not identical; the local features find the image itself.
    assert 0.9 <= best.score < 0.999 and best.verified and best.inliers >= 100


def test_a_tilted_photo_of_a_catalogue_image_is_verified(client: Client, sample: Path,
                                                        catalogue) -> None:
    """Stage 2 through the service: features stored at ingest, verified at search."""
    photo = photo_of(decode((sample / "catalogue" / "camera-print.png").read_bytes()),
                     np.random.default_rng(2))
    data = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes()
    on = client.search(data, top_k=3, verify="on")
    best = on.matches[0]
    assert on.verify == "on" and best.product_id == "camera-print", on
    assert best.verified and best.inliers >= 16 and len(best.polygon) == 4
    assert all(0 <= p.x <= photo.shape[1] * 1.05 and 0 <= p.y <= photo.shape[0] * 1.05
               for p in best.polygon)
    off = client.search(data, top_k=3, verify="off")
    assert off.verify == "off" and not any(m.verified or m.inliers for m in off.matches)
    assert [m.stage1_rank for m in off.matches] == [1, 2, 3]
    ranks = {m.product_id: m.stage1_rank for m in off.matches}
    assert all(ranks.get(m.product_id, m.stage1_rank) == m.stage1_rank for m in on.matches)
    stub = pb_grpc.LookalikeStub(client.channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Search(pb.SearchRequest(image=data, verify=9), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "verify" in refused.value.details()


def two_products(sample: Path, names: list[str], rng: np.random.Generator
                 ) -> tuple[bytes, list[np.ndarray]]:
    """The catalogue images, each tilted and turned, side by side on clutter; their outlines."""
    canvas_w, canvas_h = 1200, 640
    clutter = rng.integers(0, 255, (canvas_h // 10, canvas_w // 10, 3), np.uint8)
    canvas = cv2.resize(clutter, (canvas_w, canvas_h), interpolation=cv2.INTER_NEAREST)
    outlines = []
    for i, name in enumerate(names):
        image = decode((sample / "catalogue" / f"{name}.png").read_bytes())
        h, w = image.shape[:2]
        corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        size = 0.36 * canvas_w / max(w, h)
        target = ((corners - [w / 2, h / 2]) * size + [canvas_w * (0.27 + 0.46 * i), canvas_h / 2]
                  + rng.uniform(-0.06, 0.06, (4, 2)) * size * max(w, h)).astype(np.float32)
        warp = cv2.getPerspectiveTransform(corners, target)
        cv2.warpPerspective(image, warp, (canvas_w, canvas_h), dst=canvas,
                            borderMode=cv2.BORDER_TRANSPARENT)
        outlines.append(target)
    data = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))[1].tobytes()
    return data, outlines


def test_per_object_search_finds_each_product_with_its_outline(client: Client, sample: Path,
                                                               catalogue) -> None:
    from lookalike.verify.objects import polygon_iou

    names = ["camera-print", "galaxy-puzzle"]
    data, outlines = two_products(sample, names, np.random.default_rng(3))
    response = client.search(data, top_k=3, per_object=True)
    assert len(response.objects) == 2, response.objects
    found = {obj.matches[0].product_id: obj for obj in response.objects}
    assert set(found) == set(names)
    for name, outline in zip(names, outlines):
        obj = found[name]
        polygon = [(p.x, p.y) for p in obj.bounding_poly]
        assert polygon_iou(polygon, outline) >= 0.5, (name, polygon, outline)
        assert 0 < obj.score <= 1 and obj.matches[0].verified and obj.matches[0].inliers >= 8
    assert response.matches  # the whole photo's ranking is still there

    # The same photo stored sideways with EXIF "rotate 90 degrees to display": the outlines are
    # in the displayed photo's pixels, where the products are.
    upright = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    sideways = Image.fromarray(cv2.cvtColor(cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE),
                                            cv2.COLOR_BGR2RGB))
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(buffer, "JPEG", exif=exif, quality=95)
    turned = client.search(buffer.getvalue(), top_k=3, per_object=True).objects
    for name, outline in zip(names, outlines):
        obj = next(o for o in turned if o.matches[0].product_id == name)
        assert polygon_iou([(p.x, p.y) for p in obj.bounding_poly], outline) >= 0.5, name

    one, _ = two_products(sample, ["astronaut-print"], np.random.default_rng(4))
    single = client.search(one, top_k=3, per_object=True).objects
    assert [obj.matches[0].product_id for obj in single] == ["astronaut-print"]
    none = cv2.imencode(".png", np.random.default_rng(5).integers(0, 255, (480, 640, 3), np.uint8))
    assert client.search(none[1].tobytes(), per_object=True).objects == []
    assert client.search(data, top_k=3).objects == []  # only when asked


def test_filters_and_min_score(client: Client, sample: Path, catalogue) -> None:
    image = queries(sample)[0][0]
    posters = client.search(image, top_k=10, categories=["posters"]).matches
    assert posters and {m.category for m in posters} == {"posters"}
    assert client.search(image, top_k=10, labels=["no-such-label"]).matches == []
    strict = client.search(image, top_k=10, min_score=0.45).matches
    assert all(m.score >= 0.45 for m in strict)
    assert len(strict) < len(client.search(image, top_k=10).matches)


def test_resubmitting_the_catalogue_does_not_duplicate(client: Client, sample: Path,
                                                       catalogue) -> None:
    before = client.stats().points
    assert bulk.ingest(client, read_catalogue(sample / "catalogue.csv")).done == 14
    assert client.stats().points == before


def test_bad_items_fail_alone_with_reasons(client: Client, sample: Path, catalogue) -> None:
    good = (sample / "catalogue" / "rocket-model.png").read_bytes()
    items = [
        pb.IngestItem(product_id="extra-rocket", image_id="ok", image=good, category="toys"),
        pb.IngestItem(product_id="broken", image_id="trunc", image=BAD["truncated jpeg"][0]),
        pb.IngestItem(product_id="broken", image_id="text", image=BAD["text"][0]),
        pb.IngestItem(product_id="", image_id="no-product", image=good),
        pb.IngestItem(product_id="ghost", image_id="missing", uri="/no/such/file.jpg"),
        pb.IngestItem(product_id="nothing", image_id="empty"),
    ]
    job = client.wait_job(client.submit(items), timeout_s=120)
    assert (job.state, job.total, job.done, job.failed) == (pb.Job.DONE, 6, 1, 5)
    reasons = {f.image_id: f.reason for f in job.failures}
    assert "truncated JPEG" in reasons["trunc"]
    assert "not a recognised image" in reasons["text"]
    assert "product_id is empty" in reasons["no-product"]
    assert "outside the ingest roots" in reasons["missing"]
    assert "neither image bytes nor uri" in reasons["empty"]
    assert client.search(good, top_k=1).matches[0].product_id in {"extra-rocket", "rocket-model"}
    assert client.delete(["extra-rocket"]) == 1


def test_burst_of_bad_input_then_a_good_query(client: Client, sample: Path, catalogue) -> None:
    for name, (payload, reason) in BAD.items():
        with pytest.raises(grpc.RpcError) as err:
            client.search(payload)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert reason in err.value.details(), name
    image, expected = queries(sample)[0]
    for arguments, message in (({"top_k": 1000}, "top_k is 1000"),
                               ({"min_score": 5.0}, "min_score is 5")):
        with pytest.raises(grpc.RpcError) as err:
            client.search(image, **arguments)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()
    assert client.search(image, top_k=1).matches[0].product_id == expected


def test_oversized_search_is_resource_exhausted(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.search(b"\xff\xd8" + b"\0" * (17 * 1024 * 1024))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the limit is 16,777,216" in err.value.details()


def test_unknown_job_is_not_found(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.job(uuid.uuid4().hex)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_delete_products(client: Client, sample: Path, catalogue) -> None:
    brick = (sample / "catalogue" / "brick-tile.png").read_bytes()
    grey = cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    job = client.wait_job(client.submit([
        pb.IngestItem(product_id="temp", image_id="a", image=brick),
        pb.IngestItem(product_id="temp", image_id="b", image=grey),
    ]))
    assert job.done == 2
    assert client.search(brick, top_k=1).matches[0].product_id in {"temp", "brick-tile"}
    assert client.delete(["temp"]) == 2
    assert all(m.product_id != "temp" for m in client.search(brick, top_k=20).matches)


def test_async_client_and_package_level_import(service: str, client: Client, sample: Path,
                                                catalogue) -> None:
    import asyncio

    import lookalike

    image, expected = queries(sample)[0]

    async def main() -> tuple[str, int]:
        async with lookalike.AsyncClient(service) as c:
            found, stats = await asyncio.gather(c.search(image, top_k=1), c.stats())
            return found.matches[0].product_id, stats.products

    assert asyncio.run(main()) == (expected, client.stats().products)
    assert lookalike.Client is Client
