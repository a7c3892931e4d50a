"""A small client for the query service: the CLI uses it, so can you.

    from lookalike.client import Client
    with Client("localhost:50051") as client:
        for match in client.search(open("photo.jpg", "rb").read(), top_k=5).matches:
            print(match.product_id, match.score)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc

# gRPC's own retry policy: transient UNAVAILABLE answers are retried with backoff.
_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "lookalike.v1.Lookalike"}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _channel(grpc_module, target: str, tls: bool, tls_ca: str):
    """A channel of grpc (sync) or grpc.aio (async): same options, same security."""
    options = [("grpc.service_config", _SERVICE_CONFIG),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    if tls or tls_ca:
        root = Path(tls_ca).read_bytes() if tls_ca else None
        return grpc_module.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=root), options=options)
    return grpc_module.insecure_channel(target, options=options)


VERIFY = {"": pb.VERIFY_DEFAULT, "auto": pb.VERIFY_AUTO, "off": pb.VERIFY_OFF, "on": pb.VERIFY_ON}


def search_request(image: bytes, top_k: int = 10, categories: Iterable[str] = (),
                   labels: Iterable[str] = (), min_score: float = 0.0,
                   verify: str = "", per_object: bool = False,
                   product_set: str = "", text: str = "") -> pb.SearchRequest:
    """verify: "auto", "off", "on", or "" for the server's default; per_object: also find each
    product in the photo (SearchResponse.objects); product_set: "" for the default set;
    text: words to find in the product text (alone, with image=b"", or fused with the photo)."""
    if verify not in VERIFY:
        raise ValueError(f"verify is {verify!r}; one of auto, off, on (or empty: the server's)")
    return pb.SearchRequest(image=image, top_k=top_k, min_score=min_score, verify=VERIFY[verify],
                            filter=pb.Filter(categories=categories, labels=labels),
                            per_object=per_object, product_set=product_set, text=text)


def update_request(product_id: str, product_set: str = "", *, category: str | None = None,
                   title: str | None = None, labels: Iterable[str] | None = None,
                   description: str | None = None) -> pb.UpdateProductRequest:
    """Only the fields given (not None) change."""
    given = {"category": category, "title": title, "description": description,
             "labels": None if labels is None else list(labels)}
    fields = {k: v for k, v in given.items() if v is not None}
    if not fields:
        raise ValueError("nothing to update: give a category, title, labels or description")
    request = pb.UpdateProductRequest(product=pb.Product(product_id=product_id,
                                                         product_set=product_set, **fields))
    request.update_mask.paths.extend(sorted(fields))
    return request


class _Calls:
    """Every call, built once for both clients: the sync stub answers a call with its response,
    the grpc.aio stub with an awaitable, and `_then` applies what follows to either."""

    stub: pb_grpc.LookalikeStub

    def __init__(self, grpc_module, target: str, timeout_s: float, api_key: str, tls: bool,
                 tls_ca: str) -> None:
        self.target, self.timeout_s = target, timeout_s
        self.channel = _channel(grpc_module, target, tls, tls_ca)
        self.stub = pb_grpc.LookalikeStub(self.channel)
        self.metadata = (("x-api-key", api_key),) if api_key else ()

    def _call(self, method: str, request):
        return getattr(self.stub, method)(request, timeout=self.timeout_s, metadata=self.metadata)

    def _then(self, answer, then):
        return then(answer)

    def search(self, image: bytes, top_k: int = 10, categories: Iterable[str] = (),
               labels: Iterable[str] = (), min_score: float = 0.0, verify: str = "",
               per_object: bool = False, product_set: str = "",
               text: str = "") -> pb.SearchResponse:
        return self._call("Search", search_request(image, top_k, categories, labels, min_score,
                                                   verify, per_object, product_set, text))

    def recommend(self, positive: Iterable[str], negative: Iterable[str] = (), top_k: int = 10,
                  categories: Iterable[str] = (), labels: Iterable[str] = (),
                  product_set: str = "", diversity: float = 0.0) -> pb.SearchResponse:
        """Products like the `positive` product ids and unlike the `negative` ones."""
        return self._call("Recommend", pb.RecommendRequest(
            positive_product_ids=list(positive), negative_product_ids=list(negative),
            filter=pb.Filter(categories=categories, labels=labels), top_k=top_k,
            product_set=product_set, diversity=diversity))

    def duplicates(self, threshold: float = 0.0, product_set: str = "",
                   within_products: bool = False) -> pb.FindDuplicatesResponse:
        """threshold 0: the server's calibrated default."""
        return self._call("FindDuplicates", pb.FindDuplicatesRequest(
            threshold=threshold, product_set=product_set, within_products=within_products))

    def detect_copy(self, image: bytes, product_set: str = "") -> pb.DetectCopyResponse:
        return self._call("DetectCopy", pb.DetectCopyRequest(image=image,
                                                             product_set=product_set))

    def submit(self, items: list[pb.IngestItem]) -> str:
        """The job id; items carry their product_set."""
        return self._then(self._call("SubmitIngest", pb.SubmitIngestRequest(items=items)),
                          lambda answer: answer.job_id)

    def job(self, job_id: str) -> pb.Job:
        return self._call("GetJob", pb.GetJobRequest(job_id=job_id))

    def delete(self, product_ids: Iterable[str], product_set: str = "") -> int:
        """Images removed."""
        request = pb.DeleteProductsRequest(product_ids=list(product_ids), product_set=product_set)
        return self._then(self._call("DeleteProducts", request), lambda answer: answer.deleted)

    def delete_images(self, product_id: str, image_ids: Iterable[str],
                      product_set: str = "") -> int:
        request = pb.DeleteImagesRequest(product_id=product_id, image_ids=list(image_ids),
                                         product_set=product_set)
        return self._then(self._call("DeleteImages", request), lambda answer: answer.deleted)

    def stats(self, product_set: str = "") -> pb.Stats:
        return self._call("GetStats", pb.GetStatsRequest(product_set=product_set))

    def product(self, product_id: str, product_set: str = "") -> pb.Product:
        return self._call("GetProduct", pb.GetProductRequest(product_id=product_id,
                                                             product_set=product_set))

    def list_products(self, product_set: str = "", categories: Iterable[str] = (),
                      labels: Iterable[str] = (), page_size: int = 0,
                      page_token: str = "") -> pb.ListProductsResponse:
        """One page; `products()` walks them all."""
        return self._call("ListProducts", pb.ListProductsRequest(
            product_set=product_set, filter=pb.Filter(categories=categories, labels=labels),
            page_size=page_size, page_token=page_token))

    def update_product(self, product_id: str, product_set: str = "", *,
                       category: str | None = None, title: str | None = None,
                       labels: Iterable[str] | None = None,
                       description: str | None = None) -> pb.Product:
        """Only the fields given change, on all the product's images; nothing is re-embedded."""
        return self._call("UpdateProduct", update_request(
            product_id, product_set, category=category, title=title, labels=labels,
            description=description))


