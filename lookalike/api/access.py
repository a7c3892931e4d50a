"""Who may call what: API keys in the `x-api-key` metadata, read and write rights.

Health checks stay open (Kubernetes probes need them); reflection needs a read key.
A refused call is answered before its request is read: a caller without a key cannot
make the service receive a large message.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from lookalike.config import ConfigError, Settings

__all__ = ["ConfigError", "interceptors", "server_credentials"]

# Anything not named a read needs a write key: a new RPC is closed until it is listed here.
READ_METHODS = frozenset({"Search", "GetJob", "GetStats", "GetProduct", "ListProducts",
                          "Recommend", "FindDuplicates", "DetectCopy"})
SERVICE_PREFIX = "/lookalike.v1.Lookalike/"
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/",
                       "/grpc.reflection.v1.ServerReflection/")
MIN_KEY_CHARS = 16
# Values that templates and examples use: a service configured with one was not configured.
PLACEHOLDERS = ("change", "replace", "example", "secret", "password", "xxxx", "todo", "your")


def _known(key: str, keys: list[str]) -> bool:
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, read_keys: list[str], write_keys: list[str]) -> None:
        self.read_keys, self.write_keys = read_keys + write_keys, write_keys

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith(REFLECTION_PREFIXES):
            method = "reflection"
        elif details.method.startswith(SERVICE_PREFIX):
            method = details.method[len(SERVICE_PREFIX):]
        else:
            return continuation(details)  # health
        key = dict(details.invocation_metadata or ()).get("x-api-key", "")
        if not key:
            return _deny(grpc.StatusCode.UNAUTHENTICATED,
                         "missing API key: send it in the x-api-key metadata")
        needed = self.read_keys if method in READ_METHODS or method == "reflection" \
            else self.write_keys
        if not _known(key, needed):
            if _known(key, self.read_keys):
                return _deny(grpc.StatusCode.PERMISSION_DENIED,
                             f"this API key may read but not call {method}")
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")
        return continuation(details)


def _deny(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    # A request-streaming handler is called before any message arrives, and never reads one:
    # the status goes out at once and gRPC drops the rest of the request.
    def handler(requests: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return grpc.stream_unary_rpc_method_handler(handler)


def _check_keys(settings: Settings) -> None:
    for name, keys in (("LOOKALIKE_READ_KEYS", settings.read_key_list),
                       ("LOOKALIKE_WRITE_KEYS", settings.write_key_list)):
        for number, key in enumerate(keys, start=1):
            if len(key) < MIN_KEY_CHARS:
                raise ConfigError(f"{name}: key {number} has {len(key)} characters; at least "
                                  f"{MIN_KEY_CHARS} (e.g. `openssl rand -hex 24`)")
            if any(word in key.lower() for word in PLACEHOLDERS):
                raise ConfigError(f"{name}: key {number} looks like a placeholder; generate one "
                                  "(e.g. `openssl rand -hex 24`)")


def interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
    if settings.auth == "none":
        return []
    if not settings.read_key_list and not settings.write_key_list:
        raise ConfigError(
            "no API keys configured: set LOOKALIKE_WRITE_KEYS (and LOOKALIKE_READ_KEYS), or "
            "LOOKALIKE_AUTH=none for local use without authentication")
    _check_keys(settings)
    return [ApiKeyInterceptor(settings.read_key_list, settings.write_key_list)]


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not (settings.tls_cert or settings.tls_key):
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("TLS needs both LOOKALIKE_TLS_CERT and LOOKALIKE_TLS_KEY")
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])
