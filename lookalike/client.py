"""A small client for the query service: the CLI uses it, so can you.

    from lookalike.client import Client
    with Client("localhost:50051") as client:
        for match in client.search(open("photo.jpg", "rb").read(), top_k=5).matches:
            print(match.product_id, match.score)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
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
                   verify: str = "", per_object: bool = False) -> pb.SearchRequest:
    """verify: "auto", "off", "on", or "" for the server's default; per_object: also find each
    product in the photo (SearchResponse.objects)."""
    if verify not in VERIFY:
        raise ValueError(f"verify is {verify!r}; one of auto, off, on (or empty: the server's)")
    return pb.SearchRequest(image=image, top_k=top_k, min_score=min_score, verify=VERIFY[verify],
                            filter=pb.Filter(categories=categories, labels=labels),
                            per_object=per_object)


class Client:
    """tls: use TLS (with the system's CAs, or tls_ca: a PEM file of the CA to trust).
    api_key: sent as x-api-key with every call; timeout_s: the deadline of each call."""

    def __init__(self, target: str = "localhost:50051", timeout_s: float = 30.0,
                 api_key: str = "", tls: bool = False, tls_ca: str = "") -> None:
        self.target, self.timeout_s = target, timeout_s
        self.channel = _channel(grpc, target, tls, tls_ca)
        self.stub = pb_grpc.LookalikeStub(self.channel)
        self.metadata = (("x-api-key", api_key),) if api_key else ()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def search(self, image: bytes, top_k: int = 10, categories: Iterable[str] = (),
               labels: Iterable[str] = (), min_score: float = 0.0,
               verify: str = "", per_object: bool = False) -> pb.SearchResponse:
        request = search_request(image, top_k, categories, labels, min_score, verify, per_object)
        return self.stub.Search(request, timeout=self.timeout_s, metadata=self.metadata)

    def submit(self, items: list[pb.IngestItem]) -> str:
        return self.stub.SubmitIngest(pb.SubmitIngestRequest(items=items),
                                      timeout=self.timeout_s, metadata=self.metadata).job_id

    def job(self, job_id: str) -> pb.Job:
        return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout_s,
                                metadata=self.metadata)

    def wait_job(self, job_id: str, timeout_s: float = 3600, poll_s: float = 0.5) -> pb.Job:
        deadline = time.monotonic() + timeout_s
        while (job := self.job(job_id)).state != pb.Job.DONE:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not done after {timeout_s:.0f} s: "
                                   f"{job.done + job.failed}/{job.total}")
            time.sleep(poll_s)
        return job

    def delete(self, product_ids: Iterable[str]) -> int:
        request = pb.DeleteProductsRequest(product_ids=list(product_ids))
        return self.stub.DeleteProducts(request, timeout=self.timeout_s,
                                        metadata=self.metadata).deleted

    def stats(self) -> pb.Stats:
        return self.stub.GetStats(pb.GetStatsRequest(), timeout=self.timeout_s,
                                  metadata=self.metadata)

    def healthy(self, timeout_s: float = 2.0) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING


class AsyncClient:
    """The same calls for asyncio code (grpc.aio): `async with AsyncClient(...) as c:`."""

    def __init__(self, target: str = "localhost:50051", timeout_s: float = 30.0,
                 api_key: str = "", tls: bool = False, tls_ca: str = "") -> None:
        self.target, self.timeout_s = target, timeout_s
        self.channel = _channel(grpc.aio, target, tls, tls_ca)
        self.stub = pb_grpc.LookalikeStub(self.channel)
        self.metadata = (("x-api-key", api_key),) if api_key else ()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.channel.close()

    async def search(self, image: bytes, top_k: int = 10, categories: Iterable[str] = (),
                     labels: Iterable[str] = (), min_score: float = 0.0,
                     verify: str = "", per_object: bool = False) -> pb.SearchResponse:
        return await self.stub.Search(search_request(image, top_k, categories, labels, min_score,
                                                     verify, per_object),
                                      timeout=self.timeout_s, metadata=self.metadata)

    async def submit(self, items: list[pb.IngestItem]) -> str:
        response = await self.stub.SubmitIngest(pb.SubmitIngestRequest(items=items),
                                                timeout=self.timeout_s, metadata=self.metadata)
        return response.job_id

    async def job(self, job_id: str) -> pb.Job:
        return await self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout_s,
                                      metadata=self.metadata)

    async def stats(self) -> pb.Stats:
        return await self.stub.GetStats(pb.GetStatsRequest(), timeout=self.timeout_s,
                                        metadata=self.metadata)
