"""The Lookalike servicer: Search, SubmitIngest, GetJob, DeleteProducts, GetStats, and the
product RPCs (api/products.py).

Every image arriving here is untrusted: anything that cannot be decoded or is not
acceptable is answered with INVALID_ARGUMENT and a message saying what is wrong.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor

import grpc

from lookalike.api.copies import CopyRpcs
from lookalike.api.discovery import DiscoveryRpcs, match_message
from lookalike.api.interceptors import FailedPrecondition, InvalidArgument, NotFound
from lookalike.api.products import ProductRpcs
from lookalike.api.validation import (
    check_filter,
    check_job_id,
    check_product_ids,
    check_product_set,
    item_message,
)
from lookalike.config import Settings
from lookalike.imaging import ImageRejected, Limits, decode, probe
from lookalike.limits import MAX_SEARCH_TEXT_CHARS
from lookalike.model.base import EmbeddingModel
from lookalike.model.batcher import QueryBatcher
from lookalike.observability import SEARCHES_ABANDONED, stage
from lookalike.pipeline.jobs import JobStore
from lookalike.pipeline.queue import ChunkQueue, ItemMessage
from lookalike.store import CatalogueStore, Match
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.v1 import lookalike_pb2_grpc as pb_grpc
from lookalike.verify.features import LocalFeatures
from lookalike.verify.geometry import Evidence, VerifyParams
from lookalike.verify.objects import Found, find_objects
from lookalike.verify.rerank import Ranked, StageTwo, order, rerank, unpack_all

log = logging.getLogger(__name__)



_VERIFY_MODES = {pb.VERIFY_AUTO: "auto", pb.VERIFY_OFF: "off", pb.VERIFY_ON: "on"}


def _match(m: Match, ranked: Ranked, scale: float) -> pb.Match:
    """`scale`: sent / decoded pixels (a large JPEG is decoded reduced), for the polygon."""
    evidence = ranked.evidence
    return match_message(m, inliers=evidence.inliers, verified=evidence.verified,
                         polygon=[pb.Point(x=x * scale, y=y * scale) for x, y in evidence.polygon],
                         stage1_rank=ranked.index + 1)


def _object(found: Found, matches: list[Match], scale: float, top_k: int) -> pb.DetectedObject:
    """The product found, then its look-alikes: one match per product."""
    seen: set[str] = set()
    out = []
    for f in (found, *found.look_alikes):
        if matches[f.index].product_id not in seen and len(out) < top_k:
            seen.add(matches[f.index].product_id)
            out.append(_match(matches[f.index], Ranked(f.index, Evidence(f.inliers, True, f.polygon)),
                              scale))
    return pb.DetectedObject(bounding_poly=[pb.Point(x=x * scale, y=y * scale)
                                            for x, y in found.polygon],
                             score=found.score, matches=out)


class LookalikeServicer(DiscoveryRpcs, ProductRpcs, CopyRpcs, pb_grpc.LookalikeServicer):
    """Errors become status codes in one place (interceptors.ErrorStatus)."""

    def __init__(self, settings: Settings, model: EmbeddingModel, store: CatalogueStore,
                 jobs: JobStore, queue: ChunkQueue) -> None:
        self.settings, self.embedder, self.store, self.jobs = settings, model, store, jobs
        self.queue = queue
        self.batcher = QueryBatcher(model, settings.query_batch)
        self.stage_two = StageTwo.of(settings)
        self.local_features = ThreadPoolExecutor(max(2, settings.query_batch // 2),
                                                 thread_name_prefix="local-features")

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        started = time.perf_counter()
        top_k = request.top_k or self.settings.default_top_k
        if top_k > self.settings.max_top_k:
            raise InvalidArgument(f"top_k is {top_k}; at most {self.settings.max_top_k}")
        if not math.isfinite(request.min_score) or not -1.0 <= request.min_score <= 1.0:
            raise InvalidArgument(f"min_score is {request.min_score}; cosine scores lie in [-1, 1]")
        categories, labels = list(request.filter.categories), list(request.filter.labels)
        check_filter(categories, labels)
        product_set = check_product_set(request.product_set)
        # Filters ignore case: the spellings stored in this set.
        categories = self.store.resolve(product_set, "category", categories)
        labels = self.store.resolve(product_set, "labels", labels)
        if request.verify and request.verify not in _VERIFY_MODES:
            raise InvalidArgument(f"verify is {request.verify}; one of AUTO, OFF, ON or unset")
        mode = _VERIFY_MODES.get(request.verify) or self.settings.verify
        if self.stage_two is None:
            mode = "off"  # no local features are stored: nothing to verify with
        if request.per_object and self.stage_two is None:
            raise FailedPrecondition("per-object search needs local features; this service "
                                     "stores none (LOOKALIKE_LOCAL_FEATURES=none)")
        if len(request.text) > MAX_SEARCH_TEXT_CHARS:
            raise InvalidArgument(f"text is {len(request.text):,} characters; at most "
                                  f"{MAX_SEARCH_TEXT_CHARS:,}")
        text = request.text.strip()
        if text and request.per_object:
            raise InvalidArgument("per_object looks for the photo's products: send it without text")
        if not request.image:
            if not text:
                raise ImageRejected("empty image: 0 bytes, and no text: send a photo, words to "
                                    "find (text), or both")
            with stage("search"):  # a text search: nothing to decode or embed
                matches = self.store.search_text(text, top_k, categories, labels, product_set)
            return pb.SearchResponse(
                matches=[_match(m, Ranked(i, Evidence()), 1.0) for i, m in enumerate(matches)],
                model=self.embedder.model_id, server_ms=(time.perf_counter() - started) * 1000,
                verify="off")
        if text:
            # Fused scores are ranks, not cosines: stage 2 (which weighs cosines against
            # geometric evidence) does not re-rank them.
            mode = "off"
        with stage("decode"):
            # JPEGs are decoded reduced while the CNN's input keeps its detail; a per-object
            # search also keeps its keypoints' (at least the object image's long side).
            pixels = decode(request.image, Limits.of(self.settings),
                            max(self.embedder.side, self.stage_two.object_long_side // 2)
                            if request.per_object else self.embedder.side)
        if not context.is_active():  # the caller gave up (deadline, cancel): skip the CNN
            SEARCHES_ABANDONED.inc()
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before embedding")
        # The photo's keypoints are found while the CNN and the shortlist run.
        features = (self.local_features.submit(self.stage_two.query_features, pixels,
                                               request.per_object)
                    if self.stage_two is not None and (mode != "off" or request.per_object)
                    else None)
        with stage("embed"):
            vectors = self.batcher.embed_views(self.embedder.query_views(
                pixels, self.settings.query_crops, whole=request.per_object))
        shortlist = top_k if mode == "off" else max(top_k, self.settings.shortlist)
        with stage("search"):
            if text:  # the photo's and the words' rankings fused by the engine (RRF)
                matches = self.store.search_hybrid(vectors, text, top_k, categories, labels,
                                                   request.min_score or None, product_set)
            else:
                matches = self.store.search_views(
                    vectors,
                    max(shortlist, self.settings.object_shortlist if request.per_object else 0),
                    categories, labels, request.min_score or None, product_set)
        ranked = [Ranked(i, Evidence()) for i in range(min(len(matches), shortlist))]
        objects: list[Found] = []
        if features is not None and matches:
            with stage("verify"):
                ranked, objects = self._stage_two(mode, request.per_object, features, matches,
                                                  shortlist)
        scale = 1.0
        if objects or any(r.evidence.polygon for r in ranked[:top_k]):  # outlines in sent pixels
            _, width, height = probe(request.image, Limits.of(self.settings))
            scale = max(width, height) / max(pixels.shape[:2])
        return pb.SearchResponse(
            matches=[_match(matches[r.index], r, scale) for r in ranked[:top_k]],
            model=self.embedder.model_id,
            server_ms=(time.perf_counter() - started) * 1000,
            verify=mode,
            objects=[_object(found, matches, scale, top_k) for found in objects],
        )

    def _stage_two(self, mode: str, per_object: bool, features: Future[LocalFeatures],
                   matches: list[Match], shortlist: int) -> tuple[list[Ranked], list[Found]]:
        """The shortlist re-ranked (unless mode is off) and the products found in the photo
        (per-object: among all of `matches`)."""
        packed = self.store.local_features(matches)
        if not any(packed):  # stored without local features: nothing to wait for
            features.cancel()
            return [Ranked(i, Evidence()) for i in range(min(len(matches), shortlist))], []
        query = features.result()
        if not per_object:
            return rerank(mode, query, packed[:shortlist], self.stage_two,
                          [m.score for m in matches[:shortlist]]), []
        # One matching of the photo with every candidate serves both answers.
        objects, evidence = find_objects(query, unpack_all(packed),
                                         VerifyParams(min_inliers=self.stage_two.min_inliers))
        ranked = order(mode, evidence[:shortlist], [m.score for m in matches[:shortlist]],
                       self.stage_two.min_inliers)
        # Objects are found strongest first, so the weak ones, dropped here, came last.
        objects = [o for o in objects if o.inliers >= self.stage_two.object_min_inliers]
        return ranked, objects

    def SubmitIngest(self, request: pb.SubmitIngestRequest,
                     context: grpc.ServicerContext) -> pb.SubmitIngestResponse:
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
        self.queue.send(job_id, queued)
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
        deleted = self.store.delete_products(list(request.product_ids),
                                             check_product_set(request.product_set))
        return pb.DeleteProductsResponse(deleted=deleted)

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        product_set = check_product_set(request.product_set)
        points, products, categories = self.store.stats(product_set)
        return pb.Stats(points=points, products=products,
                        model_name=self.embedder.name, model_version=self.embedder.version,
                        vector_size=self.embedder.dim, collection=self.store.collection,
                        product_set=product_set,
                        categories=[pb.CategoryCount(category=c, products=n)
                                    for c, n in categories.items()])
