"""The gRPC server: interceptors in order (metrics, keys, stream budget, size guard, errors
to status codes), health and reflection, TLS, and the listening port."""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lookalike.api import access
from lookalike.api.interceptors import ErrorStatus, MetricsInterceptor, RequestGuard, StreamBudget
from lookalike.api.servicer import LookalikeServicer
from lookalike.config import ConfigError, Settings
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Lookalike"].full_name


def build_server(settings: Settings,
                 servicer: LookalikeServicer) -> tuple[grpc.Server, int, health.HealthServicer]:
    """The gRPC server around a servicer: every interceptor, health, reflection, TLS."""
    guard = RequestGuard({"Search": settings.max_search_bytes,
                          "SubmitIngest": settings.max_ingest_bytes})
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        interceptors=[MetricsInterceptor(), *access.interceptors(settings),
                      StreamBudget(settings.max_streams, settings.stream_lifetime_s), guard,
                      ErrorStatus()],
        options=[("grpc.max_receive_message_length",
                  max(settings.max_ingest_bytes, settings.max_search_bytes)),
                 ("grpc.max_send_message_length", settings.max_ingest_bytes),
                 # gRPC shares a port in use by default (SO_REUSEPORT): a second service on
                 # the same address must fail, not take half the connections.
                 ("grpc.so_reuseport", 0)],
    )
    pb_grpc.add_LookalikeServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    credentials = access.server_credentials(settings)
    try:
        port = (server.add_secure_port(settings.listen, credentials) if credentials
                else server.add_insecure_port(settings.listen))
    except RuntimeError:
        port = 0
    if not port:
        raise ConfigError(f"cannot listen on {settings.listen}: is another service using it? "
                          "Set LOOKALIKE_LISTEN")
    return server, port, health_servicer
