"""Clutter-removal worlds in pybullet: packed and pile rounds have five objects inside the workspace, the pile without
its bin, deterministic per seed and the same for both views; the table takes away what a grasp held."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip('pybullet')

from stn_ros.evaluation.clutter.protocol import TABLE_CLEAR, TWO_FAILURES, Proposal, run_round  # noqa: E402
from stn_ros.sim.physics import world  # noqa: E402
from stn_ros.sim.physics.clutter import (  # noqa: E402
    CLUTTER_LAYOUTS,
    ClutterConfig,
    ClutterTable,
    ClutterWorld,
    _packed,
    clutter_view,
    generate_clutter_world,
    in_workspace,
)
from stn_ros.sim.physics.grasp_trial import GraspPose  # noqa: E402
from stn_ros.sim.physics.scenes import random_body  # noqa: E402


@pytest.mark.parametrize('layout', CLUTTER_LAYOUTS)
def test_a_round_starts_with_five_objects_at_rest_in_the_workspace_and_the_pile_without_its_bin(layout):
    config = ClutterConfig()
    initial = generate_clutter_world(layout, 3, config)
    assert len(initial.snapshot.bodies) == 5 == len(initial.kinds)
    assert all(in_workspace(b, config) for b in initial.snapshot.bodies)
    assert all(not kind.startswith('mesh') or 400 <= int(kind.split()[1]) <= 499 for kind in initial.kinds)
    assert generate_clutter_world(layout, 3, config) == initial  # a function of the seed
    with ClutterTable(initial, 'top', config) as table:
        scene = table.observe()
        pybullet, client = table._world
        assert pybullet.getNumBodies(physicsClientId=client) == 1 + 5  # the table and the objects: no bin walls
    # every pixel that is not an object is the table plane (a bin's walls would stand out of it)
    camera, pose = scene.camera, scene.table_from_camera
    rows, cols = np.nonzero((scene.labels == 0) & np.isfinite(scene.clean_depth))
    z = scene.clean_depth[rows, cols].astype(np.float64)
    points = np.stack(((cols - camera.cx) * z / camera.fx, (rows - camera.cy) * z / camera.fy, z), axis=1)
    heights = (points @ pose[:3, :3].T + pose[:3, 3])[:, 2]
    assert np.abs(heights).max() < 2e-3
    assert {int(k) for k in np.unique(scene.labels)} <= set(range(6)) and (scene.labels > 0).any()


def test_packed_objects_stand_upright_side_by_side():
    """Before they settle: each body's longest extent vertical, 2 mm above the table, footprints apart."""
    config = ClutterConfig()
    rng = np.random.default_rng(5)
    bodies = [random_body(config.scene, rng) for _ in range(5)]
    posed = _packed(bodies, config, rng)
    assert posed is not None and len(posed) == 5
    circles = []
    for body in posed:
        vertices = body.world_vertices()
        extents = np.ptp(vertices, axis=0)
        assert extents[2] == pytest.approx(np.ptp(body.local_vertices(), axis=0).max(), rel=1e-6)
        assert vertices[:, 2].min() == pytest.approx(0.002, abs=1e-9)
        assert np.abs(body.position[:2]).max() <= config.packed_half
        circles.append((np.asarray(body.position[:2]), 0.5 * math.hypot(*extents[:2])))
    for i, (ci, ri) in enumerate(circles):
        for cj, rj in circles[i + 1 :]:
            assert np.linalg.norm(ci - cj) >= ri + rj + config.packed_gap - 1e-9


def test_views_look_at_the_same_world_from_above_and_from_60_degrees():
    for seed in (1, 2):
        top, side = clutter_view('top', seed), clutter_view('side', seed)
        for (camera, pose), tilt in ((top, 0.0), (side, 60.0)):
            assert (camera.width, camera.height, camera.fx, camera.fy) == (640, 480, 540.0, 540.0)
            assert math.degrees(math.acos(-pose[2, 2])) == pytest.approx(tilt, abs=1e-6)
            assert np.allclose(pose[:3, 3] + 0.7 * pose[:3, 2], 0.0)  # 0.7 m from the workspace centre
            assert abs(pose[2, 0]) < 1e-9  # level: image rows horizontal
    with pytest.raises(ValueError, match='view must be one of'):
        clutter_view('front', 1)


BOX = world.BodySpec('box', (0.05, 0.02, 0.025), mass=0.1, position=(0.0, 0.0, 0.025))
"""10 x 4 x 5 cm: held across its 4 cm side, too wide along its 10 cm side."""


class GraspTheBox:
    """Grasps the box at its centre from above, across (``axis`` y) or along (x) its short side."""

    def __init__(self, axis):
        self.axis = axis

    def __call__(self, frame) -> Proposal:
        return Proposal(
            GraspPose((0.0, 0.0, 0.025), self.axis, (0.0, 0.0, -1.0)), np.zeros((0, 2)), centre=(320.0, 240.0)
        )


def box_round(axis):
    initial = ClutterWorld(world.WorldSnapshot((BOX,)), ('box',), 'packed', 0)
    with ClutterTable(initial, 'top') as table:
        return run_round(table, GraspTheBox(axis)), table.objects


def test_the_table_takes_away_what_a_grasp_held_and_keeps_what_it_missed():
    cleared, left = box_round((0.0, 1.0, 0.0))
    assert cleared.end == TABLE_CLEAR and left == []
    assert [(a.outcome, a.held, a.target) for a in cleared.attempts] == [('held', 0, 0)]
    failed, left = box_round((1.0, 0.0, 0.0))
    assert failed.end == TWO_FAILURES and left == [0]
    assert [a.outcome for a in failed.attempts] == ['blocked', 'blocked'] and failed.successes == 0


def test_a_round_repeats_for_its_seed():
    """The same seed, view and method give the same round: the worlds, the frames' noise and the trials are seeded
    or rebuilt from snapshots."""
    from stn_ros.evaluation.clutter.methods import rule_source
    from stn_ros.evaluation.clutter.summary import RoundRecord, round_json
    from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER

    def one_round():
        with ClutterTable(generate_clutter_world('pile', 4), 'top') as table:
            result = run_round(table, rule_source(TRAINED_GRIPPER))
        stored = round_json(RoundRecord('pile', 'top', 'min_area_rect', 4, result))
        for attempt in stored['attempts']:
            attempt.pop('planning_s')
        return {k: v for k, v in stored.items() if k != 'seconds'}

    first = one_round()
    assert first['attempts'] and one_round() == first