class Client(_Calls):
    """tls: use TLS (with the system's CAs, or tls_ca: a PEM file of the CA to trust).
    api_key: sent as x-api-key with every call; timeout_s: the deadline of each call."""

    def __init__(self, target: str = "localhost:50051", timeout_s: float = 30.0,
                 api_key: str = "", tls: bool = False, tls_ca: str = "") -> None:
        super().__init__(grpc, target, timeout_s, api_key, tls, tls_ca)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def wait_job(self, job_id: str, timeout_s: float = 3600, poll_s: float = 0.5) -> pb.Job:
        deadline = time.monotonic() + timeout_s
        while (job := self.job(job_id)).state != pb.Job.DONE:
            _check_waiting(job, deadline, timeout_s)
            time.sleep(poll_s)
        return job

    def products(self, product_set: str = "", categories: Iterable[str] = (),
                 labels: Iterable[str] = (), page_size: int = 500) -> Iterator[pb.Product]:
        """Every product of the set (matching the filter), by id, page after page."""
        token = ""
        while True:
            page = self.list_products(product_set, categories, labels, page_size, token)
            yield from page.products
            if not (token := page.next_page_token):
                return

    def healthy(self, timeout_s: float = 2.0) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING


def _check_waiting(job: pb.Job, deadline: float, timeout_s: float) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"job {job.job_id} not done after {timeout_s:.0f} s: "
                           f"{job.done + job.failed}/{job.total}")


class AsyncClient(_Calls):
    """The same calls for asyncio code (grpc.aio): `async with AsyncClient(...) as c:`, then
    `await c.search(...)`; `products()` is an async iterator."""

    def __init__(self, target: str = "localhost:50051", timeout_s: float = 30.0,
                 api_key: str = "", tls: bool = False, tls_ca: str = "") -> None:
        super().__init__(grpc.aio, target, timeout_s, api_key, tls, tls_ca)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _then(self, answer, then):  # type: ignore[override]
        return then(await answer)

    async def wait_job(self, job_id: str, timeout_s: float = 3600,
                       poll_s: float = 0.5) -> pb.Job:
        deadline = time.monotonic() + timeout_s
        while (job := await self.job(job_id)).state != pb.Job.DONE:
            _check_waiting(job, deadline, timeout_s)
            await asyncio.sleep(poll_s)
        return job

    async def products(self, product_set: str = "", categories: Iterable[str] = (),
                       labels: Iterable[str] = (), page_size: int = 500
                       ) -> AsyncIterator[pb.Product]:
        token = ""
        while True:
            page = await self.list_products(product_set, categories, labels, page_size, token)
            for product in page.products:
                yield product
            if not (token := page.next_page_token):
                return

    async def healthy(self, timeout_s: float = 2.0) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=""),
                                      timeout=timeout_s)
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING
