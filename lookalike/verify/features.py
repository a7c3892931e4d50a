"""Local features of one image: keypoint positions and binary or float descriptors.

Catalogue features are computed once, by the worker at ingest, and stored with the image's
vector (payload field `features`, base64 of the packed bytes below): every query replica
reads them from the store, they go with the product when it is deleted and reindex rebuilds
them. A query's features are computed per search, on the decoded photo.

Both sides are found on the image resized to the same long side, so that scale differences
come from the photo, not from the files' resolutions. Positions are kept in the resized
image's pixels (uint16); the size is stored so that a homography can be drawn back on the
original photo.
"""

from __future__ import annotations

import base64
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

_HEADER = struct.Struct("<BBHHHH")  # version, kind, points, descriptor bytes, width, height
_VERSION = 1
KINDS = ("sift", "orb")  # OpenCV 5 main modules (AKAZE moved out of them)


@dataclass(frozen=True)
class LocalFeatures:
    kind: str
    points: np.ndarray        # (n, 2) float32, pixels of the resized image
    descriptors: np.ndarray   # (n, d) uint8
    size: tuple[int, int]     # (width, height) of the resized image
    scale: float = 1.0        # resized / original: positions / scale are original pixels

    def __len__(self) -> int:
        return len(self.points)

    def pack(self) -> str:
        """Compact bytes as base64 text (a payload field is JSON)."""
        n, d = self.descriptors.shape if len(self) else (0, 0)
        head = _HEADER.pack(_VERSION, KINDS.index(self.kind), n, d, *self.size)
        body = (np.round(self.points).clip(0, 65535).astype("<u2").tobytes()
                + self.descriptors.astype(np.uint8).tobytes())
        return base64.b64encode(head + body).decode("ascii")

    @classmethod
    def unpack(cls, text: str) -> LocalFeatures:
        raw = base64.b64decode(text)
        version, kind, n, d, width, height = _HEADER.unpack_from(raw)
        if version != _VERSION:
            raise ValueError(f"local features of format {version}; this version reads {_VERSION}")
        offset = _HEADER.size
        points = np.frombuffer(raw, "<u2", 2 * n, offset).reshape(n, 2).astype(np.float32)
        descriptors = np.frombuffer(raw, np.uint8, n * d, offset + 4 * n).reshape(n, d)
        return cls(KINDS[kind], points, descriptors, (width, height))

    def packed_bytes(self) -> int:
        return _HEADER.size + len(self) * (4 + (self.descriptors.shape[1] if len(self) else 0))


def _detector(kind: str, max_points: int):
    if kind == "sift":
        return cv2.SIFT_create(nfeatures=max_points)
    if kind == "orb":
        return cv2.ORB_create(nfeatures=max_points)
    raise ValueError(f"unknown local feature kind {kind!r}; known: {', '.join(KINDS)}")


# A photo's keypoints are found in two halves at once (`halves=True`): OpenCV's SIFT runs
# its scale space on one core, and a query's SIFT is most of stage 2's time (0.6x of the whole
# photo's wall time on 2 cores). The halves overlap by this many pixels so that a keypoint near
# the seam sees its neighbourhood; each half keeps the keypoints in its own half only. One
# thread per core: concurrent searches' halves queue rather than oversubscribe the cores.
_SEAM_OVERLAP = 48
_HALVES = ThreadPoolExecutor(max(2, len(os.sched_getaffinity(0))), thread_name_prefix="lookalike-sift")


def _detect(kind: str, grey: np.ndarray, max_points: int
            ) -> tuple[list[tuple[float, float]], list[float], np.ndarray | None]:
    keypoints, descriptors = _detector(kind, max_points).detectAndCompute(grey, None)
    return [k.pt for k in keypoints], [k.response for k in keypoints], descriptors


def _detect_halves(kind: str, grey: np.ndarray, max_points: int
                   ) -> tuple[list[tuple[float, float]], list[float], np.ndarray | None]:
    height = grey.shape[0]
    middle = height // 2
    top, bottom = (_HALVES.submit(_detect, kind, part, max_points) for part in
                   (grey[: middle + _SEAM_OVERLAP], grey[middle - _SEAM_OVERLAP:]))
    points, responses, rows = [], [], []
    for (found, strength, descriptors), offset, keep in (
            (top.result(), 0, lambda y: y < middle),
            (bottom.result(), middle - _SEAM_OVERLAP, lambda y: y >= middle)):
        for i, (x, y) in enumerate(found):
            if keep(y + offset):
                points.append((x, y + offset))
                responses.append(strength[i])
                rows.append(descriptors[i])
    return points, responses, np.stack(rows) if rows else None


def extract(rgb: np.ndarray, kind: str = "sift", max_points: int = 256,
            long_side: int = 640, halves: bool = False) -> LocalFeatures:
    """The strongest `max_points` keypoints of the image resized to `long_side` (found in its
    top and bottom halves side by side when `halves`)."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1
                                   else cv2.INTER_LINEAR), cv2.COLOR_RGB2GRAY)
    split = halves and size[1] > 4 * _SEAM_OVERLAP
    found, responses, descriptors = (_detect_halves if split else _detect)(kind, grey, max_points)
    if descriptors is None or not found:
        return LocalFeatures(kind, np.zeros((0, 2), np.float32), np.zeros((0, 0), np.uint8),
                             size, scale)
    order = np.lexsort((np.array([p[1] for p in found]), np.array([p[0] for p in found]),
                        -np.asarray(responses)))[:max_points]  # strongest first, ties by place
    points = np.array([found[i] for i in order], np.float32)
    descriptors = descriptors[order]
    if descriptors.dtype != np.uint8:  # SIFT: float values in 0..255 by construction
        descriptors = np.clip(np.round(descriptors), 0, 255).astype(np.uint8)
    return LocalFeatures(kind, points, descriptors, size, scale)
