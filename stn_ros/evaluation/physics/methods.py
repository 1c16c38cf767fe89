"""How each method of the physics evaluation proposes grasps on a scene, and picks the scene's best.

The pipeline's grasps come from what the nodes published (:mod:`.graph`); the baselines are computed here from
the scene's depth image. A method that ranks its grasps by GQ-CNN quality (the pipeline, and the rule's grasps
ranked by the same GQ-CNN) picks the scene's highest-quality grasp and, per object, the object's highest-quality
one. No pybullet, no rclpy.

How a grasp is tried: a method with gripper frames (:attr:`MethodGrasps.frames`) is tried along them (approach =
the frame's ``z``, closing axis its ``x``); otherwise as an image grasp, approaching along the optical axis. The
pipeline has frames when its ``~/grasps`` record carries the orientation fields :data:`QUATERNION_FIELDS` (the gripper
frame in the frame of ``x, y, z``); a record without them is tried as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.evaluation.min_area_rect import min_area_rect_grasp
from stn_ros.evaluation.physics.graph import FrameOutput
from stn_ros.evaluation.physics.rectified_rule import footprint_grasps, table_plane
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.geometry.rigid_transforms import quaternion_matrix
from stn_ros.perception.grasps.grasp_image import canonical_homographies, grasp_image, normalize_grasp_images
from stn_ros.perception.grasps.grasp_quality import QUATERNION_FIELDS, in_tile_order
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import image_gripper_depths
from stn_ros.perception.stn.proposals import Proposals, depth_proposals
from stn_ros.perception.stn.steps import proposal_config
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.sim.physics.grasps import ImageGrasps, sample_candidates
from stn_ros.sim.physics.scenes import PhysicsScene

METHODS = ('pipeline', 'min_area_rect', 'min_area_rect_gqcnn', 'random_axis', 'best_candidate')
METHOD_NAMES = {
    'pipeline': 'shipped pipeline (stn_node + grasp_quality_node over ROS 2)',
    'min_area_rect': 'OpenCV minAreaRect of the proposal mask',
    'min_area_rect_gqcnn': 'minAreaRect crops ranked by the same GQ-CNN',
    'random_axis': "random axis through the pipeline's centres",
    'best_candidate': 'best of the physics-tried candidates (upper bound)',
    'min_area_rect_rectified': 'minAreaRect of the footprint on the table (fair rule), ranked by the same GQ-CNN',
}
RECTIFIED_RULE = 'min_area_rect_rectified'
"""The fair rule for tilted cameras (:mod:`.rectified_rule`), a method of the tilt-band evaluation only."""
TILT_METHODS = (*METHODS[:3], RECTIFIED_RULE, *METHODS[3:])
"""The methods of ``stn_evaluate physics --tilt-bands``."""


@dataclass
class MethodGrasps:
    """One method's grasps on one scene: image grasps, the body each targets (-1: none), the scene's pick."""

    grasps: ImageGrasps
    targets: np.ndarray
    pick: int | None  # row of the scene's best grasp (None: the method has no grasp)
    qualities: np.ndarray | None = None  # (N,) GQ-CNN quality of each grasp; None: the method does not rank by it
    # (N, 4, 4) gripper frames in the camera frame (x closing axis, z approach, origin the fingertips' centre), tried
    # along them; a row with a non-finite entry, or None for all: tried as the image grasp (along the optical axis)
    frames: np.ndarray | None = None
    # (N,) metres the jaws open to before the approach (the record's ``opening``); NaN rows or None: fully open
    openings: np.ndarray | None = None


def best_quality(qualities: np.ndarray) -> int | None:
    """Row of the highest quality (the first of equal ones), None without a grasp: a ranking method's pick."""
    return int(np.argmax(qualities)) if len(qualities) else None


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


def record_frames(record: np.ndarray) -> np.ndarray | None:
    """``(N, 4, 4)`` gripper frames of a ``~/grasps`` record (origin ``x, y, z``, rotation of the unit quaternion
    ``qx, qy, qz, qw``), NaN rows where the pose is not finite or the quaternion is zero; None when the record has
    no orientation fields (:data:`QUATERNION_FIELDS`)."""
    names = record.dtype.names or ()
    if not all(f in names for f in QUATERNION_FIELDS):
        return None
    frames = np.full((len(record), 4, 4), np.nan)
    for i, row in enumerate(record):
        q = np.array([row[f] for f in QUATERNION_FIELDS], np.float64)
        origin = np.array([row['x'], row['y'], row['z']], np.float64)
        length = float(np.linalg.norm(q))
        if not (np.isfinite(q).all() and np.isfinite(origin).all() and length > 1e-6):
            continue
        frames[i] = np.eye(4)
        frames[i, :3, :3] = quaternion_matrix(q / length)
        frames[i, :3, 3] = origin
    return frames


def pipeline_grasps(scene: PhysicsScene, output: FrameOutput) -> MethodGrasps:
    """The nodes' crops as grasps (their ``z`` is the gripper depth the node computed), with their gripper frames
    when the record has them (the module docstring). Rows in tile order (``~/grasps`` is ranked by quality): the
    picks do not depend on it (the first of equal qualities is the same crop either way), the random axes drawn
    per row (:func:`random_axis_grasps`) do."""
    record = output.grasps
    if 'object_id' in (record.dtype.names or ()):
        record = in_tile_order(record)
    centres = np.stack((record['u'], record['v']), axis=1).astype(np.float64)
    grasps = ImageGrasps(
        centres, record['angle'].astype(np.float64), record['z'].astype(np.float64), np.zeros(len(record), bool)
    )
    qualities = record['quality'].astype(np.float64)
    targets = bodies_at(scene.labels, centres)
    openings = record['opening'].astype(np.float64) if 'opening' in (record.dtype.names or ()) else None
    return MethodGrasps(grasps, targets, best_quality(qualities), qualities, record_frames(record), openings)


