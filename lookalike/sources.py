"""Fetch the bytes of an ingest item given by URI: a local path, file://, http(s)://."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx


class FetchError(ValueError):
    """The URI could not be read; the message says why."""


def fetch(uri: str, max_bytes: int, timeout_s: float) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _fetch_http(uri, max_bytes, timeout_s)
    if parsed.scheme == "file":
        return _read_file(Path(unquote(parsed.path)), max_bytes)
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a plain path (or a Windows drive)
        return _read_file(Path(uri), max_bytes)
    raise FetchError(f"unsupported URI scheme {parsed.scheme!r}: use a path, file://, http(s)://")


def _read_file(path: Path, max_bytes: int) -> bytes:
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


def _fetch_http(url: str, max_bytes: int, timeout_s: float) -> bytes:
    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FetchError(f"GET {url} answered HTTP {response.status_code}")
            body = bytearray()
            for part in response.iter_bytes():
                body += part
                if len(body) > max_bytes:
                    raise FetchError(f"{url} is larger than the {max_bytes:,} byte limit")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise FetchError(f"GET {url} failed: {exc}") from None
