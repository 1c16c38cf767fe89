"""Stand-ins for the part of the launch/launch_ros API the package's launch files use (no wheels of those here).

They record what a launch file gives them and resolve substitutions the way ``ros2 launch`` does for given
launch arguments; ``node_ros_arguments`` gives the command line launch_ros would run for a Node.
Anything else of that API is missing on purpose: a launch file using it fails here instead of being misread.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from stn_ros.core.package_files import share_directory


def perform(value, configurations: dict[str, str]) -> str:
    """A string, a substitution or a list of them, as text (launch's ``perform_substitutions``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ''.join(perform(v, configurations) for v in value)
    return value.perform(configurations)


class LaunchConfiguration:
    def __init__(self, variable_name, default=None):
        self.variable_name, self.default = variable_name, default

    def perform(self, configurations):
        name = perform(self.variable_name, configurations)
        if name in configurations:
            return configurations[name]
        if self.default is None:
            raise LookupError(f'launch configuration {name!r} does not exist')
        return perform(self.default, configurations)


class PathJoinSubstitution:
    def __init__(self, substitutions):
        self.substitutions = list(substitutions)

    def perform(self, configurations):
        return os.path.join(*(perform(s, configurations) for s in self.substitutions))


class FindPackageShare:
    def __init__(self, package):
        self.package = package

    def perform(self, configurations):
        package = perform(self.package, configurations)
        if package != 'stn_ros':
            raise LookupError(f'package {package!r} not found (only stn_ros is installed here)')
        return str(share_directory())


def _boolean(text: str, what: str) -> bool:
    text = text.strip().lower()
    if text not in ('true', '1', 'false', '0'):
        raise ValueError(f'{what}: {text!r} is not a boolean')
    return text in ('true', '1')


class AndSubstitution:
    def __init__(self, left, right):
        self.left, self.right = left, right

    def perform(self, configurations):
        left = _boolean(perform(self.left, configurations), 'AndSubstitution')
        right = _boolean(perform(self.right, configurations), 'AndSubstitution')
        return str(left and right).lower()


class NotSubstitution:
    def __init__(self, value):
        self.value = value

    def perform(self, configurations):
        return str(not _boolean(perform(self.value, configurations), 'NotSubstitution')).lower()


class IfCondition:
    def __init__(self, predicate_expression):
        self.predicate_expression = predicate_expression

    def evaluate(self, configurations) -> bool:
        return _boolean(perform(self.predicate_expression, configurations), 'IfCondition')


class UnlessCondition(IfCondition):
    def evaluate(self, configurations) -> bool:
        return not super().evaluate(configurations)


class DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description='', choices=None):
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class Node:
    def __init__(
        self,
        *,
        executable,
        name=None,
        package=None,
        namespace=None,
        parameters=None,
        remappings=None,
        ros_arguments=None,
        arguments=None,
        output='log',
        emulate_tty=False,
        condition=None,
    ):
        self.kwargs = dict(
            executable=executable,
            package=package,
            name=name,
            namespace=namespace,
            parameters=parameters or [],
            remappings=remappings or [],
            ros_arguments=ros_arguments or [],
            arguments=arguments or [],
            condition=condition,
        )


class LifecycleNode(Node):
    """launch_ros's LifecycleNode: as Node, but ``name`` and ``namespace`` are required (Kilted)."""

    def __init__(self, *, name, namespace, **kwargs):
        super().__init__(name=name, namespace=namespace, **kwargs)


class Shutdown:
    """launch's Shutdown action: ends the launch with ``reason`` (when its condition holds)."""

    def __init__(self, *, reason='reason not given', condition=None):
        self.reason, self.condition = reason, condition


class LaunchDescription:
    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])


MODULES = {
    'launch': {'LaunchDescription': LaunchDescription},
    'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument, 'Shutdown': Shutdown},
    'launch.conditions': {'IfCondition': IfCondition, 'UnlessCondition': UnlessCondition},
    'launch.substitutions': {
        'AndSubstitution': AndSubstitution,
        'LaunchConfiguration': LaunchConfiguration,
        'NotSubstitution': NotSubstitution,
        'PathJoinSubstitution': PathJoinSubstitution,
    },
    'launch_ros': {},
    'launch_ros.actions': {'LifecycleNode': LifecycleNode, 'Node': Node},
    'launch_ros.substitutions': {'FindPackageShare': FindPackageShare},
}


@dataclass
class LaunchedNode:
    """A Node action after substitution: what launch_ros starts."""

    package: str
    executable: str
    name: str | None  # None: the names the executable gives its nodes (launch_ros passes no __node remapping)
    namespace: str
    parameters: list[Path | dict[str, Any]] = field(default_factory=list)  # files and inline dicts, in order
    remappings: list[tuple[str, str]] = field(default_factory=list)
    ros_arguments: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)  # the executable's own, before --ros-args
    lifecycle: bool = False  # a launch_ros LifecycleNode

    @property
    def parameter_files(self) -> list[Path]:
        return [p for p in self.parameters if isinstance(p, Path)]

    @property
    def inline_parameters(self) -> dict[str, Any]:
        return {k: v for p in self.parameters if isinstance(p, dict) for k, v in p.items()}


