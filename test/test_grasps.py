"""Analytic grasp labels, Dex-Net 2.0 canonical grasp images and the grasp dataset."""

from __future__ import annotations

import collections
import dataclasses
import math

import cv2
import numpy as np
import pytest

from stn_ros.perception.grasps.grasp_image import (
    CANONICAL_SIZE,
    OPENING_FRACTION,
    canonical_homographies,
    canonical_scale,
    fill_missing,
    grasp_image,
)
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.prisms.grasps import FAILURES, evaluate_grasps, grasp_height, sample_grasps
from stn_ros.sim.prisms.scenes import SceneConfig, box_footprint, generate_scene, make_object, render_scene, scene_seed
from stn_ros.training.prisms.grasp_images import (
    FAILURE_NAMES,
    GraspDataset,
    build_grasp_dataset,
    canonical_homography,
)
from stn_ros.training.prisms.scene_samples import main as scene_samples_main

CONFIG = SceneConfig()
GRIPPER = GripperConfig()
MIDDLE = (CANONICAL_SIZE - 1) / 2.0


def box(length, width, height, x=0.0, y=0.0, yaw=0.0):
    return make_object('box', box_footprint(length, width), height, x, y, yaw)


def label(scene, yaw, point=(0.0, 0.0), index=0, gripper=GRIPPER):
    return evaluate_grasps(scene, index, [point], [yaw], gripper)[0]


@pytest.fixture(scope='module')
def box_scene():
    """A 12 x 5 cm box, 6 cm tall, long side along table x, on the optical axis."""
    return render_scene(CONFIG, [box(0.12, 0.05, 0.06)])


def test_grasp_across_the_short_side_is_good(box_scene):
    grasp = label(box_scene, np.pi / 2)
    assert grasp.good and grasp.failure == ''
    assert grasp.width_m == pytest.approx(0.05)
    assert np.allclose(np.sort(grasp.contacts[:, 1]), [-0.025, 0.025]) and np.allclose(grasp.contacts[:, 0], 0)
    assert grasp.z == pytest.approx(CONFIG.camera_height - (0.06 - GRIPPER.finger_depth))
    assert grasp.centre == pytest.approx((CONFIG.cx, CONFIG.cy))
    assert abs(grasp.angle) == pytest.approx(np.pi / 2)  # table y is the image's -v: vertical either way
    assert grasp.width_px == pytest.approx(0.05 * CONFIG.fx / grasp.z)


def test_grasp_across_the_long_side_is_too_wide(box_scene):
    grasp = label(box_scene, 0.0)
    assert not grasp.good and grasp.failure == 'opening' and grasp.width_m == pytest.approx(0.12)
    assert grasp.angle == pytest.approx(0.0)


def test_friction_cone(box_scene):
    assert label(box_scene, np.pi / 4).failure == 'friction'  # 45 deg > atan(0.5) = 26.6 deg
    narrow = render_scene(CONFIG, [box(0.12, 0.03, 0.06)])
    assert label(narrow, np.pi / 2 + math.radians(25)).good
    assert label(narrow, np.pi / 2 - math.radians(28)).failure == 'friction'
    # 30 deg: inside a mu = 0.7 cone (35 deg), and the jaw's corner clears the wall (5 mm tan 30 < 3 mm).
    assert label(box_scene, np.pi / 2 + math.radians(30)).failure == 'friction'
    assert label(box_scene, np.pi / 2 + math.radians(30), gripper=dataclasses.replace(GRIPPER, mu=0.7)).good
    # 45 deg inside a mu = 1.2 cone, but the jaw's corner would dig 5 mm into the wall it grasps.
    grasp = label(box_scene, np.pi / 4, gripper=dataclasses.replace(GRIPPER, mu=1.2))
    assert grasp.failure == 'collision'


def test_no_contact_when_the_line_misses(box_scene):
    grasp = label(box_scene, 0.0, point=(0.0, 0.05))
    assert grasp.failure == 'no_contact' and grasp.width_m == 0 and np.isnan(grasp.contacts).all()


