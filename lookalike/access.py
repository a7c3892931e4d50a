"""Who may call what: API keys in the `x-api-key` metadata, read and write rights.

Health checks and reflection stay open (Kubernetes probes and grpcurl need them).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from lookalike.config import Settings

WRITE_METHODS = frozenset({"SubmitIngest", "DeleteProducts"})
READ_METHODS = frozenset({"Search", "GetJob", "GetStats"})
SERVICE_PREFIX = "/lookalike.v1.Lookalike/"


class ConfigError(ValueError):
    """The service cannot start with these settings."""


def _known(key: str, keys: list[str]) -> bool:
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, read_keys: list[str], write_keys: list[str]) -> None:
        self.read_keys, self.write_keys = read_keys + write_keys, write_keys

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        if not details.method.startswith(SERVICE_PREFIX):
            return continuation(details)  # health, reflection
        method = details.method[len(SERVICE_PREFIX):]
        key = dict(details.invocation_metadata or ()).get("x-api-key", "")
        if not key:
            return _deny(grpc.StatusCode.UNAUTHENTICATED,
                         "missing API key: send it in the x-api-key metadata")
        needed = self.write_keys if method in WRITE_METHODS else self.read_keys
        if not _known(key, needed):
            if _known(key, self.read_keys):
                return _deny(grpc.StatusCode.PERMISSION_DENIED,
                             f"this API key may search but not call {method}")
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")
        return continuation(details)


def _deny(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(handler)


def interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
    if settings.auth == "none":
        return []
    if not settings.read_key_list and not settings.write_key_list:
        raise ConfigError(
            "no API keys configured: set LOOKALIKE_WRITE_KEYS (and LOOKALIKE_READ_KEYS), or "
            "LOOKALIKE_AUTH=none for local use without authentication")
    return [ApiKeyInterceptor(settings.read_key_list, settings.write_key_list)]


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not (settings.tls_cert or settings.tls_key):
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("TLS needs both LOOKALIKE_TLS_CERT and LOOKALIKE_TLS_KEY")
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])
