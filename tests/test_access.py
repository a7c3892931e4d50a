"""Who may do what: API keys with read and write rights, TLS, and no start without either
keys or an explicit unauthenticated mode; what a caller without a key can make the service
hold (threads, received bytes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from lookalike.api.access import interceptors
from lookalike.client import Client
from lookalike.config import ConfigError, Settings
from lookalike.tools.local import local_service
from lookalike.v1 import lookalike_pb2 as pb

READER_1, READER_2 = "5b0e9d7c21a84f36b1c7e02d9a4f8c63", "c4a19e27d5b0f3a86e1d4c92b7f0a5e8"
WRITER = "e7d2c4b9a1f06385d2e9c7b4a0f1d6e3"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder / "cert.pem", folder / "key.pem", folder / "ca.pem"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, service_env: dict[str, str],
            ca) -> Iterator[tuple[str, str]]:
    cert, key, authority = ca
    env = {**service_env, "LOOKALIKE_AUTH": "keys", "LOOKALIKE_READ_KEYS": f"{READER_1}, {READER_2}",
           "LOOKALIKE_WRITE_KEYS": WRITER, "LOOKALIKE_TLS_CERT": str(cert),
           "LOOKALIKE_TLS_KEY": str(key), "LOOKALIKE_STREAM_LIFETIME_S": "4"}
    with local_service(tmp_path_factory.mktemp("secured"), env=env,
                       client_options={"tls_ca": str(authority)}) as target:
        yield target, str(authority)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_keys_grant_read_and_write(secured, sample: Path) -> None:
    target, authority = secured
    image = (sample / "catalogue" / "coffee-cup.png").read_bytes()
    item = pb.IngestItem(product_id="cup", image_id="a", image=image)
    with Client(target, tls_ca=authority) as anonymous:
        assert anonymous.healthy()  # probes need no key
        assert code_of(lambda: anonymous.search(image)) == grpc.StatusCode.UNAUTHENTICATED
    with Client(target, tls_ca=authority, api_key="wrong") as stranger:
        assert code_of(lambda: stranger.stats()) == grpc.StatusCode.UNAUTHENTICATED
    with Client(target, tls_ca=authority, api_key=READER_2) as reader:
        assert reader.search(image).matches == []
        assert code_of(lambda: reader.submit([item])) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: reader.delete(["cup"])) == grpc.StatusCode.PERMISSION_DENIED
    with Client(target, tls_ca=authority, api_key=WRITER) as writer:
        job_id = writer.submit([item])
        assert writer.wait_job(job_id, timeout_s=60).done == 1
        assert writer.search(image).matches[0].product_id == "cup"
    with Client(target, tls_ca=authority, api_key=READER_1) as reader:  # reads: job and stats
        assert reader.job(job_id).done == 1 and reader.stats().points == 1
        assert reader.product("cup").image_count == 1
        assert [p.product_id for p in reader.products()] == ["cup"]
        denied = grpc.StatusCode.PERMISSION_DENIED  # product writes need a write key
        assert code_of(lambda: reader.update_product("cup", title="x")) == denied
        assert code_of(lambda: reader.delete_images("cup", ["a"])) == denied
    with Client(target, tls_ca=authority, api_key=WRITER) as writer:
        assert writer.delete(["cup"]) == 1


def test_plaintext_client_cannot_talk_to_tls(secured) -> None:
    target, _ = secured
    with Client(target, api_key=READER_1, timeout_s=5) as plain:
        assert not plain.healthy()
        assert code_of(lambda: plain.stats()) == grpc.StatusCode.UNAVAILABLE


def test_no_keys_and_no_explicit_opt_out_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "LOOKALIKE_AUTH": "keys", "LOOKALIKE_READ_KEYS": "",
           "LOOKALIKE_WRITE_KEYS": "", "LOOKALIKE_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "lookalike", "serve"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no API keys configured" in result.stdout and "LOOKALIKE_AUTH=none" in result.stdout


@pytest.mark.parametrize("keys, reason", [
    ("short-key", "at least 16"),
    ("changeme-changeme-changeme", "placeholder"),
    ("REPLACE-ME-with-a-long-random-write-key", "placeholder"),
])
def test_weak_or_placeholder_keys_refuse_to_start(keys: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        interceptors(Settings(auth="keys", write_keys=f"{WRITER},{keys}"))
    assert interceptors(Settings(auth="keys", write_keys=WRITER, read_keys=READER_1))


def _blocked_requests(stop: threading.Event):
    stop.wait()
    yield from ()


def test_idle_streams_leave_search_and_health_fast(secured, sample: Path) -> None:
    """32 idle reflection streams without a key, 32 with one and 32 health watches used to hold
    every handler thread (8): a keyed call then timed out, and so did the health check."""
    target, authority = secured
    stop, streams = threading.Event(), []
    image = (sample / "catalogue" / "coffee-cup.png").read_bytes()
    with Client(target, tls_ca=authority) as anonymous, \
            Client(target, tls_ca=authority, api_key=READER_1) as reader:
        reflect = reflection_pb2_grpc.ServerReflectionStub(anonymous.channel)
        keyed_reflect = reflection_pb2_grpc.ServerReflectionStub(reader.channel)
        health = health_pb2_grpc.HealthStub(anonymous.channel)
        try:
            for _ in range(32):
                streams.append(reflect.ServerReflectionInfo(_blocked_requests(stop), timeout=60))
                streams.append(keyed_reflect.ServerReflectionInfo(
                    _blocked_requests(stop), timeout=60, metadata=reader.metadata))
                streams.append(health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60))
            time.sleep(1)  # let them all arrive and settle
            for call, expected in (
                (lambda: reader.stats(), None),
                (lambda: reader.search(image, top_k=1), None),
                (lambda: anonymous.healthy(timeout_s=2), True),
            ):
                started = time.monotonic()
                answer = call()
                assert time.monotonic() - started < 2, "an API call waited for idle streams"
                assert expected is None or answer == expected
        finally:
            stop.set()
            for call in streams:
                call.cancel()
        # Keyless reflection is refused at once: by the key check, or, on a loaded machine
        # where more than max_concurrent_rpcs calls are still being refused, by gRPC's own cap
        # (RESOURCE_EXHAUSTED). Never held open (CANCELLED at the end) or answered.
        codes = {call.code() for call in streams[0::3]}
        assert grpc.StatusCode.UNAUTHENTICATED in codes
        assert codes <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def test_a_stream_is_ended_after_its_lifetime(secured) -> None:
    target, authority = secured
    with Client(target, tls_ca=authority) as anonymous:
        watch = health_pb2_grpc.HealthStub(anonymous.channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=60)
        started = time.monotonic()
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            next(watch)  # the service ends it (LOOKALIKE_STREAM_LIFETIME_S=4 here)
        assert err.value.code() == grpc.StatusCode.CANCELLED
        assert time.monotonic() - started < 15


class SlowLink:
    """A TCP proxy on loopback that forwards the client's bytes at `rate` bytes/s."""

    def __init__(self, target: str, rate: int) -> None:
        self.target, self.rate = target.rsplit(":", 1), rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((self.target[0], int(self.target[1])))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while data := source.recv(16384):
                sink.sendall(data)
                if slow:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_a_keyless_request_is_refused_before_it_is_received(secured) -> None:
    """12 MiB at 2 MiB/s take 6 s to send: the refusal must come before that."""
    target, authority = secured
    link = SlowLink(target, 2 * 1024 * 1024)
    try:
        with Client(link.address, tls_ca=authority, timeout_s=30) as anonymous:
            assert anonymous.healthy(timeout_s=10)
            started = time.monotonic()
            assert code_of(lambda: anonymous.search(b"\xff\xd8" + bytes(12 * 1024 * 1024))) == (
                grpc.StatusCode.UNAUTHENTICATED)
            assert time.monotonic() - started < 3
    finally:
        link.close()


def test_requests_over_a_methods_limit_are_refused_unparsed(secured) -> None:
    target, authority = secured
    with Client(target, tls_ca=authority, api_key=READER_1) as reader:
        raw = reader.channel.unary_unary("/lookalike.v1.Lookalike/GetStats")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a" + bytes(2 * 1024 * 1024), timeout=10, metadata=reader.metadata)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "GetStats request is" in err.value.details()
