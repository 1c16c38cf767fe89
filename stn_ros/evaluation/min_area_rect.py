"""The ten-line OpenCV rule the learned canonicalizer is measured against: a grasp across the shorter side of
the minimum-area rectangle of an object's mask, through its centre. No rclpy, no torch."""

from __future__ import annotations

import cv2
import numpy as np


def min_area_rect_grasp(mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Centre ``(2,)`` pixels and axis angle (radians in ``[-pi/2, pi/2)``) of the grasp across the shorter
    side of ``cv2.minAreaRect`` of the nonzero pixels of ``mask`` ``(H, W)``; None for an empty mask."""
    # The rectangle depends only on the pixels' convex hull, whose corners all lie on the outer contours: tracing
    # those is about ten times faster than handing minAreaRect every pixel, and gives the same rectangle.
    contours, _ = cv2.findContours(np.asarray(mask).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    return min_area_rect_axis(np.concatenate(contours))


def min_area_rect_axis(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre ``(2,)`` and axis angle (radians in ``[-pi/2, pi/2)``, from ``+x`` towards ``+y``) of the grasp across
    the shorter side of ``cv2.minAreaRect`` of points ``(N, 2)`` (int32 or float32, at least one), in their units.

    >>> centre, angle = min_area_rect_axis(np.array([[0, 0], [10, 0], [10, 4], [0, 4]], np.float32))
    >>> centre.tolist(), round(float(np.degrees(angle)))
    ([5.0, 2.0], -90)
    """
    (cx, cy), (w, h), degrees = cv2.minAreaRect(np.asarray(points).reshape(-1, 1, 2))
    # OpenCV's angle is the direction of the side of length w: close along the shorter dimension.
    angle = np.radians(degrees if w < h else degrees + 90.0)
    return np.array([cx, cy], np.float64), float((angle + np.pi / 2) % np.pi - np.pi / 2)
