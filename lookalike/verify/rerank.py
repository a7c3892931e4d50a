"""Stage 2: verify the shortlist and fuse the evidence with the global ranking.

The rule is tiers: a product whose catalogue image is found in the photo (enough inliers and
a plausible outline, geometry.py) moves ahead of every unverified one; the unverified keep
the global-vector order. Loose produce rarely gets a plausible homography, so its ranking
stays stage 1's; printed, flat products get many inliers and rise.
- auto: verified products ordered by cosine + 0.1 * log2(inliers / min_inliers), so that the
  global similarity still separates two verified products with similar evidence;
- on: verified products ordered by inliers alone;
- off: stage 1 only.
Calibrated on GroceryStoreDataset and the Stanford Mobile Visual Search DVD covers (see
docs/retrieval.md); the weight and the bar are deliberately round numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.config import Settings
from lookalike.verify.features import LocalFeatures, extract
from lookalike.verify.geometry import Evidence, VerifyParams, verify_shortlist

MODES = ("auto", "off", "on")


AUTO_WEIGHT = 0.1  # of log2(inliers / bar) next to the cosine, among verified products
# What an image stored without local features has to match: nothing.
NO_FEATURES = LocalFeatures("none", np.zeros((0, 2), np.float32), np.zeros((0, 0), np.uint8), (0, 0))


@dataclass(frozen=True)
class StageTwo:
    kind: str = "sift"
    query_points: int = 500       # the photo's keypoints: 1000 found 0.5 points more, at 2x the matching
    # A per-object search's photo: several products share it, each small, so more keypoints
    # on a larger image (on generated shelf scenes: recall 0.86 at 640 px, 0.92 at 720 px).
    object_points: int = 1200
    object_long_side: int = 720
    object_min_inliers: int = 10  # an object's bar: more keypoints let more look-alikes reach 8
    catalogue_points: int = 240   # per catalogue image, stored at ingest (< 32 KB packed)
    long_side: int = 640          # both sides are resized to this before detection
    min_inliers: int = 8          # verified from this many inliers
    # Verified in stage-1 order: these first; the rest of the shortlist only when none of
    # them was verified with `decisive` inliers (scripts/verify_budget.py measures it).
    first: int = 10
    decisive: int = 32

    @classmethod
    def of(cls, settings: Settings) -> StageTwo | None:
        """None: no local features (LOOKALIKE_LOCAL_FEATURES=none)."""
        if settings.local_features == "none":
            return None
        return cls(kind=settings.local_features, min_inliers=settings.verify_min_inliers)

    def catalogue_features(self, rgb: np.ndarray) -> LocalFeatures:
        return extract(rgb, self.kind, self.catalogue_points, self.long_side)

    def query_features(self, rgb: np.ndarray, per_object: bool = False) -> LocalFeatures:
        if per_object:
            return extract(rgb, self.kind, self.object_points, self.object_long_side, halves=True)
        return extract(rgb, self.kind, self.query_points, self.long_side, halves=True)


@dataclass(frozen=True)
class Ranked:
    index: int          # position in the stage-1 shortlist (0-based)
    evidence: Evidence


def unpack_all(packed: Sequence[str]) -> list[LocalFeatures]:
    return [LocalFeatures.unpack(p) if p else NO_FEATURES for p in packed]


def rerank(mode: str, query: LocalFeatures, packed: Sequence[str], stage: StageTwo,
           scores: Sequence[float] | None = None) -> list[Ranked]:
    """The shortlist's new order. `query`: the photo's features (stage.query_features, which
    the service computes while the CNN runs); `packed`: each shortlisted image's stored features,
    in stage-1 order ("" for images stored without them: they keep their stage-1 place);
    `scores`: their cosine scores (default: decreasing with the stage-1 rank)."""
    if mode not in MODES:
        raise ValueError(f"verify is {mode!r}; one of {', '.join(MODES)}")
    if mode == "off" or not any(packed):
        return [Ranked(i, Evidence()) for i in range(len(packed))]
    evidence = verify_ranked(query, unpack_all(packed), VerifyParams(min_inliers=stage.min_inliers),
                             stage.first, stage.decisive)
    return order(mode, evidence, scores, stage.min_inliers)


def verify_ranked(query: LocalFeatures, candidates: Sequence[LocalFeatures], params: VerifyParams,
                  first: int, decisive: int) -> list[Evidence]:
    """Each candidate's evidence, verifying in stage-1 order: the first `first`, then the rest
    unless one of those was verified with `decisive` inliers or more (a product found that
    clearly is seldom beaten from further down; the rest then report no evidence)."""
    head = verify_shortlist(query, candidates[:first], params)
    if len(candidates) <= first or any(e.verified and e.inliers >= decisive for e in head):
        return head + [Evidence()] * (len(candidates) - len(head))
    return head + verify_shortlist(query, candidates[first:], params)


def order(mode: str, evidence: Sequence[Evidence], scores: Sequence[float] | None,
          min_inliers: int) -> list[Ranked]:
    """The fusion rule (module docstring) on each shortlisted image's evidence."""
    cosine = list(scores) if scores is not None else [-float(i) for i in range(len(evidence))]

    def key(i: int) -> tuple[int, float, int]:
        e = evidence[i]
        if not e.verified or mode == "off":
            return (1, 0.0, i)
        if mode == "on":
            return (0, -e.inliers, i)
        return (0, -(cosine[i] + AUTO_WEIGHT * np.log2(e.inliers / min_inliers)), i)

    return [Ranked(i, evidence[i] if mode != "off" else Evidence())
            for i in sorted(range(len(evidence)), key=key)]
