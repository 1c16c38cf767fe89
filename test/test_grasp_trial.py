"""Simulated parallel-jaw grasp trials: a box held across its short side, refused along its long side,
nothing in empty air, Coulomb friction deciding a heavy box, bit-for-bit repeatability, tilted approaches."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('pybullet')

from stn_ros.sim.physics.grasp_trial import (  # noqa: E402
    OUTCOMES,
    GraspPose,
    TrialConfig,
    grasp_trial,
    perturb,
    robust_trials,
)
from stn_ros.sim.physics.world import BodySpec, WorldSnapshot, connect  # noqa: E402

HALF = (0.05, 0.02, 0.025)
"""The test box: 0.10 m along x (wider than the 0.08 m opening), 0.04 m along y, 0.05 m tall."""
DOWN = (0.0, 0.0, -1.0)


def box_world(mass: float = 0.1, yaw_deg: float = 0.0, x: float = 0.0) -> WorldSnapshot:
    """The test box resting on the table (centre at half its height), turned ``yaw_deg`` about ``z``."""
    half_yaw = math.radians(yaw_deg) / 2
    orientation = (0.0, 0.0, math.sin(half_yaw), math.cos(half_yaw))
    return WorldSnapshot((BodySpec('box', HALF, mass=mass, position=(x, 0.0, HALF[2]), orientation=orientation),))


SHORT_SIDE = GraspPose(centre=(0.0, 0.0, HALF[2]), axis=(0.0, 1.0, 0.0), approach=DOWN)
LONG_SIDE = GraspPose(centre=(0.0, 0.0, HALF[2]), axis=(1.0, 0.0, 0.0), approach=DOWN)


@pytest.fixture(scope='module')
def world():
    pybullet, client = connect()
    yield pybullet, client
    pybullet.disconnect(physicsClientId=client)


def test_short_side_grasp_holds_under_pose_and_friction_noise(world):
    result = grasp_trial(box_world(), SHORT_SIDE, world=world)
    assert (result.success, result.outcome, result.held_body) == (True, 'held', 0)
    assert result.final_poses[0][0][2] > HALF[2] + TrialConfig().lift_height / 2
    held = robust_trials(box_world(), SHORT_SIDE, np.random.default_rng(0), trials=10, world=world)
    assert held.shape == (10,) and set(held) <= {-1, 0}
    assert (held == 0).sum() >= 9, held


def test_long_side_is_wider_than_the_opening(world):
    result = grasp_trial(box_world(), LONG_SIDE, world=world)
    assert (result.success, result.outcome, result.held_body) == (False, 'blocked', -1)
    assert (robust_trials(box_world(), LONG_SIDE, np.random.default_rng(1), trials=10, world=world) == -1).all()


def test_grasp_in_empty_air_holds_nothing(world):
    air = GraspPose(centre=(0.3, 0.3, 0.05), axis=(1.0, 0.0, 0.0), approach=DOWN)
    result = grasp_trial(box_world(), air, world=world)
    assert (result.success, result.outcome, result.held_body) == (False, 'empty', -1)
    assert result.final_poses[0][0] == pytest.approx((0.0, 0.0, HALF[2]), abs=1e-3)  # the box was not touched
    assert (robust_trials(box_world(), air, np.random.default_rng(2), trials=10, world=world) == -1).all()


def test_friction_decides_whether_a_heavy_box_slips(world):
    # 1 kg needs 9.8 N of friction from two fingers squeezing 20 N each: mu = 0.2 gives 8 N, mu = 0.8 gives 32 N.
    slippery = grasp_trial(box_world(mass=1.0), SHORT_SIDE, friction=0.2, world=world)
    assert (slippery.success, slippery.outcome, slippery.held_body) == (False, 'dropped', -1)
    assert slippery.final_poses[0][0][2] < 0.03  # back on the table
    grippy = grasp_trial(box_world(mass=1.0), SHORT_SIDE, friction=0.8, world=world)
    assert (grippy.success, grippy.outcome) == (True, 'held')


def test_same_inputs_give_bit_identical_trials(world):
    grasp = perturb(SHORT_SIDE, np.random.default_rng(3))
    first = grasp_trial(box_world(), grasp, friction=0.5, world=world)
    grasp_trial(box_world(mass=0.3), LONG_SIDE, world=world)  # a different trial in between on the same client
    again = grasp_trial(box_world(), grasp, friction=0.5, world=world)
    fresh = grasp_trial(box_world(), grasp, friction=0.5)  # its own client
    assert first.outcome == 'held'
    pose_bytes = [np.array(r.final_poses[0][0] + r.final_poses[0][1]).tobytes() for r in (first, again, fresh)]
    assert pose_bytes[0] == pose_bytes[1] == pose_bytes[2]
    assert first == again == fresh
    other = grasp_trial(box_world(), grasp, friction=0.7, world=world)
    assert other.final_poses != first.final_poses  # the friction does reach the physics


def test_robust_trials_repeat_with_the_same_seed(world):
    a = robust_trials(box_world(), SHORT_SIDE, np.random.default_rng(4), trials=3, world=world)
    b = robust_trials(box_world(), SHORT_SIDE, np.random.default_rng(4), trials=3)
    assert np.array_equal(a, b)


def test_tilted_approach_on_a_turned_box(world):
    # The box turned 30 degrees about z; the approach tilted 10 degrees off vertical inside the closing plane,
    # so the fingers meet the box's walls at 10 degrees (inside the friction cone).
    yaw, tilt = math.radians(30.0), math.radians(10.0)
    short = np.array([-math.sin(yaw), math.cos(yaw), 0.0])  # the box's y axis: 0.04 m across
    long = np.array([math.cos(yaw), math.sin(yaw), 0.0])  # the box's x axis: 0.10 m across
    approach = -math.cos(tilt) * np.array([0.0, 0.0, 1.0]) + math.sin(tilt) * short
    axis = math.cos(tilt) * short + math.sin(tilt) * np.array([0.0, 0.0, 1.0])
    centre = (0.0, 0.0, HALF[2])
    tilted = GraspPose(centre=centre, axis=tuple(axis), approach=tuple(approach))
    result = grasp_trial(box_world(yaw_deg=30.0), tilted, world=world)
    assert (result.success, result.outcome, result.held_body) == (True, 'held', 0)
    # The same tilt along the box's long side cannot open wide enough.
    approach = -math.cos(tilt) * np.array([0.0, 0.0, 1.0]) + math.sin(tilt) * long
    along = GraspPose(centre=centre, axis=tuple(long), approach=tuple(approach))
    assert grasp_trial(box_world(yaw_deg=30.0), along, world=world).outcome == 'blocked'
    # An approach tilted across the closing plane (about the axis) also holds.
    across = GraspPose(centre=centre, axis=tuple(short), approach=tuple(approach))
    assert grasp_trial(box_world(yaw_deg=30.0), across, world=world).success


def test_a_grasp_opened_narrower_clears_a_tall_neighbour_the_full_opening_lands_on(world):
    post = BodySpec('box', (0.03, 0.005, 0.05), mass=0.5, position=(0.0, 0.055, 0.05))  # 10 cm tall, y 5-6 cm
    beside = WorldSnapshot(box_world().bodies + (post,))
    assert grasp_trial(beside, SHORT_SIDE, world=world).outcome == 'blocked'  # the +y finger (4-6 cm) lands on it
    narrow = GraspPose(SHORT_SIDE.centre, SHORT_SIDE.axis, SHORT_SIDE.approach, opening=0.05)  # fingers 2.5-4.5 cm
    result = grasp_trial(beside, narrow, world=world)
    assert (result.outcome, result.held_body) == ('held', 0)
    assert perturb(narrow, np.random.default_rng(3)).opening == 0.05


def test_grasp_pose_orthogonalizes_and_validates():
    pose = GraspPose(centre=(0, 0, 0.1), axis=(1.0, 0.0, 0.5), approach=(0.0, 0.0, -2.0))
    assert pose.approach == (0.0, 0.0, -1.0)
    assert pose.axis == pytest.approx((1.0, 0.0, 0.0))
    rotation = pose.rotation()
    assert rotation.T @ rotation == pytest.approx(np.eye(3))
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert rotation[:, 0] == pytest.approx(pose.axis) and rotation[:, 2] == pytest.approx(pose.approach)
    with pytest.raises(ValueError, match='axis must be a non-zero direction'):
        GraspPose(centre=(0, 0, 0), axis=(0, 0, 0), approach=DOWN)
    with pytest.raises(ValueError, match='parallel to the approach'):
        GraspPose(centre=(0, 0, 0), axis=(0, 0, 3), approach=DOWN)
    with pytest.raises(ValueError, match='approach must be a non-zero direction'):
        GraspPose(centre=(0, 0, 0), axis=(1, 0, 0), approach=(0, 0, 0))
    with pytest.raises(ValueError, match='3 finite numbers'):
        GraspPose(centre=(0, 0, float('nan')), axis=(1, 0, 0), approach=DOWN)
    with pytest.raises(ValueError, match='opening must be a positive number'):
        GraspPose(centre=(0, 0, 0), axis=(1, 0, 0), approach=DOWN, opening=float('nan'))


def test_perturb_is_small_seeded_noise():
    rng = np.random.default_rng(5)
    poses = [perturb(SHORT_SIDE, rng) for _ in range(200)]
    offsets = np.array([p.centre for p in poses]) - SHORT_SIDE.centre
    assert np.std(offsets, axis=0) == pytest.approx([0.003] * 3, rel=0.25)
    tilts = np.degrees(np.arccos(np.clip([-p.approach[2] for p in poses], -1, 1)))
    assert 0.5 < np.median(tilts) < 6.0 and tilts.max() < 15.0
    for pose in poses:
        assert abs(np.dot(pose.axis, pose.approach)) < 1e-12
    assert perturb(SHORT_SIDE, np.random.default_rng(6)) == perturb(SHORT_SIDE, np.random.default_rng(6))
    assert set(OUTCOMES) == {'held', 'blocked', 'empty', 'dropped'}


def test_module_imports_without_pybullet():
    code = "import sys; sys.modules['pybullet'] = None; import stn_ros.sim.physics.grasp_trial"
    subprocess.run([sys.executable, '-c', code], check=True)
