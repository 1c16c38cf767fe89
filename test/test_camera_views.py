"""Cameras at an angle in the simulated worlds: the view pose, the physics scenes' camera distribution (and the default
scenes unchanged by it), the synthetic camera's tilt."""

import dataclasses
import math

import numpy as np
import pytest

from stn_ros.evaluation.physics.bands import MAX_TILT_DEG
from stn_ros.sim.physics.scenes import PhysicsSceneConfig, draw_camera_pose
from stn_ros.sim.prisms.scenes import MAX_VIEW_TILT_DEG, SceneConfig, camera_pose, generate_scene, tilt_of, view_pose


def test_the_view_looks_at_the_origin_from_its_distance_at_its_tilt():
    rng = np.random.default_rng(0)
    for _ in range(50):
        distance, tilt = rng.uniform(0.5, 1.0), rng.uniform(0.0, 65.0)
        azimuth, roll = rng.uniform(0.0, 2 * math.pi, 2)
        pose = view_pose(distance, tilt, azimuth, roll)
        rotation, centre = pose[:3, :3], pose[:3, 3]
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        np.testing.assert_allclose(centre + distance * rotation[:, 2], 0.0, atol=1e-12)  # the axis meets the origin
        assert tilt_of(pose) == pytest.approx(tilt, abs=1e-9)
        # the optical axis leans towards the azimuth (from table +y, counter-clockwise)
        lean = rotation[:2, 2] / np.linalg.norm(rotation[:2, 2]) if tilt > 1e-3 else None
        if lean is not None:
            np.testing.assert_allclose(lean, [-math.sin(azimuth), math.cos(azimuth)], atol=1e-9)
    # roll turns the image about the optical axis and nothing else
    a, b = view_pose(0.7, 40.0, 1.0, 0.0), view_pose(0.7, 40.0, 1.0, 0.5)
    np.testing.assert_allclose(a[:, 2:], b[:, 2:], atol=1e-12)
    assert math.degrees(math.acos(a[:3, 0] @ b[:3, 0])) == pytest.approx(math.degrees(0.5))
    assert abs(a[2, 0]) < 1e-12  # roll 0: image rows level
    np.testing.assert_allclose(view_pose(0.7, 0.0), camera_pose(0.7), atol=1e-12)  # straight down: today's camera
    assert MAX_TILT_DEG == MAX_VIEW_TILT_DEG


def old_camera_pose(config: PhysicsSceneConfig, rng: np.random.Generator) -> np.ndarray:
    """The physics scenes' camera as generate_physics_scene drew it before views existed (main at caf56b6)."""
    distance = rng.uniform(*config.distance_range)
    return camera_pose(distance, rng.uniform(0.0, config.max_tilt_deg), rng.uniform(0.0, 2.0 * np.pi))


def test_the_default_physics_camera_is_drawn_as_before():
    """Without tilt_range_deg the camera takes the same draws from the scene's generator as the code before views:
    the same pose, and the generator left in the same state for everything drawn after it (objects, sensor)."""
    for config in (PhysicsSceneConfig(), PhysicsSceneConfig(meshes='validation', height=240, width=320)):
        for seed in range(200):
            new, old = np.random.default_rng(seed), np.random.default_rng(seed)
            np.testing.assert_array_equal(draw_camera_pose(config, new), old_camera_pose(config, old))
            assert new.bit_generator.state == old.bit_generator.state


@pytest.mark.parametrize('band', [(0.0, 10.0), (30.0, 45.0), (45.0, 60.0)])
def test_tilted_cameras_cover_the_band_every_azimuth_and_roll(band):
    config = PhysicsSceneConfig(tilt_range_deg=band)
    rng = np.random.default_rng(7)
    poses = np.stack([draw_camera_pose(config, rng) for _ in range(400)])
    tilts = np.degrees(np.arccos(-poses[:, 2, 2]))
    assert (tilts >= band[0] - 1e-9).all() and (tilts <= band[1] + 1e-9).all()
    assert np.ptp(tilts) > 0.8 * (band[1] - band[0])  # spread over the band, not one angle
    distances = np.linalg.norm(poses[:, :3, 3], axis=1)  # the camera looks at the origin
    assert (distances >= 0.6 - 1e-9).all() and (distances <= 0.8 + 1e-9).all()
    np.testing.assert_allclose(poses[:, :3, 3] + distances[:, None] * poses[:, :3, 2], 0.0, atol=1e-12)
    # any roll: the image x axis's angle from level is spread over the circle (resultant of the doubled angles ~ 0)
    level = np.cross(poses[:, :3, 2], [0.0, 0.0, 1.0])
    level /= np.linalg.norm(level, axis=1, keepdims=True)
    roll = np.arctan2(
        np.einsum('ij,ij->i', np.cross(level, poses[:, :3, 0]), poses[:, :3, 2]),
        np.einsum('ij,ij->i', level, poses[:, :3, 0]),
    )
    assert abs(np.exp(1j * roll).mean()) < 0.15
    if band[0] > 0:  # any azimuth: where the axis leans is spread over the circle
        azimuth = np.arctan2(poses[:, 1, 2], poses[:, 0, 2])
        assert abs(np.exp(1j * azimuth).mean()) < 0.15