def node_proposals(scene: PhysicsScene) -> Proposals:
    """The depth proposals ``stn_node`` finds in the scene's frame with its ``camera_info`` (default parameters): the
    rules get the objects the pipeline gets (by height above the table, cut at height and occlusion jumps)."""
    values = default_values(STN_PARAMETERS)
    config = proposal_config(values, scene.depth.shape[1])
    return depth_proposals(scene.depth, config, max_crops=values['max_crops'], camera=scene.camera)


def min_area_rect_grasps(scene: PhysicsScene, gripper: GripperConfig) -> MethodGrasps:
    """``minAreaRect`` of each depth proposal's mask (:func:`node_proposals`)."""
    proposals = node_proposals(scene)
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
    """The pipeline's centres, depths, picks and qualities with uniform random axes (with the pipeline's frames:
    the closing axis turned by a uniform angle about each frame's approach)."""
    g = pipeline.grasps
    angles = rng.uniform(-np.pi / 2, np.pi / 2, len(g))
    grasps = ImageGrasps(g.centres, angles, g.z, g.antipodal)
    frames = None
    if pipeline.frames is not None:
        frames = pipeline.frames.copy()
        cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
        x, y = pipeline.frames[:, :3, 0], pipeline.frames[:, :3, 1]
        frames[:, :3, 0], frames[:, :3, 1] = cos * x + sin * y, cos * y - sin * x
    return MethodGrasps(grasps, pipeline.targets, pipeline.pick, pipeline.qualities, frames)


@torch.no_grad()
def gqcnn_qualities(
    depth_m: np.ndarray, camera: PinholeCamera, grasps: ImageGrasps, gqcnn: GQCNN, gripper: GripperConfig
) -> np.ndarray:
    """``(N,)`` GQ-CNN quality of image grasps on a depth frame ``(H, W)`` (metres, NaN = no reading).

    Each grasp is scored as it is tried: its Dex-Net canonical 32x32 crop at its own gripper depth ``z``
    (:func:`~stn_ros.perception.grasps.grasp_image.canonical_homographies`, :func:`grasp_image`), the crop the
    GQ-CNN's physics data is made of. A grasp without a gripper depth scores 0, as in ``grasp_quality_node``
    (no surface seen: no grasp)."""
    qualities = np.zeros(len(grasps))
    seen = np.isfinite(grasps.z) & np.isfinite(grasps.centres).all(axis=1)
    if seen.any():
        z = grasps.z[seen]
        H = canonical_homographies(grasps.centres[seen], grasps.angles[seen], z, camera, gripper)
        images = torch.from_numpy(grasp_image(depth_m, H, z))[:, None]
        qualities[seen] = gqcnn.quality(images, torch.from_numpy(z.astype(np.float32))).numpy()
    return qualities


def rectified_rule_grasps(scene: PhysicsScene, gripper: GripperConfig, gqcnn: GQCNN) -> MethodGrasps:
    """The fair rule (:mod:`.rectified_rule`) on the node's depth proposals (default parameters, as
    :func:`min_area_rect_grasps`): one grasp per proposal along the fitted table's normal, each scored by ``gqcnn`` on
    the canonical crop a camera straight above the grasp sees (depth along the normal), picks by quality as the
    pipeline's. Its image terms (for targets and pictures): each grasp centre's source pixel, its axis there, its
    camera depth."""
    camera = scene.camera
    table = table_plane(scene.depth, camera)
    empty = MethodGrasps(ImageGrasps.concatenate([]), np.zeros(0, np.int64), None, np.zeros(0), np.zeros((0, 4, 4)))
    if table is None:
        return empty
    proposals = node_proposals(scene)
    found = footprint_grasps(scene.depth, proposals.labels, camera, table, gripper)
    if not len(found):
        return empty
    origins, axes = found.frames[:, :3, 3], found.frames[:, :3, 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        ends = origins + 0.01 * axes
        centres = np.stack(
            (
                camera.fx * origins[:, 0] / origins[:, 2] + camera.cx,
                camera.fy * origins[:, 1] / origins[:, 2] + camera.cy,
            ),
            axis=1,
        )
        tips = np.stack(
            (camera.fx * ends[:, 0] / ends[:, 2] + camera.cx, camera.fy * ends[:, 1] / ends[:, 2] + camera.cy), axis=1
        )
    angles = (np.arctan2(*(tips - centres).T[::-1]) + np.pi / 2) % np.pi - np.pi / 2
    grasps = ImageGrasps(centres, np.nan_to_num(angles), origins[:, 2], np.zeros(len(found), bool))
    qualities = np.zeros(len(found))
    seen = np.isfinite(found.along)  # no gripper depth: no grasp (quality 0), as in grasp_quality_node
    if seen.any():
        z = found.along[seen]
        images = torch.from_numpy(normalize_grasp_images(found.crops[seen], z))[:, None]
        with torch.no_grad():
            qualities[seen] = gqcnn.quality(images, torch.from_numpy(z.astype(np.float32))).numpy()
    return MethodGrasps(grasps, bodies_at(scene.labels, centres), best_quality(qualities), qualities, found.frames)


def ranked_by_gqcnn(rule: MethodGrasps, qualities: np.ndarray) -> MethodGrasps:
    """The rule's grasps and targets (the same grasps, so the same trials) ranked by their GQ-CNN ``qualities``
    ``(N,)``: the scene's pick and each object's grasp are the highest-quality ones, the pipeline's choice."""
    return MethodGrasps(rule.grasps, rule.targets, best_quality(qualities), np.asarray(qualities, np.float64))


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
