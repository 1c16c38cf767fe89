"""Where the fingertips go: the gripper depth of a grasp, from its canonical depth crop. No rclpy, no torch.

One rule for the node, the physics data and the evaluations (:func:`gripper_depths`). In a canonical crop
(:mod:`stn_ros.perception.grasps.grasp_image`: the grasp axis along ``+x``, the opening spanning
``OPENING_FRACTION`` of the width) it reads:

* ``top``: the surface under the grasp centre: the median of the readings within 2 canonical pixels of it (1 cm for
  the trained gripper); where that reads the floor (below) but the central pixels (the 2 x 2 around the centre of an
  even crop) are more than :data:`TOP_BAND` nearer, their median: an object thinner than the window (a pen, a thin
  bottle standing up) is read at its top, not as the table beside it;
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

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core.sampler import warp_perspective_opencv
from stn_ros.perception.geometry.camera import depth_at, nanmedian_rows
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, OPENING_FRACTION, canonical_homographies
from stn_ros.perception.grasps.gripper import GripperConfig

TOP_BAND = 0.005
"""Metres: where a crop's centre window reads the floor, its central pixels are the surface under the grasp when
they are this much nearer."""
FLOOR_PERCENTILE = 75.0
"""Percentile of the depths under a jaw's footprint taken as what the jaw descends onto."""


def nanpercentile_rows(rows: np.ndarray, percentile: float) -> np.ndarray:
    """``np.nanpercentile(rows, percentile, axis=1)`` (linear interpolation) of a ``(N, K)`` array whose rows each
    hold a finite value, in the rows' dtype (numpy's rounding too): one sort for every row, not a call per row."""
    ordered = np.sort(rows, axis=1)
    position = (np.isfinite(ordered).sum(axis=1) - 1) * (percentile / 100.0)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, np.isfinite(ordered).sum(axis=1) - 1)
    index = np.arange(len(ordered))
    low, high = ordered[index, below], ordered[index, above]
    t = (position - below).astype(ordered.dtype)
    # numpy's _lerp: from the lower value below the middle, from the upper one above it (the same rounding)
    return np.where(t >= 0.5, high - (high - low) * (1 - t), low + (high - low) * t)


def surface_gripper_depths(depth_m: np.ndarray, pixels: np.ndarray, gripper: GripperConfig) -> np.ndarray:
    """``(N,)`` metres: the surface depth at each pixel of a depth image (median of a 5x5 window) plus the
    finger depth; NaN where the window has no reading. The first estimate that sizes a canonical crop."""
    return depth_at(depth_m, pixels, radius=2).astype(np.float64) + gripper.finger_depth


