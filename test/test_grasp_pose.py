"""The gripper frame of a grasp (x = closing axis, z = approach, origin at the fingertips' centre) against known
geometry: crops built from a chosen 3-D grasp must give that grasp back, from a camera looking straight down and from
one tilted up to 60 degrees."""

import doctest

import numpy as np
import pytest

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.geometry import rigid_transforms
from stn_ros.perception.geometry.rigid_transforms import matrix_quaternion, quaternion_matrix
from stn_ros.perception.geometry.table_view import intrinsic_matrix
from stn_ros.perception.grasps.grasp_image import canonical_homographies
from stn_ros.perception.grasps.grasp_pose import (
    GraspFrames,
    approach_directions,
    grasp_frames,
    top_down_images,
)
from stn_ros.perception.grasps.gripper import GripperConfig

CAMERA = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)
SIZE = 32


def crop_of_grasp(centre: np.ndarray, closing: np.ndarray, approach: np.ndarray, metres_per_pixel: float) -> np.ndarray:
    """``H`` of the crop a camera looking along ``approach`` would take of the grasp: crop pixel (i, j) is the 3-D
    point ``centre + (i - mid) m x + (j - mid) m y`` (x = closing, y = approach x closing), projected by the camera
    (a plane-to-image homography, exact)."""
    middle = (SIZE - 1) / 2.0
    across = np.cross(approach, closing)
    columns = np.stack(
        (
            metres_per_pixel * closing,
            metres_per_pixel * across,
            centre - middle * metres_per_pixel * (closing + across),
        ),
        axis=1,
    )
    return intrinsic_matrix(CAMERA) @ columns


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def test_rigid_transform_docstrings_hold():
    assert doctest.testmod(rigid_transforms).failed == 0


def test_matrix_quaternion_inverts_quaternion_matrix_near_every_rotation():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    q[:4] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # half turns: the ill-conditioned cases
    np.testing.assert_allclose(matrix_quaternion(quaternion_matrix(q)), q, atol=1e-12)
    with pytest.raises(ValueError, match=r'\(\.\.\., 3, 3\)'):
        matrix_quaternion(np.eye(4))


@pytest.mark.parametrize('angle', [0.0, 0.4, -1.2, 1.5])
def test_looking_straight_down_the_frame_is_the_camera_turned_by_the_image_angle(angle):
    gripper = GripperConfig()
    centre, z = np.array([[300.0, 200.0]]), np.array([0.62])
    H = canonical_homographies(centre, np.array([angle]), z, CAMERA, gripper)
    poses = grasp_frames(H, (SIZE, SIZE), z, CAMERA).poses(z)
    np.testing.assert_allclose(poses.positions[0], CAMERA.back_project(centre, z)[0], atol=1e-12)
    # about the optical axis by the angle: (0, 0, sin(a / 2), cos(a / 2)), w >= 0
    expected = np.array([0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)])
    np.testing.assert_allclose(poses.quaternions[0], expected * np.sign(expected[3]), atol=1e-9)
    # one crop pixel: 1 / canonical scale (16 px across the 8 cm opening: 5 mm)
    assert poses.metres_per_crop_pixel[0] == pytest.approx(gripper.max_opening / 16, rel=1e-9)


