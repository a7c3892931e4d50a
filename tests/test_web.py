"""The HTTP/JSON gateway (lookalike/web) against a real service: the same keys, answers and
error texts as gRPC, the status mapping, body limits, and thumbnails that never read a path
a request names."""

from __future__ import annotations

import base64
import csv
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from lookalike.client import Client
from lookalike.v1 import lookalike_pb2 as pb

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def http(web) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, headers={"x-api-key": web.write_key}, timeout=60) as c:
        yield c


def query(sample: Path, product_id: str = "coffee-cup") -> bytes:
    with (sample / "queries.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["product_id"] == product_id)
    return (sample / "queries" / row["query_file"]).read_bytes()


def grpc_error(web, call) -> grpc.RpcError:
    with Client(web.target, api_key=web.write_key) as c, pytest.raises(grpc.RpcError) as caught:
        call(c)
    return caught.value


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return response.json()["error"]["message"]


def wait_job(http: httpx.Client, job_id: str) -> dict:
    for _ in range(240):
        if (job := http.get(f"/v1/jobs/{job_id}").json())["state"] == "DONE":
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} not done: {job}")


def test_health_page_and_openapi(web, http) -> None:
    assert httpx.get(f"{web.url}/healthz").json()["status"] == "SERVING"
    page = httpx.get(web.url + "/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/search", "/v1/ingest", "/v1/products/{product_id}", "/v1/jobs/{job_id}"} <= set(paths)
    # CORS is off unless LOOKALIKE_HTTP_CORS_ORIGINS names origins.
    answer = http.get("/v1/stats", headers={"origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_keys_are_the_services(web) -> None:
    no_key = httpx.get(f"{web.url}/v1/stats")
    assert error(no_key, 401, "UNAUTHENTICATED") == "missing API key: send it in the x-api-key metadata"
    unknown = httpx.get(f"{web.url}/v1/stats", headers={"x-api-key": "0" * 32})
    assert error(unknown, 401, "UNAUTHENTICATED") == "unknown API key"
    read = httpx.delete(f"{web.url}/v1/products/coffee-cup", headers={"x-api-key": web.read_key})
    assert "may read but not call DeleteProducts" in error(read, 403, "PERMISSION_DENIED")
    assert httpx.get(f"{web.url}/v1/stats", headers={"x-api-key": web.read_key}).status_code == 200


def test_search_finds_the_product_multipart_and_raw(web, http) -> None:
    photo = query(web.sample)
    answer = http.post("/v1/search", files={"image": ("q.jpg", photo, "image/jpeg")},
                       data={"top_k": "5"}).json()
    assert answer["matches"][0]["product_id"] == "coffee-cup"
    assert len(answer["matches"]) <= 5 and answer["matches"][0]["title"] == "Espresso cup and saucer"
    raw = http.post("/v1/search?top_k=3&verify=off", content=photo,
                    headers={"content-type": "image/jpeg"}).json()
    assert raw["matches"][0]["product_id"] == "coffee-cup" and raw["verify"] == "off"
    posters = http.post("/v1/search", files={"image": ("q.jpg", photo, "image/jpeg")},
                        data={"categories": "posters", "per_object": "true"}).json()
    assert {m["category"] for m in posters["matches"]} == {"posters"}
    assert isinstance(posters["objects"], list)
    words = http.post("/v1/search", data={"text": "espresso cup"}).json()
    assert words["matches"][0]["product_id"] == "coffee-cup"


def test_errors_carry_the_grpc_status_and_text(web, http) -> None:
    junk = b"not an image at all" * 10
    response = http.post("/v1/search", files={"image": ("x.jpg", junk, "image/jpeg")})
    expected = grpc_error(web, lambda c: c.search(junk))
    assert error(response, 400, "INVALID_ARGUMENT") == expected.details()
    missing = http.get("/v1/products/no-such-product")
    assert error(missing, 404, "NOT_FOUND") == grpc_error(web, lambda c: c.product("no-such-product")).details()
    error(http.post("/v1/search", data={"top_k": "many"}), 400, "INVALID_ARGUMENT")
    error(http.post("/v1/search", data={"verify": "maybe", "text": "x"}), 400, "INVALID_ARGUMENT")
    error(http.patch("/v1/products/coffee-cup", json={"price": 3}), 400, "INVALID_ARGUMENT")
    error(http.get("/v1/nothing-here"), 404, "NOT_FOUND")


def test_body_limits_match_the_grpc_ones(web, http) -> None:
    big = b"\xff\xd8\xff" + os.urandom(17 * 1024 * 1024)  # LOOKALIKE_MAX_SEARCH_BYTES: 16 MiB
    response = http.post("/v1/search", content=big, headers={"content-type": "image/jpeg"})
    assert "the limit is" in error(response, 413, "RESOURCE_EXHAUSTED")
    error(http.request("GET", "/v1/stats", content=b"x" * (2 * 1024 * 1024)), 413, "RESOURCE_EXHAUSTED")
    chunked = (b"\0" * (1024 * 1024) for _ in range(18))  # no content-length: counted as it comes
    response = http.post("/v1/search", content=chunked, headers={"content-type": "image/jpeg"})
    error(response, 413, "RESOURCE_EXHAUSTED")


def test_catalogue_endpoints(web, http) -> None:
    stats = http.get("/v1/stats").json()
    assert int(stats["products"]) == 14 and {c["category"] for c in stats["categories"]} >= {"posters"}
    first = http.get("/v1/products", params={"page_size": 5}).json()
    assert len(first["products"]) == 5 and first["next_page_token"] and int(first["total"]) == 14
    second = http.get("/v1/products", params={"page_size": 5, "page_token": first["next_page_token"]})
    assert not {p["product_id"] for p in first["products"]} & {p["product_id"] for p in second.json()["products"]}
    posters = http.get("/v1/products", params={"categories": "posters"}).json()["products"]
    assert posters and {p["category"] for p in posters} == {"posters"}
    product = http.get("/v1/products/moon-lamp").json()
    assert product["images"][0]["image_id"] == "front"
    patched = http.patch("/v1/products/moon-lamp", json={"title": "Moon lamp, large"}).json()
    assert patched["title"] == "Moon lamp, large" and patched["category"] == "home"
    like = http.post("/v1/recommend", json={"positive_product_ids": ["moon-lamp"], "top_k": 3}).json()
    assert "moon-lamp" not in [m["product_id"] for m in like["matches"]]
    assert "groups" in http.get("/v1/duplicates").json()
    copy = http.post("/v1/copies", content=(web.sample / "catalogue" / "moon-lamp.png").read_bytes(),
                     headers={"content-type": "image/png"}).json()
    assert copy["is_copy"] and copy["original"]["product_id"] == "moon-lamp"


def test_ingest_json_csv_and_files(web, http, tmp_path: Path) -> None:
    image = (web.sample / "catalogue" / "coin-set.png").read_bytes()
    submitted = http.post("/v1/ingest", json={"items": [
        {"product_id": "web-json", "image_id": "a", "image": base64.b64encode(image).decode(),
         "product_set": "web", "title": "From JSON"}]}).json()
    assert wait_job(http, submitted["job_id"])["done"] == 1
    outside = tmp_path / "outside.png"
    outside.write_bytes(image)
    rows = ("image_uri,product_id,product_set,title\n"
            f"catalogue/brick-tile.png,web-csv,web,From CSV\n"
            f"{outside},web-outside,web,Outside\n"
            ",web-empty,web,No image\n")
    answer = http.post("/v1/ingest", files={"catalogue": ("c.csv", rows.encode(), "text/csv")}).json()
    assert answer["total"] == 2 and any("image_uri is empty" in p for p in answer["problems"])
    job = wait_job(http, answer["job_id"])
    assert job["done"] == 1 and job["failed"] == 1
    assert "outside the ingest roots" in job["failures"][0]["reason"]
    files = http.post("/v1/ingest", data={"product_id": "web-files", "product_set": "web"},
                      files=[("images", ("one.png", image, "image/png"))]).json()
    assert wait_job(http, files["job_id"])["done"] == 1
    assert int(http.get("/v1/stats", params={"product_set": "web"}).json()["products"]) == 3
    assert http.delete("/v1/products/web-files", params={"product_set": "web"}).json()["deleted"] == 1
    error(http.post("/v1/ingest", content=b"{", headers={"content-type": "application/json"}),
          400, "INVALID_ARGUMENT")


def test_thumbnails_only_through_stored_sources(web, http, tmp_path: Path) -> None:
    good = http.get("/v1/thumbnails/-/coffee-cup/front")
    assert good.status_code == 200 and good.headers["content-type"] == "image/jpeg"
    assert good.content[:3] == b"\xff\xd8\xff" and "x-lookalike-thumbnail" not in good.headers
    secret = tmp_path / "secret.png"  # an image outside the ingest roots
    secret.write_bytes((web.sample / "catalogue" / "coin-set.png").read_bytes())
    escape = web.sample / "escape.png"
    escape.symlink_to(secret)  # inside the roots by name, outside once resolved
    image = (web.sample / "catalogue" / "rocket-model.png").read_bytes()
    sources = {"etc": "/etc/passwd", "outside": str(secret), "dots": f"{web.sample}/../{secret.name}",
               "relative": "../../etc/hostname", "link": str(escape), "url": "http://127.0.0.1:1/x.png",
               "file-url": "file:///etc/passwd"}
    items = [pb.IngestItem(product_id="hostile", image_id=name, image=image, source=source,
                           product_set="hostile") for name, source in sources.items()]
    with Client(web.target, api_key=web.write_key) as c:
        assert c.wait_job(c.submit(items), timeout_s=120).done == len(items)
    for name in sources:
        answer = http.get(f"/v1/thumbnails/hostile/hostile/{name}")
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-type"] == "image/svg+xml", name
        assert answer.headers["x-lookalike-thumbnail"].startswith("placeholder"), name
    # Ids that try to name a path are ids: no product, no image, never a file.
    for path in ("/v1/thumbnails/-/..%2F..%2Fetc/passwd", "/v1/thumbnails/-/../../etc/passwd",
                 "/v1/thumbnails/-/coffee-cup/..%2F..%2Fetc%2Fpasswd", "/v1/thumbnails/..%2F/coffee-cup/front",
                 "/v1/thumbnails/-/coffee-cup/front%00", "/v1/thumbnails/-/" + "x" * 5000 + "/front",
                 "/v1/thumbnails/-/coffee-cup/back", "/v1/thumbnails/%2Fetc/coffee-cup/front"):
        answer = http.get(path)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert "root:" not in answer.text
    assert httpx.get(f"{web.url}/v1/thumbnails/-/coffee-cup/front").status_code == 401


def test_lookalike_web_entry_point(web) -> None:
    """`lookalike web --grpc HOST:PORT`: the gateway on its own, in front of a service."""
    from lookalike.tools.local import free_port

    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "web", "--grpc", web.target,
                             "--listen", address], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={**os.environ, "LOOKALIKE_LOG_JSON": "false"})
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://{address}/healthz").json()["status"] == "SERVING":
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.get(f"http://{address}/v1/products/coin-set", headers={"x-api-key": web.read_key})
        assert answer.json()["title"] == "Greek coin set"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) in (0, -15)  # uvicorn re-raises SIGTERM after its shutdown
