"""Node parameters as specs (name, default, description, what values are valid), and the ones both grasp nodes
declare alike. No rclpy: ``stn_replay`` and the evaluation read the nodes' tables (:mod:`stn_ros.ros.stn_parameters`,
:mod:`stn_ros.ros.grasp_parameters`) and check values the way the nodes do, without a ROS graph; declaring them on a
node (descriptors, validation on change) lives in :mod:`stn_ros.ros.parameters`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stn_ros.perception.grasps.gripper import (
    PHYSICAL_RANGE,
    TRAINED_GRIPPER,
    GripperConfig,
    check_gripper,
    gripper_config,
)


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: default, description, and what values are valid.

    ``check`` returns the value to use (e.g. converted) or raises ValueError with the reason.
    Numbers are declared with dynamic typing so that ``-p x:=1`` works for a double (rclpy types
    ``1`` as an integer); ``check`` then enforces the real type and range.
    """

    name: str
    default: Any
    description: str
    check: Callable[[Any], Any] = lambda value: value
    read_only: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    @classmethod
    def integer(
        cls, name: str, default: int, description: str, low: int, high: int, read_only: bool = False
    ) -> ParameterSpec:
        """An integer in ``[low, high]``: the range is both checked and declared (``integer_range``)."""
        return cls(name, default, description, integer_in(low, high), read_only, int_range=(low, high))

    @classmethod
    def number(
        cls, name: str, default: float, description: str, low: float, high: float, read_only: bool = False
    ) -> ParameterSpec:
        """A number in ``[low, high]`` (``1`` as well as ``1.0``): checked, and named in the descriptor."""
        return cls(name, default, description, number_in(low, high), read_only, float_range=(low, high))


def default_values(specs: list[ParameterSpec]) -> dict[str, Any]:
    """Each parameter's default as the node uses it when nothing is set (checked and converted by its spec): for
    commands that run a node's steps without the node. The shipped ``config/`` files set the same values (tested)."""
    return {spec.name: spec.check(spec.default) for spec in specs}


def number_in(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'must be a number, got {value!r}')
        if not low <= value <= high:
            raise ValueError(f'must be in [{low}, {high}], got {value}')
        return float(value)

    return check


def integer_in(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'must be an integer, got {value!r}')
        if not low <= value <= high:
            raise ValueError(f'must be in [{low}, {high}], got {value}')
        return int(value)

    return check


def device_string(value: Any) -> str:
    """A well-formed device string (``auto``, ``cpu``, ``cuda``, ``cuda:N``); whether it is available is
    a start-up error of its own."""
    from stn_ros.core import DeviceUnavailableError, resolve_device

    try:
        resolve_device(value)
    except DeviceUnavailableError:
        pass
    return value


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f'must be one of {", ".join(choices)}; got {value!r}')
        return value

    return check


def inference_backend_name(value: Any) -> str:
    from stn_ros.models.backends import BACKENDS

    return one_of(*BACKENDS)(value)


INFERENCE_BACKEND = ParameterSpec(
    'inference_backend',
    'auto',
    'what runs the net: auto (torch on CUDA; on a CPU the faster measured, see README), torch, or onnxruntime '
    '(CPU only; torch_threads intra-op threads)',
    inference_backend_name,
    read_only=True,
)


def check_backend_device(values: dict[str, Any]) -> None:
    """ValueError for ``inference_backend`` onnxruntime with a CUDA ``device``: the pinned onnxruntime wheel has no
    CUDA execution provider (``device`` auto that finds CUDA is refused when the node starts)."""
    if values['inference_backend'] == 'onnxruntime' and str(values['device']).startswith('cuda'):
        raise ValueError(
            f'inference_backend onnxruntime runs on the CPU only (the pinned onnxruntime wheel has no CUDA execution '
            f'provider), but device is {values["device"]}: set device cpu, or inference_backend torch or auto'
        )


TORCH_THREADS = ParameterSpec.integer(
    'torch_threads', 1, "torch's CPU threads for this node (its share of the cores; see README)", 1, 64, read_only=True
)

GRIPPER_PARAMETERS = [
    ParameterSpec.number(
        'gripper.opening',
        TRAINED_GRIPPER.max_opening,
        "metres between the jaws' inner faces when open; the canonical crop's scale follows it",
        *PHYSICAL_RANGE.opening,
        read_only=True,
    ),
    ParameterSpec.number(
        'gripper.jaw_width',
        TRAINED_GRIPPER.jaw_width,
        "metres: each jaw's extent across the grasp axis",
        *PHYSICAL_RANGE.jaw_width,
        read_only=True,
    ),
    ParameterSpec.number(
        'gripper.finger_depth',
        TRAINED_GRIPPER.finger_depth,
        "metres the fingertips go below an object's top (the gripper depth follows it)",
        *PHYSICAL_RANGE.finger_depth,
        read_only=True,
    ),
    ParameterSpec(
        'gripper.check_range',
        True,
        'refuse a gripper outside the range the shipped weights were measured good for (docs/grasp/gripper.md)',
        read_only=True,
    ),
]
"""The gripper, declared alike by both nodes (``config/gripper.yaml``; the launch file passes it to both)."""


def gripper_from(values: dict[str, Any]) -> GripperConfig:
    """The gripper of a node's checked ``GRIPPER_PARAMETERS`` values; ValueError with the reason when it is
    outside the measured range and ``gripper.check_range`` is on."""
    gripper = gripper_config(values['gripper.opening'], values['gripper.jaw_width'], values['gripper.finger_depth'])
    return check_gripper(gripper) if values['gripper.check_range'] else gripper
