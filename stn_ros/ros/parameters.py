"""Declaring node parameters on an rclpy node, with descriptors, and validating them at start and on change.

The specs themselves (and the nodes' tables) are rclpy-free: :mod:`stn_ros.ros.parameter_specs`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from stn_ros.ros.parameter_specs import ParameterSpec


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing device, unusable weights): one clear line."""


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` ``spec`` is declared with: its description, read-only flag and range (an integer's
    as ``integer_range``, enforced by rclpy; a number's in the text, with dynamic typing so ``-p x:=1`` works)."""
    result = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only)
    if spec.int_range is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
        result.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=0)]
    elif spec.float_range is not None:
        result.dynamic_typing = True
        result.additional_constraints = f'a number in [{spec.float_range[0]}, {spec.float_range[1]}]'
    elif spec.default is None:
        result.dynamic_typing = True
    return result


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
                value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
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
