"""The physics world and its scenes: reserved objects refused, exact projection, repeatable scenes."""

import math

import numpy as np
import pytest

pytest.importorskip('pybullet')

from stn_ros.sim.physics import world  # noqa: E402
from stn_ros.sim.physics.scenes import (  # noqa: E402
    PhysicsSceneConfig,
    generate_physics_scene,
    project,
    projector_shadow,
)
from stn_ros.sim.prisms.scenes import camera_pose, rasterize_polygon  # noqa: E402


@pytest.mark.parametrize('index', [500, 777, 999, 1000, -1, 2.5])
def test_reserved_and_unknown_meshes_are_refused(index):
    with pytest.raises(ValueError, match='reserved'):
        world.mesh_file(index)
    with pytest.raises(ValueError, match='reserved'):
        world.BodySpec('mesh', (0.01,), mesh_index=index)


def test_the_splits_are_disjoint_and_inside_the_allowed_meshes():
    train, validation = set(world.TRAIN_MESHES), set(world.VALIDATION_MESHES)
    assert not train & validation
    assert train | validation == set(world.MESH_INDICES)
    assert world.mesh_file(0).is_file() and world.mesh_file(499).is_file()


def test_broken_meshes_are_left_out():
    with pytest.raises(ValueError, match='no usable vertices'):
        world.mesh_vertices(168)  # every vertex of random_urdfs/168 is NaN
    assert 168 not in world.usable_meshes('train') and len(world.usable_meshes('train')) >= 390
    assert set(world.usable_meshes('validation')) <= set(world.VALIDATION_MESHES)


def _box_on_table(pybullet, client, centre_xy, half, yaw):
    body = world.BodySpec(
        'box', half, position=(*centre_xy, half[2]), orientation=(0, 0, math.sin(yaw / 2), math.cos(yaw / 2))
    )
    return body, world.load_world(pybullet, client, world.WorldSnapshot((body,)))[0]


@pytest.mark.parametrize(
    'tilt_deg, size', [(0.0, (480, 640)), (8.0, (480, 640)), (5.0, (240, 320)), (10.0, (720, 1280))]
)
def test_camera_info_matches_the_rendering_to_a_quarter_pixel(tilt_deg, size):
    """Known 3-D points (a box's top face) land where the intrinsics project them: the rendered face and the
    face rasterized from the projected corners (pixel-centre rule) agree in centroid within 0.25 px."""
    height, width = size
    camera = PhysicsSceneConfig(height=height, width=width).camera()
    pose = camera_pose(0.7, tilt_deg, 0.6)
    rng = np.random.default_rng(int(tilt_deg * 10) + width)
    pybullet, client = world.connect()
    try:
        errors = []
        for _ in range(4):
            look = pose[:3, 3] - pose[:3, 3][2] / pose[2, 2] * pose[:3, 2]
            half = tuple(rng.uniform(0.015, 0.04, 2)) + (0.02,)
            body, uid = _box_on_table(
                pybullet, client, look[:2] + rng.uniform(-0.1, 0.1, 2), half, rng.uniform(0, np.pi)
            )
            depth, seen = world.render_depth(pybullet, client, camera, pose)
            corners = body.world_vertices()
            top = corners[corners[:, 2] > 0.03]
            uv, _ = project(top, camera, pose)
            order = np.argsort(np.arctan2(*(uv - uv.mean(0)).T[::-1]))
            expected = rasterize_polygon(uv[order], height, width)
            # The top face's pixels: on the box and at the depth of the plane z = 0.04 along their rays.
            v, u = np.nonzero(seen == uid)
            rays = np.stack(((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u, float)), 1)
            world_rays = rays @ pose[:3, :3].T
            plane_depth = (2 * half[2] - pose[2, 3]) / world_rays[:, 2]
            on_top = np.abs(depth[v, u] - plane_depth) < 5e-4
            rendered = np.zeros_like(expected)
            rendered[v[on_top], u[on_top]] = True
            assert abs(int(rendered.sum()) - int(expected.sum())) <= 0.03 * expected.sum() + 4
            centroid = lambda mask: np.array(np.nonzero(mask)[::-1], float).mean(axis=1)  # noqa: E731
            errors.append(np.abs(centroid(rendered) - centroid(expected)).max())
        assert max(errors) < 0.25, errors
    finally:
        pybullet.disconnect(client)


