"""Fetch the bytes of an ingest item given by reference: a path, file://, http(s)://.

Requests arrive from the network, so references are confined: paths must resolve
(after symlinks) inside the configured ingest roots, and URLs may not point at
loopback, private or link-local addresses unless explicitly allowed (otherwise a
caller could make the worker read the host's files or probe the internal network).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx

MAX_REDIRECTS = 3


class FetchError(ValueError):
    """The reference could not or may not be read; the message says why."""


def fetch(uri: str, max_bytes: int, timeout_s: float, roots: list[Path] | None = None,
          allow_private: bool = False) -> bytes:
    """roots=None: any path (trusted callers, e.g. the operator's CLI); [] : no paths."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _fetch_http(uri, max_bytes, timeout_s, allow_private)
    if parsed.scheme == "file":
        return _read_file(Path(unquote(parsed.path)), max_bytes, roots)
    if parsed.scheme == "":
        return _read_file(Path(uri), max_bytes, roots)
    raise FetchError(f"unsupported URI scheme {parsed.scheme!r}: use a path, file://, http(s)://")


def _read_file(path: Path, max_bytes: int, roots: list[Path] | None) -> bytes:
    if roots is not None:
        real = path.resolve()  # follows symlinks and '..'
        if not any(real.is_relative_to(root) for root in roots):
            where = ", ".join(map(str, roots)) or "none configured (LOOKALIKE_INGEST_ROOTS)"
            raise FetchError(f"{path} is outside the ingest roots ({where})")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError(f"{path} is {size:,} bytes; the limit is {max_bytes:,}")
        return path.read_bytes()
    except FileNotFoundError:
        raise FetchError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise FetchError(f"{path} is a directory, not an image") from None
    except PermissionError:
        raise FetchError(f"permission denied reading {path}") from None


def _check_host(url: str, allow_private: bool) -> None:
    host = urlparse(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {host!r}: {exc.strerror}") from None
    if allow_private:
        return
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if not address.is_global or address.is_multicast:
            raise FetchError(f"{host} resolves to {address}, a loopback/private/link-local "
                             "address; set LOOKALIKE_ALLOW_PRIVATE_URLS=true to allow it")


def _fetch_http(url: str, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                _check_host(url, allow_private)  # every hop: a redirect may point inwards
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["location"])
                        if urlparse(url).scheme not in ("http", "https"):
                            raise FetchError(f"redirect to a non-http(s) URL: {url}")
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"GET {url} answered HTTP {response.status_code}")
                    body = bytearray()
                    for part in response.iter_bytes():
                        body += part
                        if len(body) > max_bytes:
                            raise FetchError(f"{url} is larger than the {max_bytes:,} byte limit")
                        if time.monotonic() > deadline:
                            raise FetchError(f"GET {url} took longer than {timeout_s:g} s")
                    return bytes(body)
            raise FetchError(f"GET {url}: more than {MAX_REDIRECTS} redirects")
    except httpx.HTTPError as exc:
        raise FetchError(f"GET {url} failed: {exc}") from None
