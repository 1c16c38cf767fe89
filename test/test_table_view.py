"""The table plane in the camera frame and the view that looks along its normal (pure geometry)."""

import numpy as np
import pytest

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.geometry.table_view import (
    TablePlane,
    depth_along_normal,
    intrinsic_matrix,
    points_at_normal_depth,
    view_rotation,
    view_to_source,
)

CAMERA = PinholeCamera(525.0, 530.0, 319.5, 238.0, 640, 480)


def _normal(tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    tilt, azimuth = np.radians(tilt_deg), np.radians(azimuth_deg)
    return np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), np.cos(tilt)])


def _project(points: np.ndarray) -> np.ndarray:
    mapped = points @ intrinsic_matrix(CAMERA).T
    return mapped[:, :2] / mapped[:, 2:]


@pytest.mark.parametrize(('tilt', 'azimuth'), [(0.0, 0.0), (30.0, 90.0), (45.0, 200.0), (60.0, -30.0)])
def test_plane_from_inverse_depth_recovers_normal_and_distance(tilt, azimuth):
    normal, distance = _normal(tilt, azimuth), 0.7
    # Points of the plane n.X = d seen by the camera, and the inverse-depth plane they span over the pixels.
    rng = np.random.default_rng(0)
    in_plane = np.linalg.svd(normal[None])[2][1:]  # two directions across the normal
    points = distance * normal + rng.uniform(-0.2, 0.2, (50, 2)) @ in_plane
    pixels = _project(points)
    design = np.column_stack((pixels, np.ones(len(pixels))))
    abc = np.linalg.lstsq(design, 1.0 / points[:, 2], rcond=None)[0]
    plane = TablePlane.from_inverse_depth(abc, CAMERA)
    np.testing.assert_allclose(plane.normal, normal, atol=1e-9)
    assert plane.distance == pytest.approx(distance, abs=1e-9)
    np.testing.assert_allclose(plane.heights(points), 0.0, atol=1e-9)
    assert plane.heights(points[:1] - 0.03 * normal)[0] == pytest.approx(0.03)


def test_no_plane_for_degenerate_coefficients():
    assert TablePlane.from_inverse_depth(np.zeros(3), CAMERA) is None
    assert TablePlane.from_inverse_depth(np.array([np.nan, 0.0, 1.0]), CAMERA) is None
    assert TablePlane.from_inverse_depth(np.array([0.0, 0.0, -1.0]), CAMERA) is None  # behind the camera


@pytest.mark.parametrize(('tilt', 'azimuth'), [(0.0, 0.0), (20.0, 45.0), (50.0, 180.0), (60.0, 270.0)])
def test_view_rotation_takes_the_optical_axis_to_the_normal(tilt, azimuth):
    normal = _normal(tilt, azimuth)
    rotation = view_rotation(normal)
    np.testing.assert_allclose(rotation @ [0.0, 0.0, 1.0], normal, atol=1e-12)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    # The smallest rotation: its axis is perpendicular to both, its angle the tilt.
    angle = np.degrees(np.arccos((np.trace(rotation) - 1.0) / 2.0))
    assert angle == pytest.approx(tilt, abs=1e-6)


def test_view_to_source_is_exact_at_every_depth():
    rotation = view_rotation(_normal(45.0, 120.0))
    homography = view_to_source(CAMERA, rotation)
    rng = np.random.default_rng(1)
    view_points = rng.uniform([-0.3, -0.3, 0.3], [0.3, 0.3, 1.5], (100, 3))  # any depths: no plane assumed
    view_pixels = _project(view_points)  # the view has the camera's intrinsics
    mapped = np.column_stack((view_pixels, np.ones(100))) @ homography.T
    np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:], _project(view_points @ rotation.T), atol=1e-9)


def test_depth_along_normal_round_trips_and_reduces_to_back_projection():
    normal = _normal(40.0, 75.0)
    points = np.array([[0.05, 0.3, 0.8], [-0.2, 0.1, 0.5], [0.0, 0.0, 1.0]])
    pixels = _project(points)
    along = depth_along_normal(CAMERA, pixels, points[:, 2], normal)
    np.testing.assert_allclose(along, points @ normal, atol=1e-12)
    np.testing.assert_allclose(points_at_normal_depth(CAMERA, pixels, along, normal), points, atol=1e-12)
    straight = points_at_normal_depth(CAMERA, pixels, points[:, 2], np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(straight, CAMERA.back_project(pixels, points[:, 2]), atol=1e-12)
    assert np.isnan(depth_along_normal(CAMERA, pixels[:1], [np.nan], normal)).all()