def test_jaw_on_a_neighbouring_tall_box_collides():
    # A 4 cm wide box; a 10 cm tall box 1.5 cm beyond its +y side, spanning x in [-2.5, 2.5] cm.
    low, tall = box(0.14, 0.04, 0.04), box(0.05, 0.05, 0.10, y=0.02 + 0.015 + 0.025)
    scene = render_scene(CONFIG, [low, tall])
    assert label(scene, np.pi / 2).failure == 'collision'
    assert label(scene, np.pi / 2, point=(-0.045, 0.0)).good  # jaw beside the tall box
    short = render_scene(CONFIG, [low, box(0.05, 0.05, 0.015, y=0.06)])
    assert label(short, np.pi / 2).good  # the neighbour is below the fingertips (4 - 2 cm)


def test_jaw_on_the_objects_own_arm_collides():
    # An L: a 3 cm bar along x (y in [-4, -1] cm) and an arm up +y at its left end (x in [-4, -1] cm).
    l_shape = np.array([[-0.04, -0.04], [0.06, -0.04], [0.06, -0.01], [-0.01, -0.01], [-0.01, 0.04], [-0.04, 0.04]])
    scene = render_scene(CONFIG, [make_object('l_shape', l_shape, 0.05, 0, 0, 0)])
    assert label(scene, np.pi / 2, point=(0.03, -0.025)).good  # across the bar, far from the arm
    # Across the bar 3 mm beside the arm: the +y jaw (1 cm wide) lands on the arm.
    assert label(scene, np.pi / 2, point=(-0.007, -0.025)).failure == 'collision'


def test_sample_grasps_gives_every_outcome_and_consistent_fields():
    counts = collections.Counter()
    for seed in range(6):
        scene = generate_scene(CONFIG, seed)
        grasps = sample_grasps(scene, GRIPPER, np.random.default_rng(seed), 20)
        again = sample_grasps(scene, GRIPPER, np.random.default_rng(seed), 20)
        assert [(g.centre, g.failure) for g in grasps] == [(g.centre, g.failure) for g in again]
        assert len(grasps) == 20 * len(scene.objects)
        for grasp in grasps:
            counts[grasp.failure] += 1
            obj = scene.objects[grasp.object_index]
            assert grasp.z == pytest.approx(CONFIG.camera_height - grasp_height(obj.height, GRIPPER))
            assert -np.pi / 2 <= grasp.angle < np.pi / 2
            if grasp.width_m:
                assert grasp.width_px == pytest.approx(grasp.width_m * CONFIG.fx / grasp.z, rel=1e-6)
    assert set(counts) == {''} | set(FAILURES)
    assert 0.2 < counts[''] / sum(counts.values()) < 0.6


def test_canonical_homography_centre_axis_and_scale():
    scene = generate_scene(CONFIG, 1)
    grasp = next(g for g in sample_grasps(scene, GRIPPER, np.random.default_rng(0), 10) if g.good)
    H = canonical_homography(grasp, scene.camera, GRIPPER)

    def to_source(col, row):
        point = H @ (col, row, 1.0)
        return point[:2] / point[2]

    centre = to_source(MIDDLE, MIDDLE)
    assert centre == pytest.approx(grasp.centre)
    step_x, step_y = to_source(MIDDLE + 1, MIDDLE) - centre, to_source(MIDDLE, MIDDLE + 1) - centre
    assert math.atan2(step_x[1], step_x[0]) == pytest.approx(grasp.angle)
    # Documented scale: max opening = OPENING_FRACTION of the width, i.e. 200 px/m by default.
    assert canonical_scale(GRIPPER) == pytest.approx(OPENING_FRACTION * CANONICAL_SIZE / 0.08) == 200.0
    source_per_crop = CONFIG.fx / (grasp.z * canonical_scale(GRIPPER))
    assert np.linalg.norm(step_x) == pytest.approx(source_per_crop)
    assert np.linalg.norm(step_y) == pytest.approx(source_per_crop) and step_x @ step_y == pytest.approx(0)
    assert step_x[0] * step_y[1] - step_x[1] * step_y[0] > 0  # a rotation, not a mirror
    # The contacts land at the documented distance from the crop centre along +x.
    inverse = np.linalg.inv(H)
    ends = np.c_[scene.project(np.c_[grasp.contacts, np.full(2, grasp.centre_table[2])])[0], np.ones(2)]
    crop = ends @ inverse.T
    crop = crop[:, :2] / crop[:, 2:]
    assert np.sort(crop[:, 0]) == pytest.approx(MIDDLE + np.array([-0.5, 0.5]) * grasp.width_m * 200, abs=1e-6)
    assert crop[:, 1] == pytest.approx([MIDDLE, MIDDLE], abs=1e-6)


