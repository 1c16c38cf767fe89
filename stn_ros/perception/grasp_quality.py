"""Scoring canonical crops with the GQ-CNN and turning them into grasps (no rclpy).

``~/grasps`` record, one point per crop of ``stn_node``'s tile, in tile order (all float32):

=========  =====================================================================================
field      meaning
=========  =====================================================================================
quality    GQ-CNN probability that the grasp succeeds, in [0, 1]
u, v       grasp centre in source pixels (the crop centre mapped through ``H``)
x, y, z    grasp centre in metres in the camera frame at the gripper depth (NaN without depth and
           camera_info)
angle      grasp axis in the image, radians in [-pi/2, pi/2) (the crop's +x mapped through ``H``)
width      object width across the jaws at the grasp, metres (NaN without camera_info)
=========  =====================================================================================

The gripper depth of a crop (where the fingertips go) is :func:`~stn_ros.perception.gripper_depth.gripper_depths`:
the finger depth below the surface at the crop's centre, deeper on tall round objects, never into the
table beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.camera import PinholeCamera
from stn_ros.perception.grasp_image import CANONICAL_SIZE, GripperConfig, crop_axis, normalize_grasp_images
from stn_ros.perception.gripper_depth import gripper_depths

DEFAULT_GQCNN_WEIGHTS = 'gqcnn.pt'
"""The shipped GQ-CNN in ``weights/``: what ``grasp_quality_node`` loads when its ``weights`` is empty."""
GRASP_FIELDS = ('quality', 'u', 'v', 'x', 'y', 'z', 'angle', 'width')


@dataclass
class ScoredGrasps:
    record: np.ndarray  # structured, GRASP_FIELDS
    best: int | None  # index of the best grasp at or above the threshold, None when there is none


def widths_m(crops: np.ndarray, z: np.ndarray, metres_per_crop_pixel: np.ndarray) -> np.ndarray:
    """Width of the object under the crop's centre row, along the grasp axis (``+x``), in metres.

    Object pixels are those nearer than the fingertips' plane (depth < z); the run through the centre
    column is measured. NaN when the centre is not on the object or the scale is unknown.
    """
    out = np.full(len(crops), np.nan)
    for index, crop in enumerate(crops):
        row = crop[crop.shape[0] // 2]
        solid = np.isfinite(row) & (row < z[index])
        middle = crop.shape[1] // 2
        if not solid[middle] or not np.isfinite(metres_per_crop_pixel[index]):
            continue
        left = middle - np.argmin(solid[middle::-1]) + 1 if not solid[: middle + 1].all() else 0
        right = middle + np.argmin(solid[middle:]) if not solid[middle:].all() else len(row)
        out[index] = (right - left) * metres_per_crop_pixel[index]
    return out


class GraspScorer:
    """Scores a frame's canonical depth crops with a GQ-CNN on one device."""

    def __init__(self, model: GQCNN, device: torch.device, gripper: GripperConfig | None = None):
        self.model = model.to(device).eval()
        self.device = device
        self.gripper = gripper or GripperConfig()

    def score(
        self, crops: np.ndarray, homographies: np.ndarray, camera: PinholeCamera | None, threshold: float
    ) -> ScoredGrasps:
        """Grasps of crops ``(N, h, w)`` (metres, NaN = no reading) with their ``H`` ``(N, 3, 3)``."""
        count = len(crops)
        record = np.zeros(count, dtype=[(name, np.float32) for name in GRASP_FIELDS])
        if count == 0:
            return ScoredGrasps(record, None)
        z = gripper_depths(crops, self.gripper)
        images = crops
        if crops.shape[1:] != (CANONICAL_SIZE, CANONICAL_SIZE):  # the GQ-CNN was trained on 32x32
            images = np.stack(
                [cv2.resize(c, (CANONICAL_SIZE, CANONICAL_SIZE), interpolation=cv2.INTER_NEAREST) for c in crops]
            )
        images = normalize_grasp_images(images, np.nan_to_num(z, nan=0.0))
        quality = self.model.quality(
            torch.from_numpy(images)[:, None].to(self.device),
            torch.from_numpy(np.nan_to_num(z, nan=0.0).astype(np.float32)).to(self.device),
        )
        quality = np.where(np.isfinite(z), quality.cpu().numpy(), 0.0)  # no surface seen: no grasp
        centres, angles = crop_axis(homographies)
        record['quality'], record['u'], record['v'], record['angle'] = quality, centres[:, 0], centres[:, 1], angles
        xyz = np.full((count, 3), np.nan)
        per_pixel = np.full(count, np.nan)
        if camera is not None:
            xyz = camera.back_project(centres, z)
            source_per_crop = np.linalg.norm(np.asarray(homographies)[:, :2, 0], axis=1)
            per_pixel = source_per_crop * z / (0.5 * (camera.fx + camera.fy))
        record['x'], record['y'], record['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        record['width'] = widths_m(crops, z, per_pixel)
        above = np.flatnonzero(quality >= threshold)
        best = int(above[np.argmax(quality[above])]) if len(above) else None
        return ScoredGrasps(record, best)


def grasp_orientation(angle: float) -> tuple[float, float, float, float]:
    """Quaternion ``(x, y, z, w)``: the camera frame turned by ``angle`` about its optical axis.

    The pose's x axis is the grasp (closing) axis in the image plane; its z axis is the camera's, the
    approach direction of a top-down grasp.
    """
    return 0.0, 0.0, float(np.sin(angle / 2)), float(np.cos(angle / 2))