@pytest.mark.parametrize(
    'fields',
    [
        dict(tilt_range_deg=(10.0, 5.0)),
        dict(tilt_range_deg=(-1.0, 5.0)),
        dict(tilt_range_deg=(30.0, 70.0)),
        dict(view_distance_range=(0.0, 0.8)),
    ],
)
def test_bad_camera_distributions_are_refused(fields):
    with pytest.raises(ValueError, match=next(iter(fields))):
        PhysicsSceneConfig(**fields)


def test_prism_scenes_seen_at_an_angle():
    """view_tilt_deg: the camera tilted that far, ``camera_height`` from the origin along its axis, the objects in
    view near the origin; the default (0) draws the scene it always drew (the tilt branch is not taken)."""
    config = dataclasses.replace(SceneConfig(), view_tilt_deg=45.0, num_objects=(3, 3))
    for seed in range(4):
        scene = generate_scene(config, seed)
        assert tilt_of(scene.table_from_camera) == pytest.approx(45.0)
        assert np.linalg.norm(scene.table_from_camera[:3, 3]) == pytest.approx(config.camera_height)
        assert scene.objects and any(obj.mask.any() for obj in scene.objects)
        assert all(np.hypot(obj.x, obj.y) < 0.5 for obj in scene.objects)  # near where the camera looks
        # the table lies on the scene's plane: n . X = d for the table pixels' points
        camera = scene.camera
        v, u = np.nonzero((scene.labels == 0) & np.isfinite(scene.clean_depth))
        z = scene.clean_depth[v, u].astype(np.float64)
        points = np.stack(((u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z), axis=1)
        np.testing.assert_allclose(points @ scene.table_plane[:3], scene.table_plane[3], atol=1e-4)
    with pytest.raises(ValueError, match='view_tilt_deg'):
        SceneConfig(view_tilt_deg=80.0)


def test_the_synthetic_camera_frames_take_a_tilt():
    from stn_ros.sim.prisms.camera_frames import synthetic_frame

    level, tilted = synthetic_frame(5, 0), synthetic_frame(5, 0, tilt_deg=50.0)
    assert tilt_of(level.scene.table_from_camera) == 0.0
    assert tilt_of(tilted.scene.table_from_camera) == pytest.approx(50.0)
    np.testing.assert_array_equal(synthetic_frame(5, 0, tilt_deg=0.0).depth, level.depth)  # 0: the source's own


def test_the_synthetic_camera_physics_frames_take_a_tilt():
    pytest.importorskip('pybullet')
    from stn_ros.sim.prisms.camera_frames import synthetic_frame

    frame = synthetic_frame(5, 0, source='physics', tilt_deg=40.0)
    assert frame.scene.tilt_deg == pytest.approx(40.0)
    assert frame.scene.snapshot.bodies


# Made once by the code before views existed (main at caf56b6, `git archive caf56b6 stn_ros`), pybullet 3.2.7: the
# default configs' scenes of a few seeds, as numbers (camera pose, bodies at rest, depth, labels).
BEFORE_VIEWS = {
    'physics 5': {
        'pose': [
            [0.999908248365, 0.000949887852, -0.01351268166, 0.0],
            [-0.000949887852, -0.990165985313, -0.139894314549, 0.0],
            [-0.01351268166, 0.139894314549, -0.990074233677, 0.822001169498],
        ],
        'layout': 'cluttered',
        'kinds': ['box', 'mesh 417', 'mesh 489', 'mesh 490', 'mesh 427', 'mesh 488'],
        'positions': [
            [-0.053943017608, -0.095716624693, 0.022587099135],
            [-0.000865488017, -0.076895785574, 0.013199778459],
            [0.002819217868, -0.137011427621, 0.018988918635],
            [-0.048704520674, -0.156403396152, 0.019915579586],
            [0.018406935009, -0.183327039499, 0.021518170432],
            [0.018653877391, -0.023224827367, 0.011347937525],
        ],
        'nan': 2438,
        'depth_sum': 253266.03671216965,
        'labels': 16008,
    },
    'physics 8': {
        'pose': [
            [0.987783833465, -0.005628085592, 0.155728683927, 0.0],
            [0.005628085592, -0.997407095971, -0.071745449745, 0.0],
            [0.155728683927, 0.071745449745, -0.985190929436, 0.630788910642],
        ],
        'layout': 'singulated',
        'kinds': ['mesh 486', 'sphere', 'mesh 425', 'mesh 444'],
        'positions': [
            [0.139419640677, 0.109769150759, 0.013298230882],
            [-0.027669907694, -0.088069078605, 0.014629071929],
            [-0.014136223369, -0.1965849314, 0.006591764645],
            [-0.068369267496, 0.134163106771, 0.009664089657],
        ],
        'nan': 2106,
        'depth_sum': 195991.21775358915,
        'labels': 7863,
    },
    'prisms 3': {
        'pose': [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.7]],
        'nan': 3267,
        'depth_sum': 212709.8569124341,
        'labels': 1858,
    },
}


