"""The gRPC query service: Search, SubmitIngest, GetJob, DeleteProducts, GetStats.

Every image arriving here is untrusted: anything that cannot be decoded or is not
acceptable is answered with INVALID_ARGUMENT and a message saying what is wrong.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lookalike import access, runtime
from lookalike.config import ConfigError, Settings, get_settings
from lookalike.embedding import QueryBatcher
from lookalike.imaging import Limits, decode
from lookalike.ingest import ItemMessage
from lookalike.interceptors import (
    ErrorStatus,
    InvalidArgument,
    MetricsInterceptor,
    NotFound,
    RequestGuard,
    StreamBudget,
)
from lookalike.jobs import JobStore
from lookalike.observability import SEARCHES_ABANDONED, stage, start_metrics
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc
from lookalike.validation import check_filter, check_job_id, check_product_ids, item_message

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Lookalike"].full_name


class LookalikeServicer(pb_grpc.LookalikeServicer):
    """Errors become status codes in one place (interceptors.ErrorStatus)."""

    def __init__(self, settings: Settings, jobs: JobStore) -> None:
        self.settings, self.jobs = settings, jobs
        self.embedder, self.store = runtime.embedder(), runtime.store()
        self.batcher = QueryBatcher(self.embedder, settings.query_batch)

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        started = time.perf_counter()
        top_k = request.top_k or self.settings.default_top_k
        if top_k > self.settings.max_top_k:
            raise InvalidArgument(f"top_k is {top_k}; at most {self.settings.max_top_k}")
        if not math.isfinite(request.min_score) or not -1.0 <= request.min_score <= 1.0:
            raise InvalidArgument(f"min_score is {request.min_score}; cosine scores lie in [-1, 1]")
        categories, labels = list(request.filter.categories), list(request.filter.labels)
        check_filter(categories, labels)
        with stage("decode"):
            pixels = decode(request.image, Limits.of(self.settings), self.embedder.side)
        if not context.is_active():  # the caller gave up (deadline, cancel): skip the CNN
            SEARCHES_ABANDONED.inc()
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before embedding")
        with stage("embed"):
            vector = self.batcher.embed_query(pixels)
        with stage("search"):
            matches = self.store.search(vector, top_k, categories, labels,
                                        request.min_score or None)
        return pb.SearchResponse(
            matches=[pb.Match(product_id=m.product_id, score=m.score, image_id=m.image_id,
                              category=m.category, title=m.title, labels=m.labels,
                              source=m.source) for m in matches],
            model=self.embedder.model_id,
            server_ms=(time.perf_counter() - started) * 1000,
        )

    def SubmitIngest(self, request: pb.SubmitIngestRequest,
                     context: grpc.ServicerContext) -> pb.SubmitIngestResponse:
        from lookalike.worker import dispatch  # the Celery app, only when a job is submitted

        if not request.items:
            raise InvalidArgument("no items to ingest")
        if len(request.items) > self.settings.max_ingest_items:
            raise InvalidArgument(f"{len(request.items):,} items; at most "
                                  f"{self.settings.max_ingest_items:,} per call")
        # Nothing is acknowledged to the caller before it is queued: resubmitting is safe.
        job_id = self.jobs.create(len(request.items))
        queued: list[ItemMessage] = []
        for index, item in enumerate(request.items):
            message = item_message(index, item)
            if isinstance(message, str):
                self.jobs.record_failure(job_id, index, item.product_id[:256],
                                         item.image_id[:256], message)
            else:
                queued.append(message)
        dispatch(job_id, queued, self.settings.chunk_size)
        log.info("job %s: %d items queued, %d refused", job_id, len(queued),
                 len(request.items) - len(queued))
        return pb.SubmitIngestResponse(job_id=job_id, total=len(request.items))

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.Job:
        check_job_id(request.job_id)
        report = self.jobs.get(request.job_id)
        if report is None:
            raise NotFound(f"no job {request.job_id!r} (job reports are kept "
                           f"{self.settings.job_ttl_s // 3600} h)")
        return pb.Job(
            job_id=report.job_id, state=pb.Job.State.Value(report.state.value),
            total=report.total, done=report.done, failed=report.failed,
            failures=[pb.ItemFailure(index=f.index, product_id=f.product_id,
                                     image_id=f.image_id, reason=f.reason)
                      for f in report.failures],
        )

    def DeleteProducts(self, request: pb.DeleteProductsRequest,
                       context: grpc.ServicerContext) -> pb.DeleteProductsResponse:
        check_product_ids(list(request.product_ids))
        return pb.DeleteProductsResponse(deleted=self.store.delete_products(list(request.product_ids)))

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        points, products = self.store.stats()
        return pb.Stats(points=points, products=products,
                        model_name=self.embedder.name, model_version=self.embedder.version,
                        vector_size=self.embedder.dim, collection=self.store.collection)


def build_server(settings: Settings) -> tuple[grpc.Server, int, health.HealthServicer]:
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
    pb_grpc.add_LookalikeServicer_to_server(LookalikeServicer(settings, runtime.jobs()), server)
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


def serve(all_in_one: bool | None = None) -> None:
    """Run the query service; with the embedded store, also the worker, in this process."""
    settings = get_settings()
    all_in_one = settings.embedded if all_in_one is None else all_in_one
    access.interceptors(settings), access.server_credentials(settings)  # fail fast on bad config
    runtime.backend()  # an embedded store is locked to this process before anything else starts
    runtime.embedder().warmup()
    start_metrics(settings.metrics_port, settings.redis_dsn, settings.ingest_queue,
                  runtime.embedder().model_id, settings.metrics_address)
    server, port, health_servicer = build_server(settings)
    server.start()
    if settings.embedded and settings.index_check_s > 0:
        runtime.store().index_in_background(settings.index_check_s)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("lookalike query service listening on port %d (model %s, store %s)", port,
             runtime.embedder().model_id,
             settings.qdrant_url or f"embedded at {settings.data_dir}")
    try:
        if all_in_one:
            from lookalike.worker import run_worker

            run_worker(hostname=f"embedded@{socket.gethostname()}")  # blocks until SIGTERM/SIGINT
        else:
            stop = lambda *_: server.stop(grace=10)  # noqa: E731
            signal.signal(signal.SIGTERM, stop)
            server.wait_for_termination()
    finally:
        health_servicer.enter_graceful_shutdown()
        server.stop(grace=5).wait()
        runtime.store().close()