@dataclass
class Launched:
    declared: dict[str, DeclareLaunchArgument]
    configurations: dict[str, str]
    nodes: list[LaunchedNode]
    shutdown: str | None = None  # the reason of a Shutdown action that fired: the launch ends there

    def node(self, name: str) -> LaunchedNode:
        return next(n for n in self.nodes if n.name == name)


def load_description(launch_file: Path) -> LaunchDescription:
    """``generate_launch_description()`` of ``launch_file``, with the stand-ins as launch and launch_ros."""
    with pytest.MonkeyPatch.context() as patch:
        for module_name, names in MODULES.items():
            module = types.ModuleType(module_name)
            module.__dict__.update(names)
            patch.setitem(sys.modules, module_name, module)
        spec = importlib.util.spec_from_file_location('launch_file_under_test', launch_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    return description


def parameter_value(value, configurations: dict[str, str]):
    """An inline parameter value as launch_ros evaluates it: text and substitutions typed by YAML rules
    ('' stays a string); lists are not needed by the launch files, so not supported."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        raise TypeError(f'the launch stand-ins do not evaluate list parameters: {value!r}')
    text = perform(value, configurations)
    value = yaml.safe_load(text) if text else ''
    assert isinstance(value, (bool, int, float, str, list)), f'{text!r} is no parameter value'
    return value


def launch(launch_file: Path, **arguments: str) -> Launched:
    """Execute ``launch_file`` as ``ros2 launch ... name:=value`` would, up to the processes it starts."""
    description = load_description(launch_file)
    configurations = dict(arguments)
    declared, nodes, shutdown = {}, [], None
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            declared[entity.name] = entity
            if entity.name not in configurations:
                if entity.default_value is None:
                    raise LookupError(f'launch argument {entity.name!r} is required')
                configurations[entity.name] = perform(entity.default_value, configurations)
            if entity.choices is not None:
                assert configurations[entity.name] in entity.choices, entity.name
        elif isinstance(entity, Node):
            if shutdown is not None:
                continue  # the launch is shutting down: nothing more starts
            kwargs = entity.kwargs
            if kwargs['condition'] is not None and not kwargs['condition'].evaluate(configurations):
                continue
            node = LaunchedNode(
                package=perform(kwargs['package'], configurations),
                executable=perform(kwargs['executable'], configurations),
                name=None if kwargs['name'] is None else perform(kwargs['name'], configurations),
                namespace='/' + perform(kwargs['namespace'] or '', configurations).strip('/'),  # '/': none given
                remappings=[(perform(a, configurations), perform(b, configurations)) for a, b in kwargs['remappings']],
                ros_arguments=[perform(a, configurations) for a in kwargs['ros_arguments']],
                arguments=[perform(a, configurations) for a in kwargs['arguments']],
                lifecycle=isinstance(entity, LifecycleNode),
                parameters=[
                    {perform(k, configurations): parameter_value(v, configurations) for k, v in p.items()}
                    if isinstance(p, dict)
                    else Path(perform(p, configurations))
                    for p in kwargs['parameters']
                ],
            )
            nodes.append(node)
        elif isinstance(entity, Shutdown):
            if entity.condition is None or entity.condition.evaluate(configurations):
                shutdown = shutdown or perform(entity.reason, configurations)
        else:
            raise TypeError(f'the launch stand-ins do not know {entity!r}')
    unknown = set(arguments) - set(declared)
    assert not unknown, f'not declared by the launch file: {sorted(unknown)}'
    return Launched(declared, configurations, nodes, shutdown)


def node_ros_arguments(node: LaunchedNode, directory: Path) -> list[str]:
    """What launch_ros passes ``node``'s executable after ``--ros-args``; inline parameters become YAML files in
    ``directory``, keyed as launch_ros keys them (the full node name when a namespace is given, else '/**')."""
    args = list(node.ros_arguments)
    if node.name is not None:
        args += ['-r', f'__node:={node.name}']
    if node.namespace != '/':
        args += ['-r', f'__ns:={node.namespace}']
    key = f'{node.namespace}/{node.name}' if node.namespace != '/' and node.name is not None else '/**'
    for i, parameters in enumerate(node.parameters):
        if isinstance(parameters, dict):
            path = directory / f'{node.name or node.executable}_params_{i}.yaml'
            path.write_text(yaml.safe_dump({key: {'ros__parameters': parameters}}))
            parameters = path
        args += ['--params-file', str(parameters)]
    for source, target in node.remappings:
        args += ['-r', f'{source}:={target}']
    return args
