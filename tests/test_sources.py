"""Ingest by reference stays inside the configured roots and off the internal network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lookalike.sources import FetchError, fetch


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
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/secret")
            self.end_headers()
            return
        body = b"x" * (5000 if self.path == "/big" else 10)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_loopback_urls_are_refused_unless_allowed(http_server: str) -> None:
    with pytest.raises(FetchError, match="127.0.0.1, a loopback/private/link-local address"):
        fetch(f"{http_server}/a.jpg", 100, 2)
    assert fetch(f"{http_server}/a.jpg", 100, 2, allow_private=True) == b"x" * 10


def test_size_limit_and_http_errors(http_server: str) -> None:
    with pytest.raises(FetchError, match="larger than the 1,000 byte limit"):
        fetch(f"{http_server}/big", 1000, 2, allow_private=True)


def test_redirects_are_checked_hop_by_hop(http_server: str, monkeypatch) -> None:
    import lookalike.sources as sources

    seen = []
    original = sources._check_host

    def spy(url: str, allow_private: bool) -> None:
        seen.append(url)
        original(url, allow_private)

    monkeypatch.setattr(sources, "_check_host", spy)
    with pytest.raises(FetchError, match="failed"):  # the hop goes to a closed port
        fetch(f"{http_server}/redirect", 100, 2, allow_private=True)
    assert seen == [f"{http_server}/redirect", "http://127.0.0.1:1/secret"]
