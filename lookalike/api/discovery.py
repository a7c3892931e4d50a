"""Recommend (more like these products) and FindDuplicates (near-duplicate catalogue images)."""

from __future__ import annotations

import math
import time

import grpc

from lookalike.api.interceptors import InvalidArgument, NotFound
from lookalike.api.validation import check_filter, check_product_ids, check_product_set
from lookalike.config import Settings
from lookalike.model.base import EmbeddingModel
from lookalike.store import CatalogueStore, Match
from lookalike.store.duplicates import find_duplicates
from lookalike.v1 import lookalike_pb2 as pb


def match_message(m: Match, **evidence) -> pb.Match:
    """A stored match as the API's Match; `evidence`: stage 2's fields (inliers, verified...)."""
    return pb.Match(product_id=m.product_id, score=m.score, image_id=m.image_id,
                    category=m.category, title=m.title, labels=m.labels, source=m.source,
                    description=m.description, **evidence)


class DiscoveryRpcs:
    """Mixed into LookalikeServicer; uses its settings, embedder and store."""

    settings: Settings
    embedder: EmbeddingModel
    store: CatalogueStore

    def Recommend(self, request: pb.RecommendRequest,
                  context: grpc.ServicerContext) -> pb.SearchResponse:
        started = time.perf_counter()
        product_set = check_product_set(request.product_set)
        positive, negative = list(request.positive_product_ids), list(request.negative_product_ids)
        if not positive:
            raise InvalidArgument("no positive_product_ids: name the products to find more like")
        check_product_ids(positive + negative)
        top_k = request.top_k or self.settings.default_top_k
        if top_k > self.settings.max_top_k:
            raise InvalidArgument(f"top_k is {top_k}; at most {self.settings.max_top_k}")
        if not math.isfinite(request.diversity) or not 0.0 <= request.diversity <= 1.0:
            raise InvalidArgument(f"diversity is {request.diversity}; between 0 and 1")
        categories, labels = list(request.filter.categories), list(request.filter.labels)
        check_filter(categories, labels)
        try:
            matches = self.store.recommend(
                positive, negative, top_k, self.store.resolve(product_set, "category", categories),
                self.store.resolve(product_set, "labels", labels), product_set,
                request.diversity)
        except LookupError as exc:  # a product id with no image in this set
            raise NotFound(str(exc)) from None
        return pb.SearchResponse(matches=[match_message(m) for m in matches],
                                 model=self.embedder.model_id, verify="off",
                                 server_ms=(time.perf_counter() - started) * 1000)

    def FindDuplicates(self, request: pb.FindDuplicatesRequest,
                       context: grpc.ServicerContext) -> pb.FindDuplicatesResponse:
        product_set = check_product_set(request.product_set)
        threshold = request.threshold or self.settings.duplicate_threshold
        if not math.isfinite(threshold) or not 0.0 < threshold <= 1.0:
            raise InvalidArgument(f"threshold is {request.threshold}; a cosine in (0, 1] "
                                  "(0: the server's default)")
        groups, images = find_duplicates(self.store, product_set, threshold,
                                         request.within_products)
        return pb.FindDuplicatesResponse(threshold=threshold, images=images, groups=[
            pb.DuplicateGroup(images=[pb.DuplicateImage(
                product_id=i.product_id, image_id=i.image_id, source=i.source, title=i.title,
                score=score) for i, score in group]) for group in groups])
