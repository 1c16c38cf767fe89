"""How good are the grasps each canonicalization proposes? (a) none, (b) OpenCV, (c) our STN, (d) oracle.

For every held-out object with at least one good analytic grasp, each method proposes one grasp (a
centre pixel, an axis angle in the image and a gripper depth) and its 32x32 canonical image:

* ``none``: the crop centred on the object's proposal ROI, not rotated (axis along the image x).
* ``opencv``: ``cv2.minAreaRect`` of the object's visible mask; the axis across its shorter side.
* ``stn``: the grasp STN on the object's metric crop, exactly as ``stn_node`` runs it.
* ``oracle``: a good analytic grasp of the object (the analytic canonicalization).

Each proposed grasp is labelled by the analytic rule (:func:`stn_ros.data.grasps.evaluate_grasps`:
the closing line through its centre at its axis), which gives the *grasp success rate* of the method,
and the GQ-CNN scores its canonical image, which gives the GQ-CNN's accuracy and average precision
against those labels. The STN's canonicalization error is measured against the nearest good grasp.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from stn_ros.camera import depth_at
from stn_ros.canonicalizer import Canonicalizer
from stn_ros.data.grasp_images import canonical_homographies, crop_axis, grasp_image
from stn_ros.data.grasps import GripperConfig, evaluate_grasps, grasp_height
from stn_ros.data.scenes import Scene
from stn_ros.frames import Frame
from stn_ros.models.gqcnn import GQCNN

METHODS = ('none', 'opencv', 'stn', 'oracle')


@dataclass
class Proposal:
    """One method's grasp on one object (image frame) and what the analytic rule and GQ-CNN say."""

    centre: np.ndarray  # (2,) pixels
    angle: float        # radians, image axis direction, modulo pi
    z: float            # gripper depth, metres
    H: np.ndarray       # (3, 3) canonical crop -> source pixel
    good: bool = False
    quality: float = float('nan')


def axis_of(H: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre pixel and axis angle of one canonical crop's ``H`` (see :func:`crop_axis`)."""
    centres, angles = crop_axis(H)
    return centres[0], float(angles[0])


def gripper_depth(depth_m: np.ndarray, centre: np.ndarray, gripper: GripperConfig) -> float:
    """The fingertips' depth for a grasp at ``centre``: the surface there plus the finger depth."""
    top = float(depth_at(depth_m, centre[None], radius=2)[0])
    return top + gripper.finger_depth if np.isfinite(top) else float(np.nanmedian(depth_m))


def table_line(scene: Scene, centre: np.ndarray, angle: float, height: float) -> tuple[np.ndarray, float]:
    """The table-frame point ``(2,)`` and yaw of an image grasp, on the plane ``height`` above the table."""
    camera, pose = scene.camera, scene.table_from_camera
    ends = []
    for u, v in (centre, centre + 2.0 * np.array([np.cos(angle), np.sin(angle)])):
        ray = pose[:3, :3] @ np.array([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, 1.0])
        t = (height - pose[2, 3]) / ray[2]
        ends.append(pose[:3, 3] + t * ray)
    return ends[0][:2], float(np.arctan2(ends[1][1] - ends[0][1], ends[1][0] - ends[0][0]))


def propose(method: str, scene: Scene, object_index: int, roi: np.ndarray, oracle_H: np.ndarray,
            oracle_z: float, canonicalizer: Canonicalizer | None, gripper: GripperConfig) -> Proposal:
    """The grasp ``method`` proposes for one object (see the module docstring)."""
    camera = scene.camera
    if method == 'oracle':
        centre, angle = axis_of(oracle_H)
        return Proposal(centre, angle, oracle_z, oracle_H)
    if method == 'stn':
        frame = Frame(scene.depth, '32FC1', True)
        result = canonicalizer.process(frame, roi[None], camera)
        H = result.transforms.homographies[0].numpy()
        centre, angle = axis_of(H)
        # The GQ-CNN sees the STN's own crop, as grasp_quality_node does with stn_node's tile.
        return Proposal(centre, angle, gripper_depth(scene.depth, centre, gripper), H)
    if method == 'none':
        centre, angle = roi[:2] + (roi[2:] - 1) / 2, 0.0
    elif method == 'opencv':
        mask = (scene.labels == object_index + 1).astype(np.uint8)
        points = cv2.findNonZero(mask)
        (cx, cy), (w, h), degrees = cv2.minAreaRect(points)
        # Close across the shorter side: the axis is along the rectangle's shorter dimension.
        angle = np.radians(degrees if w < h else degrees + 90.0)
        centre, angle = np.array([cx, cy]), float((angle + np.pi / 2) % np.pi - np.pi / 2)
    else:
        raise ValueError(f'unknown method {method!r}; choose one of {METHODS}')
    z = gripper_depth(scene.depth, np.asarray(centre, np.float64), gripper)
    H = canonical_homographies(np.asarray(centre)[None], np.array([angle]), np.array([z]), camera, gripper)[0]
    return Proposal(np.asarray(centre, np.float64), float(angle), z, H)


def label_and_score(proposal: Proposal, scene: Scene, object_index: int, gqcnn: GQCNN,
                    gripper: GripperConfig) -> Proposal:
    """Fill ``good`` (analytic rule) and ``quality`` (GQ-CNN) of a proposal."""
    height = grasp_height(scene.objects[object_index].height, gripper)
    point, yaw = table_line(scene, proposal.centre, proposal.angle, height)
    proposal.good = bool(evaluate_grasps(scene, object_index, point[None], np.array([yaw]), gripper)[0].good)
    image = grasp_image(scene.depth, proposal.H, proposal.z)
    proposal.quality = float(gqcnn.quality(torch.from_numpy(image)[None, None],
                                           torch.tensor([proposal.z], dtype=torch.float32))[0])
    return proposal


def canonicalization_error(stn: Proposal, good_H: np.ndarray) -> tuple[float, float]:
    """Axis-angle error (degrees, modulo 180) and centre error (canonical pixels) to the nearest good grasp."""
    best = (np.inf, np.inf)
    for H in good_H:
        centre, angle = axis_of(H)
        scale = np.linalg.norm(H[:2, 0])  # source pixels per canonical pixel
        angle_error = abs((np.degrees(stn.angle - angle) + 90.0) % 180.0 - 90.0)
        centre_error = float(np.linalg.norm(stn.centre - centre) / scale)
        if angle_error / 10.0 + centre_error / 1.5 < best[0] / 10.0 + best[1] / 1.5:
            best = (angle_error, centre_error)
    return best
