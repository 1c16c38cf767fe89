"""Declaring node parameters with descriptors and validating them at start and on change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from stn_ros.perception.grasps.gripper import (
    PHYSICAL_RANGE,
    TRAINED_GRIPPER,
    GripperConfig,
    check_gripper,
    gripper_config,
)


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing device, unusable weights): one clear line."""


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

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        if self.int_range is not None and isinstance(self.default, int) and not isinstance(self.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=0)]
        elif self.float_range is not None:
            descriptor.dynamic_typing = True
            descriptor.additional_constraints = f'a number in [{self.float_range[0]}, {self.float_range[1]}]'
        elif self.default is None:
            descriptor.dynamic_typing = True
        return descriptor


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


class ParameterSet:
    """Declares a node's parameters, validates them at start and on every change.

    ``values`` holds the checked values, replaced (never updated in place) when a change is accepted, so a
    reader that takes it once has one snapshot; ``on_change(name, value)`` runs after a change is accepted;
    ``cross_check(values)`` raises ValueError when values that are each valid do not go together (it
    runs at start and on every change, with the values the change would give).
    """

    def __init__(
        self,
        node: Node,
        specs: list[ParameterSpec],
        on_change: Callable[[str, Any], None] | None = None,
        cross_check: Callable[[dict[str, Any]], None] | None = None,
    ):
        self._node = node
        self._specs = {spec.name: spec for spec in specs}
        self._on_change = on_change
        self._cross_check = cross_check
        self.values: dict[str, Any] = {}
        for spec in specs:
            # Declared already when a lifecycle node's configure failed here before (the user may have fixed the
            # value since): read it, do not declare it again.
            if node.has_parameter(spec.name):
                value = node.get_parameter(spec.name).value
            else:
                value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
            try:
                self.values[spec.name] = spec.check(value)
            except ValueError as exc:
                raise StartupError(f'parameter {spec.name!r}: {exc}') from None
        if cross_check is not None:
            try:
                cross_check(self.values)
            except ValueError as exc:
                raise StartupError(f'parameters: {exc}') from None
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def _validate(self, parameters: list[Parameter]) -> SetParametersResult:
        candidate = dict(self.values)
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is None:
                continue  # e.g. qos_overrides.*, use_sim_time: rclpy's own
            try:
                candidate[spec.name] = spec.check(parameter.value)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=f'{parameter.name}: {exc}')
        if self._cross_check is not None:
            try:
                self._cross_check(candidate)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list[Parameter]) -> None:
        # A new dict, never an update in place: a worker that took ``values`` once keeps one consistent
        # configuration for its whole frame.
        values = dict(self.values)
        changed = []
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is not None:
                values[spec.name] = spec.check(parameter.value)
                changed.append(spec.name)
        self.values = values
        if self._on_change is not None:
            for name in changed:
                self._on_change(name, values[name])


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
