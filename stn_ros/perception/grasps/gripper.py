"""The user's gripper: how far from the trained one the shipped weights hold up, and what follows from it.

Every model here was trained for :data:`TRAINED_GRIPPER` (:class:`GripperConfig`'s
defaults: an 8 cm opening, 1 cm jaws, fingertips 2 cm below the top). A robot's gripper differs; the nodes
take its opening, jaw width and finger depth as parameters (``gripper.*``) and adapt what is geometry:

* the canonical crop spans the gripper's opening at a fixed fraction (Dex-Net's convention), so its metric
  scale follows the opening; the grasp STN's metric ROI grows with it (:func:`metric_roi_side`), so the STN
  sees every object at ``TRAINED_GRIPPER.max_opening / opening`` times its trained size, and its output crop
  is the canonical image of the new gripper;
* the gripper depth follows the finger depth, the jaws' footprint the jaw width
  (:mod:`~stn_ros.perception.grasps.gripper_depth`).

What is learned does not adapt: the STN and the GQ-CNN see objects at another scale, relative depths
from other fingertips. :data:`MEASURED_RANGE` is how far that stays good, measured in physics
(``stn_evaluate gripper-sweep``, ``docs/grasp/gripper.md``); :func:`check_gripper` refuses a gripper
outside it, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class GripperConfig:
    """A parallel-jaw gripper (metres).

    Attributes:
        max_opening: largest distance between the jaws' inner faces.
        jaw_width: jaw footprint across the grasp axis.
        jaw_thickness: jaw footprint along the grasp axis.
        finger_depth: how far below the object's top the fingertips go.
        clearance: extra opening beyond the object's width, split between the two jaws.
        table_clearance: the fingertips stay at least this far above the table.
        mu: Coulomb friction coefficient; the friction cone's half-angle is ``atan(mu)``.
    """

    max_opening: float = 0.08
    jaw_width: float = 0.01
    jaw_thickness: float = 0.02
    finger_depth: float = 0.02
    clearance: float = 0.006
    table_clearance: float = 0.005
    mu: float = 0.5


TRAINED_GRIPPER = GripperConfig()
"""The gripper every shipped model (and every model ``stn_train`` makes) was trained for."""

PARAMETER_FIELDS = {'opening': 'max_opening', 'jaw_width': 'jaw_width', 'finger_depth': 'finger_depth'}
"""The nodes' gripper parameters (``gripper.<name>``) -> the :class:`GripperConfig` field each one sets."""


@dataclass(frozen=True)
class GripperRange:
    """Closed intervals (metres) of each gripper parameter the nodes take."""

    opening: tuple[float, float]
    jaw_width: tuple[float, float]
    finger_depth: tuple[float, float]


MEASURED_RANGE = GripperRange(opening=(0.05, 0.14), jaw_width=(0.005, 0.03), finger_depth=(0.01, 0.04))
"""Where the shipped weights, judged in physics, still beat the OpenCV rule and stay as near the best
candidate as with the trained gripper (``docs/grasp/gripper.md``; one parameter varied at a time)."""

PHYSICAL_RANGE = GripperRange(opening=(0.01, 1.0), jaw_width=(0.001, 1.0), finger_depth=(0.001, 1.0))
"""What a parallel-jaw gripper's parameters can be at all (metres): outside it a value is a typo."""


def gripper_config(opening: float, jaw_width: float, finger_depth: float) -> GripperConfig:
    """The :class:`GripperConfig` of a gripper given by the nodes' three parameters (the rest as trained)."""
    return replace(
        TRAINED_GRIPPER, max_opening=float(opening), jaw_width=float(jaw_width), finger_depth=float(finger_depth)
    )


def gripper_parameters(gripper: GripperConfig) -> dict[str, float]:
    """``gripper`` as the nodes' parameters (without the ``gripper.`` prefix): name -> metres."""
    return {name: getattr(gripper, field) for name, field in PARAMETER_FIELDS.items()}


def check_gripper(gripper: GripperConfig, measured: GripperRange = MEASURED_RANGE) -> GripperConfig:
    """``gripper`` when each of its parameters is in ``measured``; else ValueError naming each one outside,
    the range, and why (the weights were not measured good there)."""
    trained = gripper_parameters(TRAINED_GRIPPER)
    outside = [
        f'gripper.{name} {value:g} m is outside [{low:g}, {high:g}] m'
        for name, value in gripper_parameters(gripper).items()
        for low, high in [getattr(measured, name)]
        if not low <= value <= high
    ]
    if outside:
        trained_text = ', '.join(f'{name} {value:g}' for name, value in trained.items())
        raise ValueError(
            '; '.join(outside)
            + f': the shipped weights were trained for {trained_text} m and measured good in physics only within '
            'that range (docs/grasp/gripper.md); retrain for this gripper, or set gripper.check_range false to run '
            'them anyway'
        )
    return gripper


def metric_roi_side(roi_side_m: float | None, gripper: GripperConfig) -> float | None:
    """Side (metres) of the metric ROI a grasp STN trained on ``roi_side_m`` crops for :data:`TRAINED_GRIPPER`
    looks at for ``gripper``: scaled with the opening, so its crops are ``gripper``'s canonical images.
    None (an STN without metric crops) stays None."""
    if roi_side_m is None:
        return None
    return roi_side_m * gripper.max_opening / TRAINED_GRIPPER.max_opening


def describe_gripper(gripper: GripperConfig, roi_side_m: float | None = None) -> str:
    """One line for a log: the gripper (and the metric ROI it gives a grasp STN)."""
    text = (
        f'gripper {gripper.max_opening * 100:g} cm open, {gripper.jaw_width * 100:g} cm jaws, '
        f'fingertips {gripper.finger_depth * 100:g} cm deep'
    )
    return text + (f' ({roi_side_m * 100:.1f} cm ROIs)' if roi_side_m else '')
