"""Fetch the bytes of an ingest item given by reference: a path, file://, http(s)://.

Requests arrive from the network, so references are confined: paths must resolve
(after symlinks) inside the configured ingest roots, and URLs may not reach loopback,
private or link-local addresses unless explicitly allowed (otherwise a caller could make
the worker read the host's files or probe the internal network).

How a URL is held to that:
- the host is resolved once, every address is checked, and the connection goes to the
  address that was checked (a DNS answer that changes between check and connect,
  "rebinding", cannot steer it inwards); IPv6 forms that embed an IPv4 address
  (`::ffff:a.b.c.d`, `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4, Teredo) are judged by that
  IPv4 address;
- every redirect hop goes through the same connect, so it is checked too;
- one wall-clock limit covers the whole fetch (connect, TLS, headers, body, redirects):
  every socket read or write may only wait for what is left of it;
- URLs in messages are redacted (no user:password, no query string: signed URLs carry
  their credentials there).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

import httpcore

MAX_REDIRECTS = 3
MAX_URI_CHARS = 2048
SCHEMES = ("http", "https", "file", "")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class FetchError(ValueError):
    """The reference could not or may not be read; the message says why."""


def redact(uri: str) -> str:
    """The URI without credentials: user:password and the query string are dropped."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<malformed URI>"
    if parts.scheme not in ("http", "https"):
        return uri
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def check_uri(uri: str) -> SplitResult:
    """Parse a reference or say why it is not one; nothing is read or resolved."""
    if len(uri) > MAX_URI_CHARS:
        raise FetchError(f"uri is {len(uri):,} characters; at most {MAX_URI_CHARS:,}")
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise FetchError("uri contains control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port  # parses it: raises on a bad port
    except ValueError as exc:
        raise FetchError(f"malformed URI {redact(uri)!r}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise FetchError(f"unsupported URI scheme {parts.scheme!r}: use a path, file:// or "
                         "http(s)://")
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        if not host:
            raise FetchError(f"no host in {redact(uri)!r}")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                host.encode("idna")  # empty labels, labels over 63 characters, bad characters
            except UnicodeError as exc:
                raise FetchError(f"invalid host name in {redact(uri)!r}: {exc}") from None
        if port == 0:
            raise FetchError(f"invalid port in {redact(uri)!r}")
    return parts


def fetch(uri: str, max_bytes: int, timeout_s: float, roots: Sequence[Path] = (),
          allow_private: bool = False) -> bytes:
    """The bytes a reference points at; roots: folders paths may resolve into (none: no paths)."""
    parts = check_uri(uri)
    if parts.scheme in ("http", "https"):
        return _fetch_http(uri, max_bytes, timeout_s, allow_private)
    return _read_file(Path(unquote(parts.path) if parts.scheme == "file" else uri), max_bytes,
                      roots)


def _read_file(path: Path, max_bytes: int, roots: Sequence[Path]) -> bytes:
    real = path.resolve()  # follows symlinks and '..'
    if not any(real.is_relative_to(root) for root in roots):
        where = ", ".join(map(str, roots)) or "none configured (LOOKALIKE_INGEST_ROOTS)"
        raise FetchError(f"{path} is outside the ingest roots ({where})")
    try:
        size = real.stat().st_size
        if size > max_bytes:
            raise FetchError(f"{path} is {size:,} bytes; the limit is {max_bytes:,}")
        return real.read_bytes()
    except FileNotFoundError:
        raise FetchError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise FetchError(f"{path} is a directory, not an image") from None
    except PermissionError:
        raise FetchError(f"permission denied reading {path}") from None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE
                                                 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast, and so is any IPv4 address an IPv6 form embeds."""
    if address.version == 6:
        embedded = _embedded_ipv4(address)  # type: ignore[arg-type]
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """Every address of host, each checked; raises FetchError naming the first refused one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host!r}: {getattr(exc, 'strerror', exc)}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for text in addresses:
            if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
                raise FetchError(f"{host} resolves to {text}, a loopback/private/link-local "
                                 "address; set LOOKALIKE_ALLOW_PRIVATE_URLS=true to allow it")
    return addresses


class _Deadline:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s, self.at = timeout_s, time.monotonic() + timeout_s

    def left(self, timeout: float | None) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout(f"took longer than {self.timeout_s:g} s")
        return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every wait is cut to what is left of the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self.inner, self.deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.deadline.left(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self.inner.start_tls(ssl_context, server_hostname, self.deadline.left(timeout))
        return _Stream(inner, self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _CheckedBackend(httpcore.NetworkBackend):
    """Connects to the address that was checked, never to a second DNS answer."""

    def __init__(self, allow_private: bool, deadline: _Deadline) -> None:
        self.inner, self.allow_private, self.deadline = httpcore.SyncBackend(), allow_private, deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None
                    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in resolve(host, port, self.allow_private):
            try:  # TLS still verifies `host`: httpcore passes it as the server name
                stream = self.inner.connect_tcp(address, port, self.deadline.left(timeout),
                                                local_address, socket_options)
                return _Stream(stream, self.deadline)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _fetch_http(url: str, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    deadline = _Deadline(timeout_s)
    per_call = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    try:
        with httpcore.ConnectionPool(network_backend=_CheckedBackend(allow_private, deadline),
                                     retries=0) as pool:
            for _ in range(MAX_REDIRECTS + 1):
                with pool.stream("GET", url, headers={"User-Agent": "lookalike"},
                                 extensions={"timeout": per_call}) as response:
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                               for k, v in response.headers}
                    if response.status in (301, 302, 303, 307, 308) and "location" in headers:
                        url = urljoin(url, headers["location"])
                        if check_uri(url).scheme not in ("http", "https"):
                            raise FetchError(f"redirect to a non-http(s) URL: {redact(url)}")
                        continue
                    if response.status != 200:
                        raise FetchError(f"GET {redact(url)} answered HTTP {response.status}")
                    if int(headers.get("content-length", "0") or 0) > max_bytes:
                        raise FetchError(f"{redact(url)} is larger than the {max_bytes:,} "
                                         "byte limit")
                    body = bytearray()
                    for part in response.iter_stream():
                        body += part
                        if len(body) > max_bytes:
                            raise FetchError(f"{redact(url)} is larger than the {max_bytes:,} "
                                             "byte limit")
                    return bytes(body)
            raise FetchError(f"GET {redact(url)}: more than {MAX_REDIRECTS} redirects")
    except httpcore.TimeoutException:
        raise FetchError(f"GET {redact(url)} took longer than {timeout_s:g} s") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
            ValueError) as exc:
        if isinstance(exc, FetchError):
            raise
        raise FetchError(f"GET {redact(url)} failed: {type(exc).__name__}: "
                         f"{str(exc)[:200]}") from None