def test_warp_perspective_with_H_reproduces_grasp_image(box_scene):
    scene = generate_scene(CONFIG, 2)
    grasps = sample_grasps(scene, GRIPPER, np.random.default_rng(0), 6)
    H = canonical_homographies(
        [g.centre for g in grasps], [g.angle for g in grasps], [g.z for g in grasps], scene.camera, GRIPPER
    )
    images = grasp_image(scene.clean_depth, H, [g.z for g in grasps])
    assert images.shape == (len(grasps), 32, 32) and images.dtype == np.float32
    for image, h, grasp in zip(images, H, grasps, strict=True):
        crop = cv2.warpPerspective(scene.clean_depth, h, (32, 32), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        assert np.allclose(image, crop - grasp.z, atol=1e-5)
        assert np.array_equal(grasp_image(scene.clean_depth, h, grasp.z), image)
    # The box on the optical axis, grasped across: top at -finger_depth between the contacts
    # (5 cm = 10 px), the table h_g = 4 cm below the fingertips outside them.
    grasp = label(box_scene, np.pi / 2)
    image = grasp_image(box_scene.clean_depth, canonical_homography(grasp, box_scene.camera, GRIPPER), grasp.z)
    assert np.allclose(image[4:28, 12:20], -GRIPPER.finger_depth, atol=1e-5)
    assert np.allclose(image[:, :10], 0.04, atol=1e-5) and np.allclose(image[:, 22:], 0.04, atol=1e-5)


def test_fill_missing_takes_the_nearest_valid_pixel():
    image = np.array([[1, np.nan, np.nan, 4], [np.nan] * 4], np.float32)
    assert np.array_equal(fill_missing(image), [[1, 1, 4, 4], [1, 1, 4, 4]])
    assert np.array_equal(fill_missing(np.full((2, 3, 3), np.nan)), np.zeros((2, 3, 3)))


def test_build_grasp_dataset():
    arrays = build_grasp_dataset(4, seed=5, per_object=8, progress=False)
    data = GraspDataset.from_arrays(arrays)
    count = len(data)
    assert count == sum(8 * len(generate_scene(CONFIG, scene_seed(5, i)).objects) for i in range(4))
    assert data.images.shape == (count, 32, 32) and data.images.dtype == np.float32
    assert np.isfinite(data.images).all()
    assert data.H.shape == (count, 3, 3) and data.roi.shape == (count, 4) and data.labels.dtype == np.int64
    assert all(value.shape[0] == count for value in arrays.values())
    assert 0.2 < data.labels.mean() < 0.6
    assert np.array_equal(data.labels, (data.failure == 0).astype(np.int64))
    assert set(FAILURE_NAMES[i] for i in data.failure) >= {'good', 'opening', 'friction'}
    # ROIs contain their good grasps' centres.
    good = data.select(data.labels == 1)
    x, y, w, h = good.roi.T
    u, v = good.centre.T
    assert ((u >= x) & (u <= x + w - 1) & (v >= y) & (v <= y + h - 1)).all()
    assert good.roi_from_proposal.mean() > 0.9
    # Held out by scene: each scene is entirely in one split, and both splits exist.
    for scene in np.unique(data.scene_id):
        assert len(np.unique(data.held_out[data.scene_id == scene])) == 1
    assert 0 < data.held_out.mean() < 1
    # Rows are reproducible from their seeds: the image is the scene's grasp image.
    row = 3
    scene = generate_scene(CONFIG, int(data.scene_seed[row]))
    assert np.allclose(grasp_image(scene.depth, data.H[row], data.z[row]), data.images[row])
    again = build_grasp_dataset(4, seed=5, per_object=8, progress=False)
    assert all(np.array_equal(arrays[key], again[key]) for key in arrays)


def test_scene_samples_cli_writes_one_png(tmp_path, capsys):
    output = tmp_path / 'docs' / 'scenes.png'
    scene_samples_main(['--output', str(output), '--seed', '1', '--scenes', '1'])
    assert capsys.readouterr().out.strip() == str(output)
    image = cv2.imread(str(output))
    assert image is not None and image.shape[1] > 640