def assert_scene_as_before(scene, before: dict) -> None:
    np.testing.assert_allclose(scene.table_from_camera[:3], before['pose'], rtol=0, atol=1e-11)
    assert int(np.isnan(scene.depth).sum()) == before['nan'] and int(scene.labels.sum()) == before['labels']
    assert float(np.nansum(scene.depth.astype(np.float64))) == pytest.approx(before['depth_sum'], rel=1e-9)


def test_default_prism_scenes_are_the_scenes_of_before_views():
    assert_scene_as_before(generate_scene(SceneConfig(), 3), BEFORE_VIEWS['prisms 3'])


@pytest.mark.parametrize('seed', [5, 8])
def test_default_physics_scenes_are_the_scenes_of_before_views(seed):
    """The default config (what ``stn_evaluate physics`` and docs/grasp/physics.md use) gives the same scene for a
    seed as before the camera became a distribution: same camera, same bodies at rest, same depth and labels."""
    pytest.importorskip('pybullet')
    from stn_ros.sim.physics.scenes import generate_physics_scene

    before = BEFORE_VIEWS[f'physics {seed}']
    scene = generate_physics_scene(PhysicsSceneConfig(meshes='validation'), seed)
    assert scene.layout == before['layout'] and scene.kinds == before['kinds']
    positions = [b.position for b in scene.snapshot.bodies]
    np.testing.assert_allclose(positions, before['positions'], rtol=0, atol=1e-9)
    assert_scene_as_before(scene, before)
    assert scene.tilt_deg <= PhysicsSceneConfig().max_tilt_deg


@pytest.mark.parametrize('band', [(30.0, 45.0), (45.0, 60.0)])
def test_tilted_physics_scenes_are_in_their_band_and_in_view(band):
    pytest.importorskip('pybullet')
    from stn_ros.sim.physics.scenes import generate_physics_scene

    config = PhysicsSceneConfig(meshes='validation', tilt_range_deg=band)
    for seed in (5, 8):
        scene = generate_physics_scene(config, seed)
        assert band[0] <= scene.tilt_deg <= band[1]
        assert scene.snapshot.bodies and sorted(np.unique(scene.labels))[0] == 0
        uv, z = scene.project(np.concatenate([b.world_vertices() for b in scene.snapshot.bodies]))
        assert (uv >= 0).all() and (uv[:, 0] < scene.camera.width).all() and (uv[:, 1] < scene.camera.height).all()
        # the table fitted from the scene's plane: the recorded plane holds the table pixels' points
        camera = scene.camera
        v, u = np.nonzero((scene.labels == 0) & np.isfinite(scene.clean_depth))
        d = scene.clean_depth[v, u].astype(np.float64)
        points = np.stack(((u - camera.cx) / camera.fx * d, (v - camera.cy) / camera.fy * d, d), axis=1)
        np.testing.assert_allclose(points @ scene.table_plane[:3], scene.table_plane[3], atol=2e-3)


def test_the_docstring_examples_hold():
    import doctest

    import stn_ros.evaluation.min_area_rect
    import stn_ros.evaluation.physics.bands
    import stn_ros.sim.prisms.scenes

    for module in (stn_ros.sim.prisms.scenes, stn_ros.evaluation.physics.bands, stn_ros.evaluation.min_area_rect):
        assert doctest.testmod(module).failed == 0, module.__name__
