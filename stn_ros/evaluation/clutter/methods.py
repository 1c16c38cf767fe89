"""The clutter-removal methods as grasp sources: each turns one frame into the one grasp a robot would execute
(:class:`~.protocol.Proposal`), from the physics evaluation's methods (:mod:`stn_ros.evaluation.physics.methods`).

* ``pipeline``: the shipped nodes over ROS 2 (:class:`~stn_ros.evaluation.physics.graph.PipelineGraph`); the grasp is
  the highest quality of ``~/grasps`` among those the gripper can execute (a gripper depth), tried along its published
  gripper frame (``qx, qy, qz, qw``) when the record has one, as ``stn_evaluate physics --tilt-bands`` does;
* ``min_area_rect``: ``cv2.minAreaRect`` of each depth proposal's mask in the image, closing across the short side,
  approaching along the optical axis; the grasp nearest the camera (the top of the pile);
* ``min_area_rect_rectified``: the fair rule for an oblique camera (``minAreaRect`` of each proposal's footprint on
  the table, approaching along the table's normal), ranked by the pipeline's GQ-CNN, the highest quality;
* ``random_axis``: the pipeline's grasp for the frame (its own nodes' answer) with a uniform random closing axis.

Planning time: for the pipeline (and the random axis) from the frame's publication to its ``~/grasps`` received; for
the rules, their computation in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from stn_ros.evaluation.clutter.protocol import Proposal
from stn_ros.evaluation.physics.methods import (
    RECTIFIED_RULE,
    MethodGrasps,
    min_area_rect_grasps,
    pipeline_grasps,
    random_axis_grasps,
    rectified_rule_grasps,
)
from stn_ros.evaluation.physics.trials import grasp_world_pose
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.physics.scenes import PhysicsScene

CLUTTER_METHODS = ('pipeline', 'min_area_rect', RECTIFIED_RULE, 'random_axis')
NEEDS_NODES = ('pipeline', 'random_axis')
"""Methods whose grasps come from the shipped nodes."""


def choose(scene: PhysicsScene, method: MethodGrasps, gripper: GripperConfig, seconds: float) -> Proposal:
    """The grasp a robot executes among ``method``'s grasps on ``scene``: of those it can execute
    (:func:`~stn_ros.evaluation.physics.trials.grasp_world_pose`), the highest quality when the method ranks by one,
    else the nearest the camera; ``Proposal.grasp`` None when none can be executed."""
    g = method.grasps
    poses = [grasp_world_pose(scene, method, i) for i in range(len(g))]
    rows = [i for i, pose in enumerate(poses) if pose is not None]
    centres = np.asarray(g.centres, np.float64).reshape(-1, 2)
    if not rows:
        return Proposal(None, centres, seconds)
    if method.qualities is not None:
        pick = rows[int(np.argmax(np.asarray(method.qualities)[rows]))]
    else:
        pick = rows[int(np.argmin(g.z[rows]))]
    quality = float(method.qualities[pick]) if method.qualities is not None else float('nan')
    width_px = (gripper.max_opening * scene.camera.fx / g.z[pick]) if g.z[pick] > 0 else float('nan')
    return Proposal(
        poses[pick],
        centres,
        seconds,
        (float(g.centres[pick][0]), float(g.centres[pick][1])),
        float(g.angles[pick]),
        float(width_px),
        quality,
        bool(method.frames is not None and np.isfinite(method.frames[pick]).all()),
    )


def pipeline_source(graph, gripper: GripperConfig, rng: np.random.Generator | None = None) -> Callable:
    """The shipped nodes' grasps for each frame (``graph``: a :class:`~stn_ros.evaluation.physics.graph.PipelineGraph`
    that is up); with ``rng``, each with a uniform random axis (``random_axis``)."""

    def propose(scene: PhysicsScene) -> Proposal:
        output = graph.frame(scene)
        method = pipeline_grasps(scene, output)
        if rng is not None:
            method = random_axis_grasps(method, rng)
        return choose(scene, method, gripper, output.planning_seconds)

    return propose


def computed_source(grasps_of: Callable[[PhysicsScene], MethodGrasps], gripper: GripperConfig) -> Callable:
    """A method computed in this process: ``grasps_of(scene)``, timed (its planning time), then :func:`choose`."""

    def propose(scene: PhysicsScene) -> Proposal:
        started = time.perf_counter()
        method = grasps_of(scene)
        return choose(scene, method, gripper, time.perf_counter() - started)

    return propose


def rule_source(gripper: GripperConfig) -> Callable:
    """``min_area_rect``: the image rule, the grasp nearest the camera."""
    return computed_source(lambda scene: min_area_rect_grasps(scene, gripper), gripper)


def fair_rule_source(gripper: GripperConfig, gqcnn) -> Callable:
    """``min_area_rect_rectified``: the fair rule ranked by ``gqcnn``, the highest quality."""
    return computed_source(lambda scene: rectified_rule_grasps(scene, gripper, gqcnn), gripper)
