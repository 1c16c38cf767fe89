"""The grasp trials: every grasp of every method tried once by the simulated gripper in pybullet, one scene per
job, the jobs spread over a process pool."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from stn_ros.evaluation.physics.methods import MethodGrasps, candidate_grasps
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.physics.grasp_trial import GraspPose
from stn_ros.sim.physics.grasps import frame_grasp_pose, grasp_pose
from stn_ros.sim.physics.scenes import PhysicsScene

SAME_GRASPS = {'min_area_rect_gqcnn': 'min_area_rect'}
"""Methods that only choose among another method's grasps (method -> that method): their trials are its trials."""


@dataclass
class Tried:
    """Outcomes of one method's grasps on one scene."""

    held: np.ndarray  # (N,) int: body lifted and held, -1 none
    outcomes: np.ndarray  # (N,) str: the trial's outcome, 'no_depth' where the grasp had no gripper depth
    into_table: np.ndarray  # (N,) bool: the fingertips were aimed below the gripper's table clearance


def try_grasps(
    scene: PhysicsScene, method: MethodGrasps, gripper: GripperConfig, world_handle: tuple[Any, int]
) -> Tried:
    """Try each grasp once with ``gripper`` (its friction ``mu``): along its gripper frame when the method has one
    for it, else as an image grasp (approaching along the optical axis); a grasp without a gripper depth is not
    tried and fails."""
    from stn_ros.sim.physics.grasp_trial import TrialConfig, grasp_trial

    config = TrialConfig(gripper=gripper)

    count = len(method.grasps)
    tried = Tried(np.full(count, -1, np.int64), np.full(count, 'no_depth', dtype=object), np.zeros(count, bool))
    for i in range(count):
        pose = grasp_world_pose(scene, method, i)
        if pose is None:
            continue
        result = grasp_trial(scene.snapshot, pose, gripper.mu, config, world=world_handle)
        tried.held[i] = result.held_body if result.success else -1
        tried.outcomes[i] = result.outcome
        tried.into_table[i] = pose.centre[2] < gripper.table_clearance
    return tried


def grasp_world_pose(scene: PhysicsScene, method: MethodGrasps, row: int) -> GraspPose | None:
    """The world grasp the gripper tries for ``method``'s grasp ``row`` on ``scene``: along its gripper frame when the
    method has a finite one for it, else the image grasp approaching along the optical axis, the jaws opened as far as
    the method says (fully where it does not); None when the grasp has no gripper depth (or no centre): not tried."""
    g = method.grasps
    if not np.isfinite(g.z[row]) or not np.isfinite(g.centres[row]).all():
        return None
    if method.frames is not None and np.isfinite(method.frames[row]).all():
        pose = frame_grasp_pose(method.frames[row], scene.table_from_camera)
    else:
        pose = grasp_pose(g.centres[row], g.angles[row], g.z[row], scene.camera, scene.table_from_camera)
    if method.openings is not None and np.isfinite(method.openings[row]):
        pose = replace(pose, opening=float(method.openings[row]))
    return pose


@dataclass
class TrialJob:
    """The physics work of one scene, sent to a worker process."""

    scene: PhysicsScene
    seed: int
    methods: dict[str, MethodGrasps]
    candidates: int
    gripper: GripperConfig


def run_trials(job: TrialJob) -> dict[str, tuple[MethodGrasps, Tried]]:
    """Try every grasp of every method of one scene (and sample the upper bound's candidates)."""
    from stn_ros.sim.physics.world import connect

    scene, gripper = job.scene, job.gripper
    methods = dict(job.methods)
    methods['best_candidate'] = candidate_grasps(scene, gripper, np.random.default_rng(job.seed), job.candidates)
    pybullet, client = connect()
    try:
        tried = {
            name: try_grasps(scene, m, gripper, (pybullet, client))
            for name, m in methods.items()
            if name not in SAME_GRASPS
        }
    finally:
        pybullet.disconnect(client)
    # a trial rebuilds the world from the snapshot: the same grasp tried again would hold or fail the same way
    tried.update({name: tried[source] for name, source in SAME_GRASPS.items() if name in methods})
    return {name: (m, tried[name]) for name, m in methods.items()}


def run_all_trials(jobs: list[TrialJob], workers: int) -> Iterator[dict[str, tuple[MethodGrasps, Tried]]]:
    """:func:`run_trials` of each job, in order, in ``workers`` spawned processes (in this one for one worker)."""
    with multiprocessing.get_context('spawn').Pool(workers) if workers > 1 else _InProcess() as pool:
        yield from pool.imap(run_trials, jobs)


class _InProcess:
    """A stand-in for a one-worker pool: runs jobs in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def imap(self, function, jobs):
        return map(function, jobs)
