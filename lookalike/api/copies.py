"""DetectCopy: is this image a catalogue image, possibly edited (verify/copies.py)?

The image is decoded with Search's limits (a bad one is INVALID_ARGUMENT, as for Search); its
keypoints are found twice, as sent and mirrored, in the local-features pool while the CNN
embeds it; the global vector shortlists COPY_SHORTLIST products and each one's stored
keypoints are checked for a copy's geometry; where a proper map was found, the region it found
is pulled back into the original's frame and embedded too (verify/copies.decide weighs all
three). Needs stored local features: a service that stores none answers FAILED_PRECONDITION.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from lookalike.api.discovery import match_message
from lookalike.api.interceptors import FailedPrecondition
from lookalike.api.validation import check_product_set
from lookalike.config import Settings
from lookalike.imaging import Limits, decode
from lookalike.model.base import EmbeddingModel
from lookalike.model.batcher import QueryBatcher
from lookalike.observability import stage
from lookalike.store import CatalogueStore, Match
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.verify.copies import MIN_AFFINE, CopyFit, best_fit, decide, mirror, undone
from lookalike.verify.features import LocalFeatures
from lookalike.verify.geometry import VerifyParams
from lookalike.verify.rerank import StageTwo, unpack_all

# Products verified per DetectCopy, by global score (the shortlist is one image per product).
# A copy's own image is first or second of the global vector on both dev sets' edits.
COPY_SHORTLIST = 15


class CopyRpcs:
    """Mixed into LookalikeServicer; uses its settings, embedder, batcher, store, stage_two
    and local_features pool."""

    settings: Settings
    embedder: EmbeddingModel
    batcher: QueryBatcher
    store: CatalogueStore
    stage_two: StageTwo | None
    local_features: ThreadPoolExecutor

    def DetectCopy(self, request: pb.DetectCopyRequest,
                   context: grpc.ServicerContext) -> pb.DetectCopyResponse:
        started = time.perf_counter()
        product_set = check_product_set(request.product_set)
        stage_two = self.stage_two
        if stage_two is None:
            raise FailedPrecondition("copy detection needs local features; this service "
                                     "stores none (LOOKALIKE_LOCAL_FEATURES=none)")
        with stage("decode"):  # reduced JPEG decoding keeps the keypoints' 640 px long side
            pixels = decode(request.image, Limits.of(self.settings),
                            max(self.embedder.side, stage_two.long_side // 2))
        features = self.local_features.submit(stage_two.query_features, pixels)
        mirrored = self.local_features.submit(lambda: stage_two.query_features(mirror(pixels)))
        with stage("embed"):  # the whole image too: a screenshot's copy is off its middle
            vectors = self.batcher.embed_views(self.embedder.query_views(pixels, 0, whole=True))
        with stage("search"):
            matches = self.store.search_views(vectors, COPY_SHORTLIST, product_set=product_set)
        fit: CopyFit | None = None
        region: float | None = None
        query, flipped = features.result(), mirrored.result()
        if matches:
            with stage("verify"):
                candidates = unpack_all(self.store.local_features(matches))
                fit = best_fit(query, flipped, candidates,
                               VerifyParams(min_inliers=stage_two.min_inliers))
            if fit is not None and fit.proper and fit.affine >= MIN_AFFINE:
                with stage("region"):
                    region = self._region_cosine(pixels, fit, flipped if fit.mirrored else query,
                                                 candidates[fit.index], matches[fit.index])
        index, is_copy, confidence = decide(fit, [m.score for m in matches], region)
        same = fit is not None and fit.index == index  # the keypoint evidence is this one's
        original = None
        if matches:
            m = matches[index]
            original = match_message(m, inliers=fit.affine if same else 0, verified=is_copy,
                                     stage1_rank=index + 1)
        return pb.DetectCopyResponse(
            is_copy=is_copy, confidence=confidence, original=original,
            inliers=fit.affine if same else 0,
            coverage=fit.coverage if same and is_copy else 0.0,
            model=self.embedder.model_id,
            server_ms=(time.perf_counter() - started) * 1000)

    def _region_cosine(self, pixels: np.ndarray, fit: CopyFit, query: LocalFeatures,
                       candidate: LocalFeatures, match: Match) -> float | None:
        """The global cosine of the query region the fit found, pulled back into the original's
        frame (verify/copies.undone), to the original's stored vector."""
        stored = self.store.vectors([match])[0]
        if stored is None:
            return None
        view = undone(mirror(pixels) if fit.mirrored else pixels, fit, query, candidate)
        return float(self.batcher.embed_views([view])[0] @ stored)
