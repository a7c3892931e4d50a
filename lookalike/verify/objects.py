"""Several products in one photo: each catalogue image found by its own homography.

The photo's keypoints are matched once against every shortlisted catalogue image. Then,
greedily, the catalogue image with the most verified inliers becomes an object, and the photo
keypoints that support it are spent: they cannot support another object. That explains away
what a look-alike would otherwise claim (two cartons of one brand share a logo: once the right
carton took the logo's keypoints, its sibling has too few left), and it lets one product be
found twice (two copies on a shelf: the second copy's keypoints are still free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from lookalike.verify.features import LocalFeatures
from lookalike.verify.geometry import (
    Evidence,
    Fit,
    VerifyParams,
    evidence,
    fit_homography,
    match_shortlist,
)

CONFIDENCE_HALF = 16  # inliers at which an object's score is 0.5


@dataclass(frozen=True)
class Found:
    index: int                            # the catalogue image's position in the shortlist
    inliers: int
    polygon: list[tuple[float, float]]    # its outline in the photo (original pixels)
    # Other catalogue images that fit this outline too (a sibling product sharing a logo),
    # from before the object took its keypoints; most inliers first.
    look_alikes: tuple[Found, ...] = ()

    @property
    def score(self) -> float:
        """0..1, rising with the evidence: 0.33 at 8 inliers, 0.5 at 16, 0.75 at 48."""
        return self.inliers / (self.inliers + CONFIDENCE_HALF)


def find_objects(query: LocalFeatures, candidates: Sequence[LocalFeatures],
                 params: VerifyParams = VerifyParams(), max_objects: int = 12
                 ) -> tuple[list[Found], list[Evidence]]:
    """The catalogue images seen in the photo, strongest evidence first; and each candidate's
    evidence alone (what verify_shortlist gives), for the whole photo's ranking."""
    pairs = match_shortlist(query, candidates, params.ratio)
    free = np.ones(len(query), bool)
    fits: dict[tuple[int, int], Fit | None] = {}  # (candidate, free pairs): refit on change only
    found: list[Found] = []
    while len(found) < max_objects:
        best: tuple[int, Fit] | None = None
        for i, candidate_pairs in enumerate(pairs):
            left = candidate_pairs[free[candidate_pairs[:, 1]]]
            if (i, len(left)) not in fits:
                fits[i, len(left)] = fit_homography(query, candidates[i], left, params)
            fit = fits[i, len(left)]
            if fit is not None and fit.verified and (best is None or fit.inliers > best[1].inliers):
                best = (i, fit)
        if best is None:
            break
        index, fit = best
        free[fit.support] = False
        found.append(Found(index, fit.inliers, fit.polygon(query)))
    first = [fits.get((i, len(p))) for i, p in enumerate(pairs)]
    alone = [Found(i, fit.inliers, fit.polygon(query)) for i, fit in enumerate(first)
             if fit is not None and fit.verified]
    taken = {f.index for f in found}
    objects = [replace(f, look_alikes=tuple(sorted(
        (a for a in alone if a.index not in taken and polygon_iou(a.polygon, f.polygon) >= 0.5),
        key=lambda a: -a.inliers))) for f in found]
    return objects, [evidence(fit, len(p), query) for fit, p in zip(first, pairs)]


def polygon_iou(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """Intersection over union of two convex polygons."""
    pa, pb = np.float32(a).reshape(-1, 2), np.float32(b).reshape(-1, 2)
    if len(pa) < 3 or len(pb) < 3:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    union = abs(cv2.contourArea(pa)) + abs(cv2.contourArea(pb)) - inter
    return float(inter / union) if union > 0 else 0.0
