"""What every call goes through before and around its handler.

- RequestGuard: per-method size limits checked on the raw bytes, before anything is
  parsed; bytes that are not the request message get INVALID_ARGUMENT, not INTERNAL.
- StreamBudget: streaming calls (health Watch, reflection) hold a handler thread for as
  long as they stay open, so at most `max_streams` run at once and each is ended after
  `lifetime_s`: idle streams can never take the threads the API needs.
- ErrorStatus: the one place where errors become status codes, for every RPC.
- MetricsInterceptor: counts and times every call, refused ones included; gives each a
  request id (the caller's x-request-id, or a new one) for the log lines.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import redis
from google.protobuf.message import DecodeError
from kombu.exceptions import OperationalError

from lookalike.imaging import ImageRejected
from lookalike.observability import LATENCY, REQUESTS, context_id
from lookalike.store import ModelMismatch, StoreUnavailable

log = logging.getLogger(__name__)

_CONSTRUCTORS = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def rewrap(handler: grpc.RpcMethodHandler, wrap: Callable[[Callable], Callable],
           request_deserializer: Callable | None = None) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped (and optionally another deserializer)."""
    attribute, construct = _CONSTRUCTORS[(handler.request_streaming, handler.response_streaming)]
    return construct(wrap(getattr(handler, attribute)),
                     request_deserializer=request_deserializer or handler.request_deserializer,
                     response_serializer=handler.response_serializer)


class InvalidArgument(ValueError):
    """The request is not acceptable; the message says why (INVALID_ARGUMENT)."""


class NotFound(LookupError):
    """What the request names does not exist (NOT_FOUND)."""


class FailedPrecondition(RuntimeError):
    """The service is not set up for this request (FAILED_PRECONDITION)."""


class TooLarge(ValueError):
    """The request exceeds a size limit (RESOURCE_EXHAUSTED)."""


_REDIS_FIX = "start Redis or fix the service's REDIS_URL / REDIS_PASSWORD"
# Checked in order: the first class an exception is an instance of gives the status and the
# message ({} is the exception's).
STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode, str], ...] = (
    (TooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED, "{}"),
    (ImageRejected, grpc.StatusCode.INVALID_ARGUMENT, "image rejected: {}"),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "{}"),
    (NotFound, grpc.StatusCode.NOT_FOUND, "{}"),
    (ModelMismatch, grpc.StatusCode.FAILED_PRECONDITION, "{}"),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION, "{}"),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE, "{}"),
    (redis.RedisError, grpc.StatusCode.UNAVAILABLE, "job store or ingest queue unavailable: "
     f"the service cannot reach Redis ({{}}): {_REDIS_FIX}"),
    (OperationalError, grpc.StatusCode.UNAVAILABLE, "ingest queue unavailable: the service "
     f"cannot reach Redis, its Celery broker ({{}}): {_REDIS_FIX}"),
)
# An UNAVAILABLE of the service's own names the part behind it that is down in this trailing
# metadata: a client tells it from gRPC's own UNAVAILABLE (nothing answers at the address).
UNAVAILABLE_PART = "lookalike-unavailable"
PART_OF: tuple[tuple[type[BaseException], str], ...] = (
    (StoreUnavailable, "vector-store"), (redis.RedisError, "redis"), (OperationalError, "redis"))


class ErrorStatus(grpc.ServerInterceptor):
    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler

        def wrap(behaviour: Callable) -> Callable:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return behaviour(request, context)
                except tuple(kind for kind, _, _ in STATUS_OF) as exc:
                    code, message = next((c, m) for k, c, m in STATUS_OF if isinstance(exc, k))
                    part = next((p for k, p in PART_OF if isinstance(exc, k)), None)
                    if part:
                        context.set_trailing_metadata(((UNAVAILABLE_PART, part),))
                    context.abort(code, message.format(exc))
            return call

        return rewrap(handler, wrap)


class RequestGuard(grpc.ServerInterceptor):
    """limits: method name -> largest request in bytes; other methods get `default`."""

    def __init__(self, limits: dict[str, int], default: int = 1024 * 1024) -> None:
        self.limits, self.default = limits, default

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        limit = self.limits.get(details.method.rsplit("/", 1)[-1], self.default)
        parse, refused = handler.request_deserializer, object()
        reason: list[tuple[grpc.StatusCode, str]] = []

        def deserialize(data: bytes) -> Any:
            if len(data) > limit:  # before parsing: a huge message is never decoded
                reason.append((grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{details.method.rsplit('/', 1)[-1]} request is "
                               f"{len(data):,} bytes; the limit is {limit:,}"))
                return refused
            try:
                return parse(data)
            except DecodeError:
                reason.append((grpc.StatusCode.INVALID_ARGUMENT, "malformed request: not a "
                               f"valid protobuf message for {details.method}"))
                return refused

        if handler.request_streaming:  # reflection: gRPC answers INTERNAL for a refused message
            def checked(data: bytes) -> Any:
                if (request := deserialize(data)) is refused:
                    raise ValueError(reason[-1][1])
                return request
            return rewrap(handler, lambda behaviour: behaviour, checked)

        def wrap(behaviour: Callable) -> Callable:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                if request is refused:
                    context.abort(*reason[-1])
                return behaviour(request, context)
            return call

        return rewrap(handler, wrap, deserialize)


class StreamBudget(grpc.ServerInterceptor):
    def __init__(self, max_streams: int, lifetime_s: float) -> None:
        self.slots, self.lifetime_s = threading.BoundedSemaphore(max(1, max_streams)), lifetime_s

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler

        def admit(context: grpc.ServicerContext) -> threading.Timer:
            if not self.slots.acquire(blocking=False):
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              "too many streaming calls open; try again later")
            timer = threading.Timer(self.lifetime_s, context.cancel)  # frees the thread
            timer.daemon = True
            timer.start()
            return timer

        def leave(timer: threading.Timer) -> None:
            timer.cancel()
            self.slots.release()

        def wrap(behaviour: Callable) -> Callable:
            if handler.response_streaming:
                def stream(request: Any, context: grpc.ServicerContext) -> Any:
                    timer = admit(context)
                    try:
                        yield from behaviour(request, context)
                    finally:
                        leave(timer)
                return stream

            def call(request: Any, context: grpc.ServicerContext) -> Any:
                timer = admit(context)
                try:
                    return behaviour(request, context)
                finally:
                    leave(timer)
            return call

        return rewrap(handler, wrap)


class MetricsInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.response_streaming:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        request_id = dict(details.invocation_metadata or ()).get("x-request-id") or uuid.uuid4().hex

        def wrap(behaviour: Callable) -> Callable:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                token = context_id.set(request_id)
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    return behaviour(request, context)
                except Exception:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    LATENCY.labels(method).observe(time.perf_counter() - started)
                    REQUESTS.labels(method, code.name).inc()
                    context_id.reset(token)
            return call

        return rewrap(handler, wrap)
