"""Errors become status codes in one place, for every RPC: a real gRPC server on a free port
whose handlers raise what the store, the job store and the queue raise."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
import redis
from kombu.exceptions import OperationalError

from lookalike.api.interceptors import ErrorStatus, InvalidArgument, MetricsInterceptor, NotFound, RequestGuard
from lookalike.client import Client
from lookalike.imaging import ImageRejected
from lookalike.store import ModelMismatch, StoreUnavailable
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc

RAISED: list[BaseException] = []


class Raising(pb_grpc.LookalikeServicer):
    """Every call raises RAISED[0] (the client retries UNAVAILABLE: the same error again)."""

    def _raise(self, *_: object) -> None:
        raise RAISED[0]

    Search = SubmitIngest = GetJob = DeleteProducts = GetStats = _raise
    GetProduct = ListProducts = UpdateProduct = DeleteImages = _raise
    Recommend = FindDuplicates = DetectCopy = _raise


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[
        MetricsInterceptor(), RequestGuard({}), ErrorStatus()])
    pb_grpc.add_LookalikeServicer_to_server(Raising(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with Client(f"127.0.0.1:{port}", timeout_s=5) as c:
        # Without the client's retries of UNAVAILABLE: one call, one answer.
        c.channel = grpc.insecure_channel(c.target, options=[("grpc.enable_retries", 0)])
        c.stub = pb_grpc.LookalikeStub(c.channel)
        yield c
    server.stop(0)


CALLS = {
    "Search": lambda c: c.search(b"x"),
    "GetJob": lambda c: c.job("0" * 32),
    "DeleteProducts": lambda c: c.delete(["p"]),
    "GetStats": lambda c: c.stats(),
    "SubmitIngest": lambda c: c.submit([pb.IngestItem(product_id="p")]),
    "GetProduct": lambda c: c.product("p"),
    "ListProducts": lambda c: c.list_products(),
    "UpdateProduct": lambda c: c.update_product("p", title="t"),
    "DeleteImages": lambda c: c.delete_images("p", ["i"]),
    "Recommend": lambda c: c.recommend(["p"]),
    "FindDuplicates": lambda c: c.duplicates(),
    "DetectCopy": lambda c: c.detect_copy(b"x"),
}


def test_every_rpc_is_covered() -> None:
    assert set(CALLS) == set(pb.DESCRIPTOR.services_by_name["Lookalike"].methods_by_name)


@pytest.mark.parametrize("method", CALLS)
@pytest.mark.parametrize("error, code, text", [
    (ModelMismatch("catalogue 'lookalike' was built by model 'a@1'"),
     grpc.StatusCode.FAILED_PRECONDITION, "built by model"),
    (StoreUnavailable("vector store unavailable: refused"), grpc.StatusCode.UNAVAILABLE,
     "vector store unavailable"),
    (redis.ConnectionError("Connection refused"), grpc.StatusCode.UNAVAILABLE,
     "job store or ingest queue unavailable"),
    (OperationalError("broker down"), grpc.StatusCode.UNAVAILABLE, "ingest queue unavailable"),
    (ImageRejected("empty image: 0 bytes"), grpc.StatusCode.INVALID_ARGUMENT, "image rejected"),
    (InvalidArgument("top_k is 1000; at most 100"), grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
    (NotFound("no job"), grpc.StatusCode.NOT_FOUND, "no job"),
])
def test_every_rpc_maps_errors_the_same_way(client: Client, method: str, error: BaseException,
                                            code: grpc.StatusCode, text: str) -> None:
    RAISED[:] = [error]
    with pytest.raises(grpc.RpcError) as err:
        CALLS[method](client)
    assert err.value.code() == code and text in err.value.details()


def test_a_bug_is_unknown_and_the_server_goes_on(client: Client) -> None:
    RAISED[:] = [KeyError("bug")]
    with pytest.raises(grpc.RpcError) as err:
        client.stats()
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    RAISED[:] = [StoreUnavailable("down")]
    with pytest.raises(grpc.RpcError) as err:
        client.stats()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
