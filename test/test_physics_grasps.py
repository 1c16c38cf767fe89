"""Image grasps in the physics world: the pose conversion, the candidate sampler, physics labels, the dataset."""

import json
import math

import numpy as np
import pytest

pytest.importorskip('pybullet')

from stn_ros.perception.grasps.grasp_image import GripperConfig  # noqa: E402
from stn_ros.sim.physics import world  # noqa: E402
from stn_ros.sim.physics.grasps import (  # noqa: E402
    grasp_pose,
    label_grasps,
    sample_candidates,
)
from stn_ros.sim.physics.scenes import PhysicsScene, PhysicsSceneConfig, project, sensor_readings  # noqa: E402
from stn_ros.sim.prisms.scenes import camera_pose  # noqa: E402
from stn_ros.training.physics.grasp_labels import (  # noqa: E402
    PhysicsDataConfig,
    build_physics_dataset,
    load_physics_dataset,
)

BOX_HALF = (0.05, 0.02, 0.025)  # 10 cm long (wider than the 8 cm opening), 4 cm wide, 5 cm tall
BOX_YAW = 0.5


def box_scene(tilt_deg: float = 6.0) -> PhysicsScene:
    """One box on the table under a tilted camera, rendered with the sensor model."""
    body = world.BodySpec(
        'box',
        BOX_HALF,
        position=(0.02, -0.01, BOX_HALF[2]),
        orientation=(0, 0, math.sin(BOX_YAW / 2), math.cos(BOX_YAW / 2)),
    )
    snapshot = world.WorldSnapshot((body,))
    config = PhysicsSceneConfig()
    camera, pose = config.camera(), camera_pose(0.65, tilt_deg, 1.0)
    pybullet, client = world.connect()
    try:
        (uid,) = world.load_world(pybullet, client, snapshot)
        clean, seen = world.render_depth(pybullet, client, camera, pose)
    finally:
        pybullet.disconnect(client)
    normal = pose[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    plane = np.concatenate((normal, [-float(normal @ (pose[:3, :3].T @ pose[:3, 3]))]))
    depth = sensor_readings(clean, camera, config, np.random.default_rng(0))
    labels = (seen == uid).astype(np.int32)
    return PhysicsScene(depth, clean, labels, snapshot, ['box'], 'singulated', camera, pose, plane, 0)


def test_grasp_pose_back_projects_the_image_grasp():
    scene = box_scene()
    target = np.array([0.02, -0.01, 0.03])
    (uv,), (z,) = scene.project(target[None])
    ahead, _ = scene.project((target + 0.01 * np.array([math.cos(0.3), math.sin(0.3), 0.0]))[None])
    angle = math.atan2(*(ahead[0] - uv)[::-1])
    pose = grasp_pose(uv, angle, z, scene.camera, scene.table_from_camera)
    np.testing.assert_allclose(pose.centre, target, atol=1e-9)
    np.testing.assert_allclose(pose.approach, scene.table_from_camera[:3, 2], atol=1e-12)
    # The axis points where the image axis points, at the grasp's depth.
    tip, _ = project(
        np.asarray(pose.centre)[None] + 0.01 * np.asarray(pose.axis), scene.camera, scene.table_from_camera
    )
    direction = tip[0] - uv
    assert abs(math.remainder(math.atan2(direction[1], direction[0]) - angle, math.pi)) < 1e-6


def test_antipodal_candidates_close_across_the_narrow_side_and_hold():
    scene = box_scene()
    gripper = GripperConfig()
    rng = np.random.default_rng(3)
    grasps = sample_candidates(scene, 0, gripper, rng, 12, antipodal_fraction=1.0)
    assert len(grasps) >= 8 and grasps.antipodal.all()
    # In the table frame the narrow side's normal is at BOX_YAW + 90 deg; the 10 cm side does not fit.
    for centre, angle, z in zip(grasps.centres, grasps.angles, grasps.z, strict=True):
        pose = grasp_pose(centre, angle, z, scene.camera, scene.table_from_camera)
        yaw = math.atan2(pose.axis[1], pose.axis[0])
        assert abs(math.remainder(yaw - (BOX_YAW + math.pi / 2), math.pi)) < math.radians(30)
        assert 0.0 < pose.centre[2] < 2 * BOX_HALF[2]  # fingertips between the table and the top
    quality = label_grasps(scene, grasps[:6], 0, rng, trials=2)
    assert quality.mean() >= 0.6, quality


def test_the_dataset_builds_resumes_and_refuses_other_options(tmp_path):
    config = PhysicsDataConfig(num_scenes=2, candidates=3, trials=2)
    first = build_physics_dataset(config, tmp_path, workers=1, progress=False)
    assert first['scenes_built_now'] == 2 and first['grasps_labelled_now'] > 0
    again = build_physics_dataset(config, tmp_path, workers=1, progress=False)
    assert again['scenes_built_now'] == 0
    with pytest.raises(ValueError, match='other options'):
        build_physics_dataset(PhysicsDataConfig(num_scenes=2, candidates=4, trials=2), tmp_path, workers=1)
    data = load_physics_dataset(tmp_path)
    count = len(data['quality'])
    assert count == first['grasps_labelled_now']
    assert data['images'].shape == (count, 32, 32) and np.isfinite(data['images']).all()
    assert set(np.unique(data['quality'] * 2)) <= {0.0, 1.0, 2.0}  # shares of 2 trials
    assert len(data['depth_mm']) == 2 and set(data['scene']) == {0, 1}
    meshes = [int(k.split()[1]) for kinds in data['kinds'] for k in kinds if k.startswith('mesh')]
    assert all(index in world.TRAIN_MESHES for index in meshes)
    assert json.loads((tmp_path / 'manifest.json').read_text())['candidates'] == 3
