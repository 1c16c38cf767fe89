"""Image grasps in the physics world: where a grasp seen in a depth image goes in the world, which candidates
to try on an object (Dex-Net 2.0's antipodal sampler on the depth image, plus random ones), and their
physics labels.

An *image grasp* is what ``grasp_quality_node`` publishes: a centre pixel ``(u, v)``, an axis angle in the
image (radians, pixel coordinates, modulo pi) and a gripper depth ``z`` (metres, the camera depth of the
fingertips' midpoint). As in Dex-Net, the gripper approaches along the camera's optical axis and closes
along the image axis at depth ``z``: :func:`grasp_pose` turns that into a world :class:`GraspPose`.

Antipodal candidates (:func:`antipodal_candidates`): depth edges of the object (depth gradient above
``edge_gradient``) each with an inward normal (against the gradient, towards the nearer surface); a pair of
edge pixels is a candidate when the line between them lies in both friction cones (``atan(mu)``, in the
image plane) and the object's width there fits the opening. Random candidates: a pixel of the object and
a uniform angle. Each candidate's gripper depth is the node's
(:func:`~stn_ros.perception.grasps.gripper_depth.image_gripper_depths`), so a label says whether the grasp the
node would execute holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.grasps.grasp_image import fill_missing
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import image_gripper_depths
from stn_ros.sim.physics.grasp_trial import GraspPose, TrialConfig, robust_trials
from stn_ros.sim.physics.scenes import PhysicsScene

EDGE_GRADIENT = 0.004
"""Metres per pixel of depth gradient (Sobel) that marks an object edge."""


@dataclass
class ImageGrasps:
    """Grasps in image terms, one row each.

    Attributes:
        centres: ``(N, 2)`` float64 pixels ``(u, v)``.
        angles: ``(N,)`` float64 radians, axis direction in the image in ``[-pi/2, pi/2)``.
        z: ``(N,)`` float64 metres, gripper depth (camera z of the fingertips' midpoint).
        antipodal: ``(N,)`` bool, drawn by the antipodal sampler (else random).
    """

    centres: np.ndarray
    angles: np.ndarray
    z: np.ndarray
    antipodal: np.ndarray

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, rows) -> ImageGrasps:
        """The rows selected by a slice, index array or boolean mask."""
        return ImageGrasps(*(getattr(self, f)[rows] for f in _FIELDS))

    @staticmethod
    def concatenate(parts: list[ImageGrasps]) -> ImageGrasps:
        """All rows of ``parts``, in order."""
        if not parts:
            return ImageGrasps(np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0, bool))
        return ImageGrasps(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ('centres', 'angles', 'z', 'antipodal')


def grasp_pose(
    centre: np.ndarray, angle: float, z: float, camera: PinholeCamera, table_from_camera: np.ndarray
) -> GraspPose:
    """The world grasp of an image grasp: centre back-projected at depth ``z``, closing along the image axis
    at that depth, approaching along the optical axis."""
    u, v = float(centre[0]), float(centre[1])
    point = np.array([(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z])
    # The image direction (cos, sin) at depth z is the camera direction (cos / fx, sin / fy, 0) scaled.
    axis = np.array([np.cos(angle) / camera.fx, np.sin(angle) / camera.fy, 0.0])
    rotation, origin = table_from_camera[:3, :3], table_from_camera[:3, 3]
    return GraspPose(
        tuple(rotation @ point + origin),
        tuple(rotation @ (axis / np.linalg.norm(axis))),
        tuple(rotation[:, 2]),
    )


def frame_grasp_pose(frame: np.ndarray, table_from_camera: np.ndarray) -> GraspPose:
    """The world grasp of a gripper frame ``(4, 4)`` in the camera frame (the package's gripper frame: origin at the
    fingertips' centre at the grasp depth, columns ``x`` = closing axis, ``z`` = approach), whatever its direction:
    approaching along the frame's ``z``, closing along its ``x``."""
    frame = np.asarray(frame, dtype=np.float64)
    if frame.shape != (4, 4) or not np.isfinite(frame).all():
        raise ValueError(f'frame must be a finite 4x4 matrix, got shape {frame.shape}')
    world = np.asarray(table_from_camera, dtype=np.float64) @ frame
    return GraspPose(tuple(world[:3, 3]), tuple(world[:3, 0]), tuple(world[:3, 2]))


def antipodal_candidates(
    depth: np.ndarray,
    mask: np.ndarray,
    camera: PinholeCamera,
    gripper: GripperConfig,
    rng: np.random.Generator,
    count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` antipodal pairs on the object ``mask`` of ``depth`` (metres, NaN = no reading):
    centres ``(M, 2)`` pixels and angles ``(M,)``, ``M <= count`` (fewer when the object has few)."""
    filled = fill_missing(depth)
    gx = cv2.Sobel(filled, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(filled, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    magnitude = np.hypot(gx, gy)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    rows, cols = np.nonzero(near & (magnitude > EDGE_GRADIENT))
    if len(rows) < 2:
        return np.zeros((0, 2)), np.zeros(0)
    points = np.stack((cols, rows), axis=1).astype(np.float64)
    normals = -np.stack((gx[rows, cols], gy[rows, cols]), axis=1) / magnitude[rows, cols, None]
    cone = np.cos(np.arctan(gripper.mu))
    z_object = float(np.nanmedian(np.where(mask, depth, np.nan))) if np.isfinite(depth[mask]).any() else 0.7
    max_px = (gripper.max_opening - gripper.clearance) * camera.fx / z_object
    centres, angles = [], []
    for first in rng.permutation(len(points))[: 8 * count]:
        offset = points - points[first]
        distance = np.linalg.norm(offset, axis=1)
        direction = offset / np.maximum(distance, 1e-9)[:, None]
        ok = (
            (distance >= 2.0)
            & (distance <= max_px)
            & (direction @ normals[first] >= cone)
            & ((-direction * normals).sum(axis=1) >= cone)
        )
        if not ok.any():
            continue
        second = rng.choice(np.flatnonzero(ok))
        centres.append(0.5 * (points[first] + points[second]))
        angles.append(np.arctan2(*direction[second][::-1]))
        if len(centres) == count:
            break
    angles = (np.asarray(angles) + np.pi / 2) % np.pi - np.pi / 2
    return np.asarray(centres, np.float64).reshape(-1, 2), angles


def random_candidates(mask: np.ndarray, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` centres ``(count, 2)`` on the object ``mask`` and uniform angles ``(count,)``."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return np.zeros((0, 2)), np.zeros(0)
    pick = rng.integers(len(rows), size=count)
    return np.stack((cols[pick], rows[pick]), axis=1).astype(np.float64), rng.uniform(-np.pi / 2, np.pi / 2, count)


def sample_candidates(
    scene: PhysicsScene,
    body: int,
    gripper: GripperConfig,
    rng: np.random.Generator,
    count: int,
    antipodal_fraction: float = 0.7,
) -> ImageGrasps:
    """About ``count`` candidate grasps on ``scene.snapshot.bodies[body]`` from the scene's (noisy) depth."""
    mask = scene.labels == body + 1
    wanted = int(round(count * antipodal_fraction))
    centres_a, angles_a = antipodal_candidates(scene.depth, mask, scene.camera, gripper, rng, wanted)
    centres_r, angles_r = random_candidates(mask, rng, count - len(angles_a))
    centres = np.concatenate((centres_a, centres_r))
    angles = np.concatenate((angles_a, angles_r))
    antipodal = np.arange(len(angles)) < len(angles_a)
    if not len(angles):
        return ImageGrasps.concatenate([])
    z = image_gripper_depths(scene.depth, centres, angles, scene.camera, gripper)
    keep = np.isfinite(z)  # no reading under the centre: the node would not grasp there either
    return ImageGrasps(centres, angles, z, antipodal)[keep]


def label_grasps(
    scene: PhysicsScene,
    grasps: ImageGrasps,
    body: int,
    rng: np.random.Generator,
    trials: int,
    friction_range: tuple[float, float] = (0.4, 0.8),
    config: TrialConfig | None = None,
    world_handle=None,
) -> np.ndarray:
    """``(N,)`` share of ``trials`` perturbed trials in which each grasp lifted ``body`` (Dex-Net's robust
    quality, measured by physics)."""
    config = config or TrialConfig()
    out = np.zeros(len(grasps))
    for i in range(len(grasps)):
        pose = grasp_pose(grasps.centres[i], grasps.angles[i], grasps.z[i], scene.camera, scene.table_from_camera)
        out[i] = np.mean(robust_trials(scene.snapshot, pose, rng, trials, friction_range, config, world_handle) == body)
    return out
