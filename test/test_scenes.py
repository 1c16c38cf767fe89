"""Synthetic depth scenes: reproducibility, pinhole geometry of the rendering, masks, sensor model."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from stn_ros.sim.prisms.scenes import (
    KINDS,
    SceneConfig,
    box_footprint,
    camera_pose,
    generate_scene,
    make_object,
    polygon_distance,
    rasterize_polygon,
    render_scene,
)

CONFIG = SceneConfig()


@pytest.fixture(scope='module')
def scenes():
    return [generate_scene(CONFIG, seed) for seed in range(6)]


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = generate_scene(CONFIG, 3), generate_scene(CONFIG, 3), generate_scene(CONFIG, 4)
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert np.array_equal(a.labels, b.labels)
    assert [o.kind for o in a.objects] == [o.kind for o in b.objects]
    assert all(np.array_equal(p.footprint, q.footprint) for p, q in zip(a.objects, b.objects, strict=True))
    assert not np.array_equal(a.depth, c.depth, equal_nan=True)
    assert generate_scene(dataclasses.replace(CONFIG, seed=3)).seed == 3
    assert np.array_equal(generate_scene(dataclasses.replace(CONFIG, seed=3)).labels, a.labels)


def test_scene_contents(scenes):
    kinds = set()
    for scene in scenes:
        assert scene.depth.shape == scene.clean_depth.shape == scene.labels.shape == (480, 640)
        assert scene.depth.dtype == scene.clean_depth.dtype == np.float32
        assert scene.labels.dtype == np.int32
        assert 1 <= len(scene.objects) <= 5
        assert set(np.unique(scene.labels)) == set(range(len(scene.objects) + 1))  # every object visible
        for i, obj in enumerate(scene.objects):
            kinds.add(obj.kind)
            assert 0.02 <= obj.height <= 0.10
            for other in scene.objects[i + 1 :]:
                assert polygon_distance(obj.footprint, other.footprint) >= CONFIG.min_gap
            uv, z = scene.project(np.c_[obj.footprint, np.full(len(obj.footprint), obj.height)])
            assert (uv >= 0).all() and (uv[:, 0] <= 639).all() and (uv[:, 1] <= 479).all()
    assert len(kinds) >= 4


def test_box_top_face_depth_and_area_match_the_pinhole_model():
    length, width, height, x, y = 0.10, 0.05, 0.05, 0.05, 0.02
    box = make_object('box', box_footprint(length, width), height, x, y, 0.3)
    scene = render_scene(CONFIG, [box])
    top_depth = CONFIG.camera_height - height
    top = np.abs(scene.clean_depth - top_depth) < 1e-6
    assert top.sum() == pytest.approx(length * width * CONFIG.fx * CONFIG.fy / top_depth**2, rel=0.02)
    rows, cols = np.nonzero(top)
    # Straight down: table +x is image +u and table +y is image -v.
    assert cols.mean() == pytest.approx(CONFIG.cx + CONFIG.fx * x / top_depth, abs=0.3)
    assert rows.mean() == pytest.approx(CONFIG.cy - CONFIG.fy * y / top_depth, abs=0.3)
    # The mask is the top face plus the side faces turned towards the camera, between top and table.
    assert top.sum() < box.mask.sum() < 1.05 * top.sum()
    assert np.array_equal(box.mask, scene.labels == 1)
    sides = scene.clean_depth[box.mask & ~top]
    assert (sides > top_depth).all() and (sides < CONFIG.camera_height).all()


def test_table_and_masks_are_consistent_with_depth(scenes):
    for scene in scenes:
        table = scene.labels == 0
        assert np.allclose(scene.clean_depth[table], CONFIG.camera_height)
        assert np.allclose(scene.table_depth, CONFIG.camera_height)
        noisy = scene.depth[table] - CONFIG.camera_height
        noisy = noisy[np.isfinite(noisy)]
        assert np.std(noisy) == pytest.approx(CONFIG.depth_noise, rel=0.05)
        assert np.abs(noisy).max() < 6 * CONFIG.depth_noise
        for label, obj in enumerate(scene.objects, start=1):
            assert np.array_equal(obj.mask, scene.labels == label)
            on_object = scene.clean_depth[obj.mask]
            assert on_object.min() == pytest.approx(CONFIG.camera_height - obj.height, abs=1e-6)
            assert (on_object < CONFIG.camera_height).all()


def test_tilted_camera_table_lies_on_the_table_plane():
    scene = generate_scene(dataclasses.replace(CONFIG, max_tilt_deg=15.0), 2)
    assert not np.allclose(scene.table_depth, CONFIG.camera_height)
    rows, cols = np.nonzero(scene.labels == 0)
    pick = slice(None, None, 97)
    points = scene.camera.back_project(
        np.stack((cols[pick], rows[pick]), axis=1), scene.clean_depth[rows[pick], cols[pick]]
    )
    normal, offset = scene.table_plane[:3], scene.table_plane[3]
    assert np.allclose(points @ normal, offset, atol=1e-5)
    # The plane is the camera height away from the camera centre.
    assert -offset == pytest.approx(CONFIG.camera_height)
    pose = camera_pose(0.7, 15.0, 1.0)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3)) and np.linalg.det(pose[:3, :3]) == pytest.approx(1)


def test_dropouts_at_the_configured_rates(scenes):
    random_missing, random_total, edge_missing, edge_total = 0, 0, 0, 0
    for scene in scenes:
        objects = (scene.labels > 0).astype(np.uint8)
        near = cv2.dilate(objects, np.ones((9, 9), np.uint8)) > 0
        far = ~near
        random_missing += np.isnan(scene.depth[far]).sum()
        random_total += far.sum()
        # Object pixels next to the table are on a depth jump of at least 2 cm (the lowest top).
        top_edge = (cv2.erode(objects, np.ones((3, 3), np.uint8)) == 0) & (objects > 0)
        tall = np.zeros_like(top_edge)
        for obj in scene.objects:
            tall |= obj.mask & (np.abs(scene.clean_depth - (CONFIG.camera_height - obj.height)) < 1e-6)
        edge = top_edge & tall
        edge_missing += np.isnan(scene.depth[edge]).sum()
        edge_total += edge.sum()
    assert random_missing / random_total == pytest.approx(CONFIG.dropout_prob, rel=0.1)
    assert edge_missing / edge_total == pytest.approx(CONFIG.edge_dropout_prob, abs=0.05)


def test_rasterize_polygon_counts_pixel_centres():
    square = np.array([[2.5, 2.5], [7.5, 2.5], [7.5, 7.5], [2.5, 7.5]])
    mask = rasterize_polygon(square, 12, 12)
    assert np.array_equal(np.flatnonzero(mask.any(axis=0)), [3, 4, 5, 6, 7])  # 2.5 <= c < 7.5
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    disc = rasterize_polygon(np.stack((50 + 30 * np.cos(angles), 40 + 30 * np.sin(angles)), 1), 80, 100)
    assert disc.sum() == pytest.approx(np.pi * 30**2, rel=0.01)
    l_shape = np.array([[0, 0], [10, 0], [10, 4], [4, 4], [4, 10], [0, 10]], float) + 0.5
    assert rasterize_polygon(l_shape, 12, 12).sum() == 10 * 4 + 6 * 4


def test_make_object_poses_the_footprint():
    obj = make_object('box', box_footprint(0.1, 0.04)[::-1], 0.05, 0.1, -0.2, np.pi / 2)
    assert obj.footprint[:, 0].min() == pytest.approx(0.08) and obj.footprint[:, 1].max() == pytest.approx(-0.15)
    x, y = obj.footprint.T
    assert 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) > 0  # counter-clockwise
    with pytest.raises(ValueError, match='kind'):
        make_object('sphere', box_footprint(0.1, 0.1), 0.05, 0, 0, 0)
    assert KINDS == ('box', 'cylinder', 'convex', 'l_shape', 'nonconvex')