def _flat(windows: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` windows as ``(N, h * w)`` rows (``N`` may be 0)."""
    return windows.reshape(len(windows), windows.shape[1] * windows.shape[2])


def _window_medians(windows: np.ndarray) -> np.ndarray:
    """``(N,)`` float64: the median reading of each ``(N, h, w)`` window; NaN where a window has none."""
    rows = _flat(windows)
    out = np.full(len(rows), np.nan)
    seen = np.isfinite(rows).any(axis=1)
    if seen.any():
        out[seen] = nanmedian_rows(rows[seen])
    return out


def crop_surface_depths(crops: np.ndarray) -> np.ndarray:
    """``(N,)`` metres: the surface under each canonical crop's centre (``top`` of the module docstring: the median of
    the readings within 2 canonical pixels of the centre, before the thin-object rule of :func:`gripper_depths`); NaN
    where there is none."""
    crops = np.asarray(crops, dtype=np.float32)
    _, height, width = crops.shape
    cx, cy = int(round((width - 1) / 2.0)), int(round((height - 1) / 2.0))
    radius = max(1, int(round(2 * width / CANONICAL_SIZE)))
    return _window_medians(crops[:, cy - radius : cy + radius + 1, cx - radius : cx + radius + 1])


def crop_centre_depths(crops: np.ndarray) -> np.ndarray:
    """``(N,)`` metres: the median of the pixels each canonical crop's centre lies on (the 2 x 2 around it in an even
    crop, the middle one in an odd one); NaN where they have no reading."""
    crops = np.asarray(crops, dtype=np.float32)
    _, height, width = crops.shape
    return _window_medians(crops[:, (height - 1) // 2 : height // 2 + 1, (width - 1) // 2 : width // 2 + 1])


def jaw_footprints(crops: np.ndarray, gripper: GripperConfig, opening: float | None = None) -> list[np.ndarray]:
    """The readings under the two jaws' footprints in canonical crops ``(N, h, w)``, jaws ``opening`` metres apart
    (their inner faces; None: ``max_opening``): two ``(N, K)`` arrays, the ``-x`` jaw first. Each footprint is
    ``jaw_thickness`` along the axis outward from the inner face and ``jaw_width`` across it, clipped to the crop."""
    crops = np.asarray(crops, dtype=np.float32)
    _, height, width = crops.shape
    opening = gripper.max_opening if opening is None else opening
    per_metre = OPENING_FRACTION * width / gripper.max_opening  # crop pixels per metre
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    rows = slice(
        max(int(np.floor(cy - (0.5 * gripper.jaw_width * per_metre + 1))), 0),
        min(int(np.ceil(cy + 0.5 * gripper.jaw_width * per_metre + 1)) + 1, height),
    )
    inner = 0.5 * opening * per_metre
    outer = inner + gripper.jaw_thickness * per_metre
    jaws = [
        crops[:, rows, max(int(np.ceil(cx - outer)), 0) : int(np.floor(cx - inner)) + 1],
        crops[:, rows, int(np.ceil(cx + inner)) : min(int(np.floor(cx + outer)) + 1, width)],
    ]
    return [_flat(jaw) for jaw in jaws]


def jaw_footprints_at(crops: np.ndarray, gripper: GripperConfig, openings: np.ndarray) -> list[np.ndarray]:
    """:func:`jaw_footprints` at each of ``openings`` ``(M,)`` metres: two ``(N, M, K)`` arrays (the ``-x`` jaw first),
    each opening's readings NaN-padded to the longest footprint's ``K``."""
    crops = np.asarray(crops, dtype=np.float32)
    per_opening = [jaw_footprints(crops, gripper, float(opening)) for opening in openings]
    longest = max(jaw.shape[1] for pair in per_opening for jaw in pair)
    stacked = []
    for side in range(2):
        readings = np.full((len(crops), len(per_opening), longest), np.nan, np.float32)
        for index, pair in enumerate(per_opening):
            readings[:, index, : pair[side].shape[1]] = pair[side]
        stacked.append(readings)
    return stacked


def footprint_percentiles(readings: np.ndarray, percentile: float) -> np.ndarray:
    """The ``percentile`` of ``readings`` ``(..., K)`` over their last axis (:func:`nanpercentile_rows`); NaN where
    there is no reading."""
    rows = readings.reshape(-1, readings.shape[-1])
    out = np.full(len(rows), np.nan, rows.dtype)
    seen = np.isfinite(rows).any(axis=1)
    if seen.any():
        out[seen] = nanpercentile_rows(rows[seen], percentile)
    return out.reshape(readings.shape[:-1])


def depth_rule(top: np.ndarray, centre: np.ndarray, floor: np.ndarray, gripper: GripperConfig) -> np.ndarray:
    """The gripper depth (metres) of the module docstring from the window's surface ``top``, the central pixels'
    ``centre`` and the nearer jaw's ``floor`` (``inf``: none seen), arrays that broadcast; NaN where ``top`` is."""
    rise = np.where(np.isfinite(floor), floor - top, 0.0)
    # the window reads the floor, the central pixels something nearer: an object thinner than the window
    thin = np.isfinite(floor) & (rise < gripper.table_clearance) & (centre < top - TOP_BAND)
    top = np.where(thin, centre, top)
    rise = np.where(thin, floor - top, rise)
    deeper = top + np.minimum(np.maximum(gripper.finger_depth, 0.5 * rise), rise - gripper.table_clearance)
    return np.where(rise < gripper.table_clearance, top + gripper.finger_depth, deeper)


def gripper_depths_at(crops: np.ndarray, gripper: GripperConfig, openings: np.ndarray) -> np.ndarray:
    """``(N, M)`` metres: :func:`gripper_depths` of canonical crops ``(N, h, w)`` with the jaws at each of
    ``openings`` ``(M,)`` metres apart."""
    crops = np.asarray(crops, dtype=np.float32)
    top, centre = crop_surface_depths(crops), crop_centre_depths(crops)
    floors = [footprint_percentiles(jaw, FLOOR_PERCENTILE) for jaw in jaw_footprints_at(crops, gripper, openings)]
    floor = np.fmin(*floors)  # the nearer jaw's; NaN only where neither jaw has a reading
    floor = np.where(np.isnan(floor), np.inf, floor)
    return depth_rule(top[:, None], centre[:, None], floor, gripper).astype(np.float64)


def gripper_depths(crops: np.ndarray, gripper: GripperConfig, opening: float | None = None) -> np.ndarray:
    """``(N,)`` metres: the gripper depth of each canonical crop ``(N, h, w)`` (metres, NaN = no reading) by
    the rule of the module docstring, the jaws ``opening`` metres apart (None: ``max_opening``); NaN where the crop's
    centre has no reading. A crop of an oblique view is read as seen from straight above
    (:func:`~stn_ros.perception.grasps.grasp_pose.top_down_images`) first."""
    opening = gripper.max_opening if opening is None else opening
    return gripper_depths_at(crops, gripper, np.array([opening]))[:, 0]


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
