"""Where the fingertips go: the gripper depth of a grasp, from its canonical depth crop. No rclpy, no torch.

One rule for the node, the physics data and the evaluations (:func:`gripper_depths`). In a canonical crop
(:mod:`stn_ros.perception.grasp_image`: the grasp axis along ``+x``, the opening spanning
``OPENING_FRACTION`` of the width) it reads:

* ``top``: the surface under the grasp centre (median of the readings within 2 mm-equivalent pixels);
* ``floor``: for each jaw, what lies under its footprint when the gripper is open (the 75th percentile of
  the depth there: the table beside the object, or a neighbour); the nearer of the two jaws' floors.

The fingertips go ``max(finger_depth, height / 2)`` below the top, ``height = floor - top``: at least the
gripper's finger depth, and down to the widest point of a round object (a sphere's or a lying cylinder's
equator is half its height down); but never closer than ``table_clearance`` to the floor, so a flat
object's grasp does not drive the fingers into the table. With no floor in view (or one within the
clearance of the top) it is ``finger_depth`` below the top. The fixed ``finger_depth`` alone sent most
failed grasps of the physics evaluation into the table (``docs/grasp/physics.md``, "Why grasps failed").
"""

from __future__ import annotations

import numpy as np

from stn_ros.core.sampler import warp_perspective_opencv
from stn_ros.perception.camera import PinholeCamera, depth_at
from stn_ros.perception.grasp_image import CANONICAL_SIZE, OPENING_FRACTION, GripperConfig, canonical_homographies

FLOOR_PERCENTILE = 75.0
"""Percentile of the depths under a jaw's footprint taken as what the jaw descends onto."""


def surface_gripper_depths(depth_m: np.ndarray, pixels: np.ndarray, gripper: GripperConfig) -> np.ndarray:
    """``(N,)`` metres: the surface depth at each pixel of a depth image (median of a 5x5 window) plus the
    finger depth; NaN where the window has no reading. The first estimate that sizes a canonical crop."""
    return depth_at(depth_m, pixels, radius=2).astype(np.float64) + gripper.finger_depth


def gripper_depths(crops: np.ndarray, gripper: GripperConfig) -> np.ndarray:
    """``(N,)`` metres: the gripper depth of each canonical crop ``(N, h, w)`` (metres, NaN = no reading) by
    the rule of the module docstring; NaN where the crop's centre has no reading."""
    crops = np.asarray(crops, dtype=np.float32)
    count, height, width = crops.shape
    per_metre = OPENING_FRACTION * width / gripper.max_opening  # crop pixels per metre
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    radius = max(1, int(round(2 * width / CANONICAL_SIZE)))
    centre = crops[
        :, int(round(cy)) - radius : int(round(cy)) + radius + 1, int(round(cx)) - radius : int(round(cx)) + radius + 1
    ]
    rows = slice(
        max(int(np.floor(cy - (0.5 * gripper.jaw_width * per_metre + 1))), 0),
        min(int(np.ceil(cy + 0.5 * gripper.jaw_width * per_metre + 1)) + 1, height),
    )
    inner = 0.5 * gripper.max_opening * per_metre
    outer = inner + gripper.jaw_thickness * per_metre
    jaws = [
        crops[:, rows, max(int(np.ceil(cx - outer)), 0) : int(np.floor(cx - inner)) + 1],
        crops[:, rows, int(np.ceil(cx + inner)) : min(int(np.floor(cx + outer)) + 1, width)],
    ]
    out = np.full(count, np.nan)
    for index in range(count):
        readings = centre[index][np.isfinite(centre[index])]
        if not readings.size:
            continue
        top = float(np.median(readings))
        floors = [
            float(np.percentile(j[index][np.isfinite(j[index])], FLOOR_PERCENTILE))
            for j in jaws
            if np.isfinite(j[index]).any()
        ]
        rise = min(floors) - top if floors else 0.0
        if rise < gripper.table_clearance:
            out[index] = top + gripper.finger_depth
        else:
            out[index] = top + min(max(gripper.finger_depth, 0.5 * rise), rise - gripper.table_clearance)
    return out


def image_gripper_depths(
    depth_m: np.ndarray, centres: np.ndarray, angles: np.ndarray, camera: PinholeCamera, gripper: GripperConfig
) -> np.ndarray:
    """``(N,)`` metres: :func:`gripper_depths` of grasps at pixels ``centres`` ``(N, 2)`` with axis ``angles``
    ``(N,)`` in a depth image ``(H, W)`` (metres, NaN = no reading): their canonical crops, sized by the
    surface depth, then the rule. NaN where the surface under a centre has no reading."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    first = surface_gripper_depths(depth_m, centres, gripper)
    out = np.full(len(centres), np.nan)
    seen = np.isfinite(first)
    if seen.any():
        H = canonical_homographies(centres[seen], np.asarray(angles, np.float64)[seen], first[seen], camera, gripper)
        crops = warp_perspective_opencv(
            np.asarray(depth_m, dtype=np.float32), H, (CANONICAL_SIZE, CANONICAL_SIZE), border_value=float('nan')
        )
        out[seen] = gripper_depths(crops, gripper)
    return out