def test_depth_is_metric_camera_z():
    """The table's depth along each ray equals the analytic plane depth (near/far formula)."""
    camera = PhysicsSceneConfig().camera()
    pose = camera_pose(0.8, 7.0, 2.0)
    pybullet, client = world.connect()
    try:
        world.load_world(pybullet, client, world.WorldSnapshot(()))
        depth, _ = world.render_depth(pybullet, client, camera, pose)
    finally:
        pybullet.disconnect(client)
    v, u = np.mgrid[0 : camera.height : 7, 0 : camera.width : 7]
    rays = np.stack(((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones(u.shape)), -1)
    expected = -pose[2, 3] / (rays @ pose[:3, :3].T)[..., 2]
    np.testing.assert_allclose(depth[v, u], expected, atol=5e-4)


def test_scenes_are_repeatable_and_labelled():
    config = PhysicsSceneConfig()
    a, b = generate_physics_scene(config, 11), generate_physics_scene(config, 11)
    assert a.snapshot == b.snapshot
    np.testing.assert_array_equal(a.depth, b.depth)  # NaNs in the same places
    assert 1 <= len(a.snapshot.bodies) <= 6
    assert sorted(np.unique(a.labels)) == list(range(len(a.snapshot.bodies) + 1))
    other = generate_physics_scene(config, 12)
    assert not np.array_equal(np.nan_to_num(a.depth), np.nan_to_num(other.depth))


def test_scenes_draw_only_their_split_and_both_layouts():
    layouts, meshes = set(), {'train': set(), 'validation': set()}
    for split in meshes:
        config = PhysicsSceneConfig(meshes=split, procedural_prob=0.2)
        for seed in range(6):
            scene = generate_physics_scene(config, seed)
            layouts.add(scene.layout)
            meshes[split] |= {b.mesh_index for b in scene.snapshot.bodies if b.shape == 'mesh'}
            body_top = max(b.world_vertices()[:, 2].max() for b in scene.snapshot.bodies)
            assert body_top < 0.2  # at rest on the table
            uv, z = scene.project(np.concatenate([b.world_vertices() for b in scene.snapshot.bodies]))
            assert (uv >= 0).all() and (uv[:, 0] < scene.camera.width).all() and (uv[:, 1] < scene.camera.height).all()
            assert 0.45 < np.median(z) < 0.95
    assert layouts == {'singulated', 'cluttered'}
    assert meshes['train'] and meshes['train'] <= set(world.TRAIN_MESHES)
    assert meshes['validation'] and meshes['validation'] <= set(world.VALIDATION_MESHES)


def test_objects_fit_the_gripper():
    config = PhysicsSceneConfig()
    for seed in range(5):
        for body in generate_physics_scene(config, seed).snapshot.bodies:
            extents = np.sort(np.ptp(body.local_vertices(), axis=0))
            assert extents[1] <= config.graspable_range[1] * 1.01 + 1e-9
            assert extents[2] <= config.max_extent * 1.01


def test_projector_shadow_width_follows_the_depth_step():
    depth = np.full((4, 60), 0.8, np.float32)
    depth[:, :30] = 0.6
    fx, baseline = 525.0, 0.05
    shadow = projector_shadow(depth, fx, baseline)
    width = fx * baseline * (1 / 0.6 - 1 / 0.8)  # 10.9 px
    assert shadow[:, 30 : 30 + int(width)].all()
    assert not shadow[:, :30].any() and not shadow[:, 30 + int(width) + 1 :].any()
    assert not projector_shadow(depth, fx, 0.0).any()
