"""The OpenCV rule: a grasp across the shorter side of the mask's minimum-area rectangle, through its centre."""

import cv2
import numpy as np
import pytest

from stn_ros.evaluation.min_area_rect import min_area_rect_grasp


@pytest.mark.parametrize('degrees', [0.0, 25.0, 60.0, 90.0, 135.0])
def test_the_grasp_closes_across_the_shorter_side_through_the_centre(degrees):
    mask = np.zeros((200, 240), np.uint8)
    corners = cv2.boxPoints(((120.0, 90.0), (80.0, 30.0), degrees))  # 80 px long along `degrees`, 30 px across
    cv2.fillConvexPoly(mask, np.round(corners).astype(np.int32), 1)
    centre, angle = min_area_rect_grasp(mask)
    np.testing.assert_allclose(centre, (120.0, 90.0), atol=0.75)
    across = np.radians(degrees + 90.0)
    assert abs((angle - across + np.pi / 2) % np.pi - np.pi / 2) < np.radians(2.0)


def test_an_empty_mask_has_no_grasp():
    assert min_area_rect_grasp(np.zeros((10, 10), bool)) is None


def test_the_outer_contours_give_the_rectangle_of_every_pixel():
    """The rule traces the outer contours (the convex hull's corners lie on them) instead of handing minAreaRect
    every pixel: the same rectangle, holes and several blobs included."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = np.zeros((120, 160), np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            centre = tuple(int(x) for x in rng.integers(20, 100, 2))
            axes = tuple(int(x) for x in rng.integers(1, 40, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        mask[rng.random(mask.shape) < 0.02] = 0  # dropouts: holes
        (cx, cy), (w, h), degrees = cv2.minAreaRect(cv2.findNonZero(mask))
        every_pixel = np.radians(degrees if w < h else degrees + 90.0)
        centre, angle = min_area_rect_grasp(mask)
        np.testing.assert_allclose(centre, (cx, cy), atol=1e-3)
        assert abs((angle - every_pixel + np.pi / 2) % np.pi - np.pi / 2) < 1e-4