@pytest.mark.parametrize(('tilt_deg', 'azimuth_deg', 'yaw_deg'), [(30, 0, 10), (45, 120, -70), (60, 250, 35)])
def test_a_tilted_view_gives_back_the_grasp_it_was_made_of(tilt_deg, azimuth_deg, yaw_deg):
    tilt, azimuth = np.radians(tilt_deg), np.radians(azimuth_deg)
    normal = np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), np.cos(tilt)])
    in_plane = np.linalg.svd(normal[None])[2][1:]  # two directions across the normal
    closing = unit(np.cos(np.radians(yaw_deg)) * in_plane[0] + np.sin(np.radians(yaw_deg)) * in_plane[1])
    centre = 0.7 * normal + 0.05 * in_plane[0]  # 0.7 m along the normal from the camera
    H = crop_of_grasp(centre, closing, normal, 0.005)
    along = np.array([centre @ normal])
    poses = grasp_frames(H, (SIZE, SIZE), along, CAMERA, normal[None]).poses(along)
    np.testing.assert_allclose(poses.positions[0], centre, atol=1e-12)
    rotation = poses.rotations[0]
    np.testing.assert_allclose(rotation[:, 0], closing, atol=1e-12)  # x: the closing axis
    np.testing.assert_allclose(rotation[:, 2], normal, atol=1e-12)  # z: the approach, into the table
    np.testing.assert_allclose(rotation[:, 1], np.cross(normal, closing), atol=1e-12)  # y = z x x
    np.testing.assert_allclose(quaternion_matrix(poses.quaternions[0]), rotation, atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert poses.metres_per_crop_pixel[0] == pytest.approx(0.005, rel=1e-12)


def test_the_approach_is_the_optical_axis_without_a_normal_and_no_depth_is_no_pose():
    np.testing.assert_allclose(
        approach_directions(np.array([[np.nan] * 3, [0.0, 0.0, 0.0], [0.0, 3.0, 4.0]]), 3),
        [[0, 0, 1], [0, 0, 1], [0, 0.6, 0.8]],
    )
    np.testing.assert_allclose(approach_directions(None, 2), [[0, 0, 1], [0, 0, 1]])
    H = canonical_homographies(
        np.array([[300.0, 200.0]] * 2), np.zeros(2), np.array([0.6, 0.6]), CAMERA, GripperConfig()
    )
    z = np.array([0.6, np.nan])
    poses = grasp_frames(H, (SIZE, SIZE), z, CAMERA).poses(z)
    assert np.isfinite(poses.positions[0]).all() and np.isfinite(poses.quaternions[0]).all()
    assert np.isnan(poses.positions[1]).all() and np.isnan(poses.quaternions[1]).all()
    assert np.isnan(poses.metres_per_crop_pixel[1])
    unknown = GraspFrames.unknown(2).poses(np.full(2, 0.6))
    assert np.isnan(unknown.quaternions).all() and unknown.positions.shape == (2, 3)


def test_the_frame_picture_draws_the_three_axes_and_its_command_writes_it(tmp_path):
    from stn_ros.perception.grasps import frame_picture

    image = frame_picture.gripper_frame_picture()
    assert image.shape == (*frame_picture.SIZE, 3) and image.dtype == np.uint8
    for colour in frame_picture.AXIS_COLOURS.values():  # each axis' arrow is drawn in its colour
        assert (np.abs(image.astype(int) - colour).sum(axis=2) < 30).sum() > 200
    assert frame_picture.main([str(tmp_path / 'frame.png')]) == 0
    assert (tmp_path / 'frame.png').stat().st_size > 10_000


def test_the_origin_descends_along_the_approach_from_the_surface_point_and_columns_measure_across_the_gripper():
    tilt = np.radians(50.0)
    normal = np.array([0.0, np.sin(tilt), np.cos(tilt)])
    in_plane = np.linalg.svd(normal[None])[2][1:]
    closing = unit(in_plane[0])
    surface = np.array([0.0, 0.0, 0.7 / normal[2]])  # where the optical axis meets the table: seen 50 deg off
    H = crop_of_grasp(surface, closing, normal, 0.005)
    along = surface @ normal
    frames = grasp_frames(H, (SIZE, SIZE), np.array([along]), CAMERA, normal[None])
    np.testing.assert_allclose(frames.surface_points[0], surface, atol=1e-12)
    # 2 cm deeper: straight down the approach from the surface point, not along the camera's ray through it
    np.testing.assert_allclose(frames.poses(np.array([along + 0.02])).positions[0], surface + 0.02 * normal, atol=1e-12)
    # A flat crop at the surface: each pixel lies (i - mid, j - mid) crop pixels from the gripper's line, 5 mm each;
    # the same readings 3 cm deeper lie where their rays meet that depth, farther along the camera's lean.
    middle = (SIZE - 1) / 2.0
    flat = np.full((1, SIZE, SIZE), along)
    columns = frames.columns(flat, H, CAMERA)[0]
    cols, rows = np.meshgrid(np.arange(SIZE), np.arange(SIZE))
    np.testing.assert_allclose(columns[..., 0], (cols - middle) * 0.005, atol=1e-6)  # float32 metres
    np.testing.assert_allclose(columns[..., 1], (rows - middle) * 0.005, atol=1e-6)
    deeper = frames.columns(flat + 0.03, H, CAMERA)[0]
    np.testing.assert_allclose(np.abs(deeper - columns).max(), 0.03 * np.tan(tilt), rtol=0.3)  # 3.6 cm at the centre
    assert np.isnan(frames.columns(np.full((1, SIZE, SIZE), np.nan), H, CAMERA)).all()


def test_top_down_images_keep_a_flat_crop_and_move_lower_readings_to_where_they_lie():
    tilt = np.radians(50.0)
    normal = np.array([0.0, np.sin(tilt), np.cos(tilt)])
    closing = unit(np.linalg.svd(normal[None])[2][1])
    surface = np.array([0.0, 0.0, 0.7 / normal[2]])
    H = crop_of_grasp(surface, closing, normal, 0.005)
    frames = grasp_frames(H, (SIZE, SIZE), np.array([surface @ normal]), CAMERA, normal[None])
    flat = np.full((1, SIZE, SIZE), surface @ normal, np.float32)
    seen_flat = top_down_images(flat, frames.columns(flat, H, CAMERA), frames.metres_per_crop_pixel)
    np.testing.assert_allclose(seen_flat, flat)  # a flat top is where a camera above sees it
    # A ring of readings 3 cm lower (a table beside a 3 cm tall top): from above they lie 3 tan(50 deg) = 3.6 cm, about
    # 7 pixels, farther along the camera's lean, and what they covered in the crop has no reading from above.
    stepped = flat.copy()
    stepped[0, :, :8] += 0.03
    seen = top_down_images(stepped, frames.columns(stepped, H, CAMERA), frames.metres_per_crop_pixel)
    assert np.isnan(seen).any() and np.nanmax(seen) == pytest.approx(surface @ normal + 0.03, abs=1e-6)
    assert np.isfinite(seen[0, :, 8:]).mean() > 0.9
