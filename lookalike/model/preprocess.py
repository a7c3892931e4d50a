"""What every model does to a decoded photo before its forward pass."""

from __future__ import annotations

import cv2
import numpy as np


def to_model_input(rgb: np.ndarray, side: int = 224) -> np.ndarray:
    """Resize policy: the whole image, squashed to side x side (no crop, no padding).

    Cropping would cut off products photographed near the frame edge; squashing
    keeps every pixel and matched padding in quick tests. INTER_AREA avoids aliasing.
    """
    interp = cv2.INTER_AREA if min(rgb.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(rgb, (side, side), interpolation=interp)


def centre_crop(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """The middle `fraction` of each side (1: the image itself)."""
    if fraction >= 1.0:
        return rgb
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    y, x = (h - ch) // 2, (w - cw) // 2
    return rgb[y:y + ch, x:x + cw]


def query_crops(rgb: np.ndarray, crops: int) -> list[np.ndarray]:
    """Up to 5 crops of the photo where a product filling part of the frame appears larger:
    the four corners at 0.6 of each side, then the centre at 0.7."""
    h, w = rgb.shape[:2]
    views = []
    for frac, anchors in ((0.6, ((0, 0), (1, 0), (0, 1), (1, 1))), (0.7, ((0.5, 0.5),))):
        ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
        for ax, ay in anchors:
            y, x = round((h - ch) * ay), round((w - cw) * ax)
            views.append(rgb[y:y + ch, x:x + cw])
    return views[:max(0, crops)]
