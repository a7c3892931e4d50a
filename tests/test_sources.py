"""Ingest by reference stays inside the configured roots and off the internal network."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lookalike.pipeline import sources
from lookalike.pipeline.sources import FetchError, check_uri, fetch, redact


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    inside, outside = tmp_path / "catalogue", tmp_path / "secret"
    inside.mkdir(), outside.mkdir()
    (inside / "shoe.jpg").write_bytes(b"shoe")
    (outside / "passwd").write_bytes(b"root:x:0:0")
    (inside / "link.jpg").symlink_to(outside / "passwd")
    return inside, outside


def test_paths_inside_the_roots_are_read(roots) -> None:
    inside, _ = roots
    assert fetch(str(inside / "shoe.jpg"), 100, 1, roots=[inside]) == b"shoe"
    assert fetch(f"file://{inside}/shoe.jpg", 100, 1, roots=[inside]) == b"shoe"


@pytest.mark.parametrize("escape", ["../secret/passwd", "link.jpg"])
def test_dotdot_and_symlink_escapes_are_refused(roots, escape: str) -> None:
    inside, _ = roots
    with pytest.raises(FetchError, match="outside the ingest roots"):
        fetch(str(inside / escape), 100, 1, roots=[inside])


def test_no_roots_means_no_paths(roots) -> None:
    inside, _ = roots
    with pytest.raises(FetchError, match="none configured"):
        fetch(str(inside / "shoe.jpg"), 100, 1, roots=[])


def test_other_schemes_are_refused() -> None:
    with pytest.raises(FetchError, match="unsupported URI scheme 'ftp'"):
        fetch("ftp://example.com/a.jpg", 100, 1)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/redirect":  # to another loopback address of this machine
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_port}/a.jpg")
            self.end_headers()
            return
        if self.path == "/trickle":  # one header line every 0.4 s, for ever
            self.send_response(200)
            for i in range(100):
                self.send_header(f"X-Slow-{i}", "1")
                self.wfile.write(self._headers_buffer.pop())
                self.wfile.flush()
                time.sleep(0.4)
            return
        body = self.server.body * (500 if self.path == "/big" else 1)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def _serve(host: str, port: int, body: bytes) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Handler)
    server.body = body  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def http_server() -> Iterator[str]:
    server = _serve("127.0.0.1", 0, b"x" * 10)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def only_127_0_0_1_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test servers stand for a public host on 127.0.0.1; every other address is private."""
    monkeypatch.setattr(sources, "is_public",
                        lambda address: address == ipaddress.ip_address("127.0.0.1"))


def test_loopback_urls_are_refused_unless_allowed(http_server: str) -> None:
    with pytest.raises(FetchError, match="127.0.0.1, a loopback/private/link-local address"):
        fetch(f"{http_server}/a.jpg", 100, 2)
    assert fetch(f"{http_server}/a.jpg", 100, 2, allow_private=True) == b"x" * 10


def test_size_limit_and_http_errors(http_server: str) -> None:
    with pytest.raises(FetchError, match="larger than the 1,000 byte limit"):
        fetch(f"{http_server}/big", 1000, 2, allow_private=True)


def test_redirects_are_checked_hop_by_hop(http_server: str, only_127_0_0_1_is_public) -> None:
    assert fetch(f"{http_server}/a.jpg", 100, 2) == b"x" * 10  # the "public" host is fetched
    with pytest.raises(FetchError, match="resolves to 127.0.0.2, a loopback/private"):
        fetch(f"{http_server}/redirect", 100, 2)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::127.0.0.1",
    "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "224.0.0.1", "ff02::1",
])
def test_private_and_embedded_ipv4_addresses_are_not_public(address: str) -> None:
    assert not sources.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946",
                                     "64:ff9b::5db8:d822"])  # NAT64 of a public IPv4: allowed
def test_public_addresses_are_public(address: str) -> None:
    assert sources.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1",
                                  "[::ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]",
                                  "localhost"])
def test_encoded_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(FetchError, match="a loopback/private/link-local address"):
        fetch(f"http://{host}:1/a.jpg", 100, 2)


def test_dns_rebinding_cannot_steer_the_connection(http_server: str, only_127_0_0_1_is_public,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The first DNS answer is public, later ones point inwards: the fetch must connect to the
    address that was checked, so it gets the public server's bytes, never the internal one's."""
    port = int(http_server.rsplit(":", 1)[1])
    internal = _serve("127.0.0.2", port, b"internal secret")
    real, answers = socket.getaddrinfo, iter(["127.0.0.1"])

    def rebinding(host, *args, **kwargs):
        if host != "images.test":
            return real(host, *args, **kwargs)
        address = next(answers, "127.0.0.2")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        assert fetch(f"http://images.test:{port}/a.jpg", 100, 2) == b"x" * 10
    finally:
        internal.shutdown()


def test_one_deadline_for_the_whole_fetch(http_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 1.5 s"):
        fetch(f"{http_server}/trickle", 100, 1.5, allow_private=True)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("uri, reason", [
    ("http://..example/x.jpg", "invalid host name"),
    ("http://[::1/x.jpg", "malformed URI"),
    (f"http://{'a' * 64}.example/x.jpg", "invalid host name"),
    ("/catalogue/shoe\x00.jpg", "control characters"),
    ("http://example.com:99999/x.jpg", "malformed URI"),
    ("gs://bucket/x.jpg", "unsupported URI scheme 'gs'"),
    ("http:///x.jpg", "no host"),
    ("http://example.com/" + "a" * 3000, "at most 2,048"),
])
def test_malformed_references_are_fetch_errors(uri: str, reason: str) -> None:
    for call in (lambda: check_uri(uri), lambda: fetch(uri, 100, 1)):
        with pytest.raises(FetchError, match=reason):
            call()


def test_urls_in_messages_carry_no_credentials() -> None:
    assert redact("https://user:pass@cdn.example/a.jpg?X-Amz-Signature=abc") == (
        "https://cdn.example/a.jpg?…")
    with pytest.raises(FetchError) as err:
        fetch("http://user:pass@127.0.0.1:1/a.jpg?sig=abc", 100, 1)
    assert "pass" not in str(err.value) and "sig=abc" not in str(err.value)
