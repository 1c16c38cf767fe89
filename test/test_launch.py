"""launch/perception.launch.py, checked against what the package installs (launch_ros has no wheel here).

The launch file is parsed, not run: every Node it starts must be an installed executable, its
parameter files must exist and name that node with parameters it declares, and every remapped topic
must be one the node really subscribes or publishes.
"""
import ast
import importlib
from pathlib import Path

import pytest
import yaml

from test_package import captured_setup_kwargs

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'perception.launch.py'
NODE_MODULES = {'stn_node': 'stn_ros.ros.stn_node', 'grasp_quality_node': 'stn_ros.ros.grasp_quality_node',
                'synthetic_camera': 'stn_ros.ros.synthetic_camera'}


def literal(node, names=None):
    """Strings, tuples/lists and the config-file PathJoinSubstitution([config, 'x.yaml']) as values;
    a variable holding a ``LaunchConfiguration`` reads as that ``('arg', name)``."""
    names = names or {}
    if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'PathJoinSubstitution':
        return ('path', literal(node.args[0], names)[-1])
    if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'LaunchConfiguration':
        return ('arg', node.args[0].value)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(e, names) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {literal(k, names): literal(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id, ('name', node.id))
    return None


def launch_nodes():
    tree = ast.parse(LAUNCH.read_text())
    names = {a.targets[0].id: literal(a.value) for a in ast.walk(tree)
             if isinstance(a, ast.Assign) and isinstance(a.targets[0], ast.Name) and isinstance(a.value, ast.Call)
             and getattr(a.value.func, 'id', '') == 'LaunchConfiguration'}
    declared = {}
    nodes = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = getattr(call.func, 'id', '')
        if name == 'DeclareLaunchArgument':
            declared[call.args[0].value] = literal(next(k.value for k in call.keywords if k.arg == 'default_value'), names)
        elif name == 'Node':
            nodes.append({k.arg: literal(k.value, names) for k in call.keywords})
    return nodes, declared


def node_topics(module_name: str) -> set[str]:
    """Relative topic names a node module creates subscriptions and publishers on."""
    tree = ast.parse(Path(importlib.import_module(module_name).__file__).read_text())
    topics = set()
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if getattr(call.func, 'attr', '') in ('create_subscription', 'create_publisher') and len(call.args) > 1:
            if isinstance(call.args[1], ast.Constant) and not call.args[1].value.startswith(('~', '/')):
                topics.add(call.args[1].value)
    return topics


def test_launch_file_starts_the_pipeline_from_installed_executables(monkeypatch):
    nodes, declared = launch_nodes()
    assert {n['executable'] for n in nodes} == {'stn_node', 'grasp_quality_node', 'synthetic_camera'}
    scripts = {s.split('=')[0].strip() for s in captured_setup_kwargs(monkeypatch)['entry_points']['console_scripts']}
    for node in nodes:
        assert node['package'] == 'stn_ros' and node['executable'] in scripts
        assert node['name'] == node['executable']  # the parameter files are keyed by node name
    assert {'depth_topic', 'camera_info_topic', 'device', 'stn_weights', 'gqcnn_weights', 'stn_params_file',
            'grasp_params_file', 'use_synthetic_camera'} <= set(declared)


@pytest.mark.parametrize('executable', ['stn_node', 'grasp_quality_node', 'synthetic_camera'])
def test_parameter_files_and_remappings_match_the_node(executable, monkeypatch):
    nodes, declared = launch_nodes()
    node = next(n for n in nodes if n['executable'] == executable)
    module = importlib.import_module(NODE_MODULES[executable])
    declared_parameters = {spec.name for spec in module.PARAMETERS}
    installed_config = {Path(f).name for d, files in captured_setup_kwargs(monkeypatch)['data_files']
                        if d.endswith('/config') for f in files}
    for entry in node['parameters']:
        if isinstance(entry, dict):  # inline overrides: the node must declare them, values from arguments
            assert set(entry) <= declared_parameters
            assert all(v[0] == 'arg' and v[1] in declared for v in entry.values())
            continue
        if entry[0] == 'arg':
            entry = declared[entry[1]]
        assert entry[0] == 'path' and entry[1] in installed_config, entry
        content = yaml.safe_load((ROOT / 'config' / entry[1]).read_text())
        assert list(content) == [node['name']]
        assert set(content[node['name']]['ros__parameters']) <= declared_parameters
    topics = node_topics(NODE_MODULES[executable])
    for source, target in node['remappings']:
        assert source in topics, f'{executable} has no topic {source!r} (it has {sorted(topics)})'
        assert isinstance(target, str) or (target[0] == 'arg' and target[1] in declared)


def test_grasp_node_reads_what_stn_node_publishes():
    nodes, _ = launch_nodes()
    grasp = next(n for n in nodes if n['executable'] == 'grasp_quality_node')
    stn_source = Path(importlib.import_module(NODE_MODULES['stn_node']).__file__).read_text()
    for source, target in grasp['remappings']:
        if source.startswith('rectified/'):
            assert target == f'stn_node/{source}' and f"'~/{source}'" in stn_source
