"""The ten-line OpenCV rule the learned canonicalizer is measured against: a grasp across the shorter side of
the minimum-area rectangle of an object's mask, through its centre. No rclpy, no torch."""

from __future__ import annotations

import cv2
import numpy as np


def min_area_rect_grasp(mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Centre ``(2,)`` pixels and axis angle (radians in ``[-pi/2, pi/2)``) of the grasp across the shorter
    side of ``cv2.minAreaRect`` of the nonzero pixels of ``mask`` ``(H, W)``; None for an empty mask."""
    points = cv2.findNonZero(np.asarray(mask).astype(np.uint8))
    if points is None:
        return None
    (cx, cy), (w, h), degrees = cv2.minAreaRect(points)
    # OpenCV's angle is the direction of the side of length w: close along the shorter dimension.
    angle = np.radians(degrees if w < h else degrees + 90.0)
    return np.array([cx, cy], np.float64), float((angle + np.pi / 2) % np.pi - np.pi / 2)
