"""How each method of the physics evaluation proposes grasps on a scene, and picks the scene's best.

The pipeline's grasps come from what the nodes published (:mod:`.graph`); the baselines are computed here from
the scene's depth image. No pybullet, no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stn_ros.evaluation.min_area_rect import min_area_rect_grasp
from stn_ros.evaluation.physics.graph import FrameOutput
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import image_gripper_depths
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.sim.physics.grasps import ImageGrasps, sample_candidates
from stn_ros.sim.physics.scenes import PhysicsScene

METHODS = ('pipeline', 'min_area_rect', 'random_axis', 'best_candidate')
METHOD_NAMES = {
    'pipeline': 'shipped pipeline (stn_node + grasp_quality_node over ROS 2)',
    'min_area_rect': 'OpenCV minAreaRect of the proposal mask',
    'random_axis': "random axis through the pipeline's centres",
    'best_candidate': 'best of the physics-tried candidates (upper bound)',
}


@dataclass
class MethodGrasps:
    """One method's grasps on one scene: image grasps, the body each targets (-1: none), the scene's pick."""

    grasps: ImageGrasps
    targets: np.ndarray
    pick: int | None  # row of the scene's best grasp (None: the method has no grasp)


def bodies_at(labels: np.ndarray, centres: np.ndarray, radius: int = 6) -> np.ndarray:
    """``(N,)`` body index under each centre (the most common object label within ``radius`` pixels when
    the centre itself is on the table); -1 where no object is near."""
    out = np.full(len(centres), -1, np.int64)
    height, width = labels.shape
    for i, (u, v) in enumerate(np.asarray(centres, np.float64).reshape(-1, 2)):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        col, row = int(round(u)), int(round(v))
        window = labels[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1]
        if 0 <= row < height and 0 <= col < width and labels[row, col] > 0:
            out[i] = labels[row, col] - 1
        elif (window > 0).any():
            out[i] = np.bincount(window[window > 0]).argmax() - 1
    return out


def pipeline_grasps(scene: PhysicsScene, output: FrameOutput) -> MethodGrasps:
    """The nodes' crops as grasps (their ``z`` is the gripper depth the node computed)."""
    record = output.grasps
    centres = np.stack((record['u'], record['v']), axis=1).astype(np.float64)
    grasps = ImageGrasps(
        centres, record['angle'].astype(np.float64), record['z'].astype(np.float64), np.zeros(len(record), bool)
    )
    pick = int(np.argmax(record['quality'])) if len(record) else None
    return MethodGrasps(grasps, bodies_at(scene.labels, centres), pick)


def min_area_rect_grasps(scene: PhysicsScene, gripper: GripperConfig) -> MethodGrasps:
    """``minAreaRect`` of each depth proposal's mask (the node's proposals, default parameters)."""
    proposals = depth_proposals(scene.depth, ProposalConfig(), max_crops=16)
    centres, angles = [], []
    for k in range(1, len(proposals.rois) + 1):
        fitted = min_area_rect_grasp(proposals.labels == k)
        if fitted is not None:
            centres.append(fitted[0])
            angles.append(fitted[1])
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    angles = np.asarray(angles, np.float64)
    z = image_gripper_depths(scene.depth, centres, angles, scene.camera, gripper) if len(centres) else np.zeros(0)
    grasps = ImageGrasps(centres, angles, z, np.zeros(len(z), bool))
    pick = int(np.nanargmin(z)) if np.isfinite(z).any() else None  # the top of the pile
    return MethodGrasps(grasps, bodies_at(scene.labels, centres), pick)


def random_axis_grasps(pipeline: MethodGrasps, rng: np.random.Generator) -> MethodGrasps:
    """The pipeline's centres, depths and pick with uniform random axes."""
    g = pipeline.grasps
    angles = rng.uniform(-np.pi / 2, np.pi / 2, len(g))
    return MethodGrasps(ImageGrasps(g.centres, angles, g.z, g.antipodal), pipeline.targets, pipeline.pick)


def candidate_grasps(
    scene: PhysicsScene, gripper: GripperConfig, rng: np.random.Generator, per_object: int
) -> MethodGrasps:
    """``per_object`` sampled candidates on each visible body."""
    parts, targets = [], []
    for body in range(len(scene.snapshot.bodies)):
        if not (scene.labels == body + 1).any():
            continue
        part = sample_candidates(scene, body, gripper, rng, per_object)
        parts.append(part)
        targets.append(np.full(len(part), body))
    grasps = ImageGrasps.concatenate(parts)
    return MethodGrasps(grasps, np.concatenate(targets) if targets else np.zeros(0, np.int64), None)
