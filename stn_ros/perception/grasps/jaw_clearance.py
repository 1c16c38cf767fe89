"""Whether a grasp's jaws get down to it without hitting anything, and how wide to open them. No rclpy, no torch.

A canonical crop seen from straight above (:mod:`~stn_ros.perception.grasps.grasp_image`: the grasp axis along
``+x``, the gripper's ``max_opening`` spanning ``OPENING_FRACTION`` of the width) is the height map around the grasp.
Opened ``w`` apart, each jaw travels from the pre-grasp (back along the approach) down to the gripper depth ``z``
over its footprint (:func:`~stn_ros.perception.grasps.gripper_depth.jaw_footprints`); that swept column hits
whatever in the footprint is nearer than the fingertips. A jaw *hits* when the :data:`NEAREST_PERCENTILE` of the
footprint's readings is more than :data:`HIT_TOLERANCE` nearer than ``z`` (a percentile, not the minimum, so one
noisy reading does not block a grasp).

:func:`clear_openings` tries the gripper's full opening first, then narrower ones, one crop pixel per jaw at a time,
each with its own gripper depth (the jaws may now reach the table beside the object); the first (widest) opening at
which neither jaw hits is the grasp's. A grasp without one would hit a neighbour, the table or the object itself
(one wider than the gripper): it is *blocked*, and the nodes do not publish it. An opening narrower than the object
puts the jaws on the object, so the rule never picks one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stn_ros.perception.grasps.grasp_image import OPENING_FRACTION
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import gripper_depths, jaw_footprints, nanpercentile_rows

NEAREST_PERCENTILE = 5.0
"""Percentile of the readings under a jaw's footprint taken as the nearest thing in its way."""
HIT_TOLERANCE = 0.003
"""Metres: a jaw hits what lies more than this above its fingertips (depth noise and the crop's sampling)."""


@dataclass
class JawOpenings:
    """Each crop's opening and gripper depth (metres, ``(N,)`` each).

    ``opening``: the widest that clears (NaN: none does, or no surface under the crop's centre); ``z``: the gripper
    depth at that opening (at the full opening where none clears; NaN without a surface). ``blocked``: a surface was
    seen but no opening clears it.
    """

    opening: np.ndarray
    z: np.ndarray

    @property
    def blocked(self) -> np.ndarray:
        return np.isfinite(self.z) & ~np.isfinite(self.opening)


def jaws_hit(crops: np.ndarray, z: np.ndarray, gripper: GripperConfig, opening: float | None = None) -> np.ndarray:
    """``(N,)`` bool: whether either jaw, ``opening`` metres apart (None: ``max_opening``), descending to the gripper
    depths ``z`` ``(N,)`` hits something in canonical crops ``(N, h, w)`` (the module docstring); False where ``z`` is
    NaN or a footprint has no reading."""
    z = np.asarray(z, dtype=np.float64)
    hit = np.zeros(len(z), bool)
    for jaw in jaw_footprints(crops, gripper, opening):
        seen = np.isfinite(jaw).any(axis=1) & np.isfinite(z)
        if seen.any():
            nearest = nanpercentile_rows(jaw[seen], NEAREST_PERCENTILE).astype(np.float64)
            hit[seen] |= nearest < z[seen] - HIT_TOLERANCE
    return hit


def candidate_openings(gripper: GripperConfig, crop_width: int) -> np.ndarray:
    """The openings (metres) :func:`clear_openings` tries, widest first: ``max_opening``, then one crop pixel narrower
    per jaw each step, down to the narrowest that leaves a pixel between the jaws."""
    metres_per_pixel = gripper.max_opening / (OPENING_FRACTION * crop_width)
    steps = int(np.floor((gripper.max_opening / metres_per_pixel - 2) / 2)) + 1
    return gripper.max_opening - 2 * metres_per_pixel * np.arange(max(steps, 1))


def clear_openings(crops: np.ndarray, gripper: GripperConfig) -> JawOpenings:
    """The widest opening at which the jaws reach each canonical crop's grasp without hitting anything, and the
    gripper depth there (the module docstring)."""
    crops = np.asarray(crops, dtype=np.float32)
    z = gripper_depths(crops, gripper)
    opening = np.full(len(crops), np.nan)
    pending = np.isfinite(z)
    for width in candidate_openings(gripper, crops.shape[2]):
        if not pending.any():
            break
        rows = np.flatnonzero(pending)
        at_width = z[rows] if width == gripper.max_opening else gripper_depths(crops[rows], gripper, width)
        clear = np.isfinite(at_width) & ~jaws_hit(crops[rows], at_width, gripper, width)
        opening[rows[clear]] = width
        z[rows[clear]] = at_width[clear]
        pending[rows[clear]] = False
    return JawOpenings(opening, z)
