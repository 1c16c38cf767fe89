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
from stn_ros.perception.grasps.gripper_depth import footprint_percentiles, gripper_depths_at, jaw_footprints_at

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


def jaws_hit_at(crops: np.ndarray, z: np.ndarray, gripper: GripperConfig, openings: np.ndarray) -> np.ndarray:
    """``(N, M)`` bool: whether either jaw, at each of ``openings`` ``(M,)`` metres apart, descending to the gripper
    depths ``z`` ``(N, M)`` hits something in canonical crops ``(N, h, w)`` (the module docstring); False where ``z``
    is NaN or a footprint has no reading."""
    z = np.asarray(z, dtype=np.float64)
    hit = np.zeros(z.shape, bool)
    for jaw in jaw_footprints_at(crops, gripper, openings):
        nearest = footprint_percentiles(jaw, NEAREST_PERCENTILE).astype(np.float64)
        hit |= nearest < z - HIT_TOLERANCE  # NaN on either side: False
    return hit


def jaws_hit(crops: np.ndarray, z: np.ndarray, gripper: GripperConfig, opening: float | None = None) -> np.ndarray:
    """``(N,)`` bool: :func:`jaws_hit_at` at one opening (None: ``max_opening``), ``z`` ``(N,)``."""
    opening = gripper.max_opening if opening is None else opening
    return jaws_hit_at(crops, np.asarray(z, np.float64)[:, None], gripper, np.array([opening]))[:, 0]


def candidate_openings(gripper: GripperConfig, crop_width: int) -> np.ndarray:
    """The openings (metres) :func:`clear_openings` tries, widest first: ``max_opening``, then one crop pixel narrower
    per jaw each step, down to the narrowest that leaves a pixel between the jaws."""
    metres_per_pixel = gripper.max_opening / (OPENING_FRACTION * crop_width)
    steps = int(np.floor((gripper.max_opening / metres_per_pixel - 2) / 2)) + 1
    return gripper.max_opening - 2 * metres_per_pixel * np.arange(max(steps, 1))


def clear_openings(crops: np.ndarray, gripper: GripperConfig) -> JawOpenings:
    """The widest opening at which the jaws reach each canonical crop's grasp without hitting anything, and the
    gripper depth there (the module docstring); every opening of every crop at once."""
    crops = np.asarray(crops, dtype=np.float32)
    openings = candidate_openings(gripper, crops.shape[2])
    z = gripper_depths_at(crops, gripper, openings)
    clear = np.isfinite(z) & ~jaws_hit_at(crops, z, gripper, openings)
    widest = np.argmax(clear, axis=1)  # the first clear opening (0 where none is: masked below)
    found = clear.any(axis=1)
    rows = np.arange(len(crops))
    return JawOpenings(np.where(found, openings[widest], np.nan), np.where(found, z[rows, widest], z[:, 0]))
