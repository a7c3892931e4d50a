"""The gRPC query service: Search, SubmitIngest, GetJob, DeleteProducts, GetStats.

Every image arriving here is untrusted: anything that cannot be decoded or is not
acceptable is answered with INVALID_ARGUMENT and a message saying what is wrong.
"""

from __future__ import annotations

import hashlib
import logging
import math
import signal
import socket
import time
from concurrent import futures

import grpc
import redis
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from kombu.exceptions import OperationalError

from lookalike import access, runtime
from lookalike.config import Settings, get_settings
from lookalike.embedding import QueryBatcher
from lookalike.imaging import ImageRejected, decode
from lookalike.ingest import ItemMessage, limits
from lookalike.jobs import JobStore
from lookalike.observability import MetricsInterceptor, stage, start_metrics
from lookalike.store import ModelMismatch, StoreUnavailable
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Lookalike"].full_name


def item_message(index: int, item: pb.IngestItem) -> ItemMessage | str:
    """The queue message for one item, or why the item is refused outright."""
    if not item.product_id:
        return "product_id is empty"
    message = ItemMessage(index=index, product_id=item.product_id, category=item.category,
                          title=item.title, labels=list(item.labels))
    content = item.WhichOneof("content")
    if content == "image":
        message["image"] = item.image
        message["image_id"] = item.image_id or hashlib.sha1(item.image).hexdigest()[:16]
        message["source"] = item.source or "upload"
    elif content == "uri":
        message["uri"] = item.uri
        message["image_id"] = item.image_id or item.uri
        message["source"] = item.source or item.uri
    else:
        return "neither image bytes nor uri given"
    return message


class LookalikeServicer(pb_grpc.LookalikeServicer):
    def __init__(self, settings: Settings, jobs: JobStore) -> None:
        self.settings, self.jobs = settings, jobs
        self.embedder, self.store = runtime.embedder(), runtime.store()
        self.batcher = QueryBatcher(self.embedder, settings.query_batch)

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        started = time.perf_counter()
        if request.ByteSize() > self.settings.max_search_bytes:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"search request is {request.ByteSize():,} bytes; "
                          f"the limit is {self.settings.max_search_bytes:,}")
        top_k = request.top_k or self.settings.default_top_k
        if top_k > self.settings.max_top_k:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"top_k is {top_k}; at most {self.settings.max_top_k}")
        if not math.isfinite(request.min_score) or not -1.0 <= request.min_score <= 1.0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"min_score is {request.min_score}; cosine scores lie in [-1, 1]")
        try:
            with stage("decode"):
                pixels = decode(request.image, limits(self.settings), self.embedder.side)
        except ImageRejected as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"image rejected: {exc}")
        if not context.is_active():  # the caller gave up (deadline, cancel): skip the CNN
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before embedding")
        with stage("embed"):
            vector = self.batcher.embed_query(pixels)
        try:
            with stage("search"):
                matches = self.store.search(
                    vector, top_k, list(request.filter.categories), list(request.filter.labels),
                    request.min_score or None,
                )
        except ModelMismatch as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
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
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no items to ingest")
        try:
            job_id = self.jobs.create(len(request.items))
            queued: list[ItemMessage] = []
            for index, item in enumerate(request.items):
                message = item_message(index, item)
                if isinstance(message, str):
                    self.jobs.record_failure(job_id, index, item.product_id, item.image_id,
                                             message)
                else:
                    queued.append(message)
            dispatch(job_id, queued, self.settings.chunk_size)
        except (redis.RedisError, OperationalError) as exc:
            # Nothing is acknowledged to the caller: resubmitting is safe (idempotent ids).
            context.abort(grpc.StatusCode.UNAVAILABLE, f"ingest queue unavailable: {exc}")
        log.info("job %s: %d items queued, %d refused", job_id, len(queued),
                 len(request.items) - len(queued))
        return pb.SubmitIngestResponse(job_id=job_id, total=len(request.items))

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.Job:
        try:
            report = self.jobs.get(request.job_id)
        except redis.RedisError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"job store unavailable: {exc}")
        if report is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id!r}")
        return pb.Job(
            job_id=report.job_id, state=pb.Job.State.Value(report.state.value),
            total=report.total, done=report.done, failed=report.failed,
            failures=[pb.ItemFailure(index=f.index, product_id=f.product_id,
                                     image_id=f.image_id, reason=f.reason)
                      for f in report.failures],
        )

    def DeleteProducts(self, request: pb.DeleteProductsRequest,
                       context: grpc.ServicerContext) -> pb.DeleteProductsResponse:
        if not request.product_ids:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no product_ids given")
        return pb.DeleteProductsResponse(deleted=self.store.delete_products(list(request.product_ids)))

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        return pb.Stats(points=self.store.count(), products=self.store.count_products(),
                        model_name=self.embedder.name, model_version=self.embedder.version,
                        vector_size=self.embedder.dim, collection=self.store.collection)


class MalformedRequests(grpc.ServerInterceptor):
    """Bytes that are not the request message get INVALID_ARGUMENT, not gRPC's INTERNAL."""

    def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = continuation(details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse, inner, malformed = handler.request_deserializer, handler.unary_unary, object()

        def deserialize(data: bytes):
            try:
                return parse(data)
            except DecodeError:
                return malformed

        def call(request, context: grpc.ServicerContext):
            if request is malformed:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"malformed request: not a valid protobuf message for {details.method}")
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=deserialize,
            response_serializer=handler.response_serializer)


def build_server(settings: Settings) -> tuple[grpc.Server, int, health.HealthServicer]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        interceptors=[MetricsInterceptor(), *access.interceptors(settings), MalformedRequests()],
        options=[("grpc.max_receive_message_length", settings.max_ingest_bytes),
                 ("grpc.max_send_message_length", settings.max_ingest_bytes)],
    )
    pb_grpc.add_LookalikeServicer_to_server(LookalikeServicer(settings, runtime.jobs()), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    credentials = access.server_credentials(settings)
    port = (server.add_secure_port(settings.listen, credentials) if credentials
            else server.add_insecure_port(settings.listen))
    return server, port, health_servicer


def serve(all_in_one: bool | None = None) -> None:
    """Run the query service; with the embedded store, also the worker, in this process."""
    settings = get_settings()
    all_in_one = settings.embedded if all_in_one is None else all_in_one
    access.interceptors(settings), access.server_credentials(settings)  # fail fast on bad config
    runtime.embedder().warmup()
    start_metrics(settings.metrics_port, settings.redis_url, settings.ingest_queue,
                  runtime.embedder().model_id)
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
