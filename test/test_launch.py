"""launch/perception.launch.py, executed: what it starts, and the pipeline it starts, over a real ROS graph.

No launch/launch_ros wheels exist here, so the launch file runs against stand-ins (launch_stand_in.py) that
resolve its substitutions as ``ros2 launch`` would; each resulting Node is started as the process launch_ros
would start, and the graph those processes form is checked from an in-test rclpy node.
"""

import importlib
import re
import time
from pathlib import Path

import pytest
import yaml
from rclpy.expand_topic_name import expand_topic_name
from sensor_msgs.msg import PointCloud2

from launch_stand_in import LaunchedNode, launch
from launched_pipeline import LAUNCH, PIPELINE_ARGUMENTS, STARTUP_S, Pipeline, finish, start_launched
from package_setup import captured_setup_kwargs
from ros_harness import ros_probe, spin_until
from stn_ros.core.package_files import share_directory

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'
NODE_MODULES = {
    'stn_node': 'stn_ros.ros.stn_node',
    'grasp_quality_node': 'stn_ros.ros.grasp_quality_node',
    'synthetic_camera': 'stn_ros.ros.synthetic_camera',
}
NODE_EXECUTABLES = {'stn_node', 'grasp_quality_node'}


def readme_launch_section() -> str:
    text = README.read_text()
    start = text.index('## grasp_quality_node and the launch file')
    return text[start : text.index('\n## ', start + 1)]


def declared_parameters(node: LaunchedNode) -> dict:
    return {spec.name: spec for spec in importlib.import_module(NODE_MODULES[node.executable]).PARAMETERS}


# --- what the launch file starts (executed with the stand-ins, no processes) --------------------------------


def test_the_arguments_the_readme_documents_are_declared_and_its_commands_launch():
    section = readme_launch_section()
    documented = set(re.findall(r'`(\w+)`', re.search(r'arguments: (.*?)\.\s', section, re.S).group(1)))
    assert {'depth_topic', 'device', 'use_synthetic_camera'} <= documented
    assert documented <= set(launch(LAUNCH).declared)
    commands = re.findall(r'ros2 launch stn_ros perception\.launch\.py((?:[^\n#]|\\\n)*)', section)
    assert len(commands) == 3, commands
    for command in commands:
        arguments = dict(re.findall(r'(\w+):=(\S+)', command))
        launched = launch(LAUNCH, **arguments)  # every argument is one the launch file declares
        camera = {'synthetic_camera'} if arguments.get('use_synthetic_camera') == 'true' else set()
        pipeline = {'perception_pipeline'} if arguments.get('single_process') == 'true' else NODE_EXECUTABLES
        assert {n.executable for n in launched.nodes} == pipeline | camera


def test_every_node_is_an_installed_executable_of_stn_ros_named_as_the_executable(monkeypatch):
    scripts = {s.split('=')[0].strip() for s in captured_setup_kwargs(monkeypatch)['entry_points']['console_scripts']}
    nodes = launch(LAUNCH, **PIPELINE_ARGUMENTS).nodes
    assert sorted(n.name for n in nodes) == ['grasp_quality_node', 'stn_node', 'synthetic_camera']
    for node in nodes:
        assert node.package == 'stn_ros' and node.executable in scripts, node
        assert node.name == node.executable and node.namespace == '/', node  # names users rely on


@pytest.mark.parametrize('base', [{}, {'single_process': 'true'}], ids=['two processes', 'single process'])
def test_every_argument_reaches_a_node(base):
    """Overriding any declared argument changes what is started (none is declared and then ignored)."""
    default = launch(LAUNCH, **base)
    for name, value in default.configurations.items():
        other = {'true': 'false', 'false': 'true'}.get(value, f'/elsewhere/{name}')
        assert launch(LAUNCH, **(base | {name: other})).nodes != default.nodes, f'launch argument {name!r} is unused'


@pytest.mark.parametrize('name', ['stn_node', 'grasp_quality_node', 'synthetic_camera'])
def test_parameter_files_and_inline_parameters_are_the_nodes_own(name, monkeypatch):
    node = launch(LAUNCH, **PIPELINE_ARGUMENTS).node(name)
    declared = declared_parameters(node)
    installed = {
        Path(f).name
        for d, files in captured_setup_kwargs(monkeypatch)['data_files']
        if d == 'share/stn_ros/config'
        for f in files
    }
    assert node.parameter_files, node
    for path in node.parameter_files:
        assert path.parent == share_directory() / 'config' and path.name in installed, path
        content = yaml.safe_load(path.read_text())
        assert list(content) in ([node.name], [f'{node.namespace.rstrip("/")}/{node.name}']), path
        unknown = set(content[list(content)[0]]['ros__parameters']) - set(declared)
        assert not unknown, f'{path.name} sets parameters {name} does not declare: {sorted(unknown)}'
    for parameter, value in node.inline_parameters.items():
        assert parameter in declared, f'{name} does not declare {parameter!r}'
        default = declared[parameter].default
        assert default is None or type(value) is type(default), (parameter, value)  # '' must stay a string


def node_scoped_rules(ros_arguments: list[str]) -> dict[str, dict]:
    """``-p <node>:<name>:=<value>`` rules of a command line, as ``{node: {name: value}}`` (values typed by YAML, as
    rcl types them)."""
    rules: dict[str, dict] = {}
    for flag, rule in zip(ros_arguments, ros_arguments[1:], strict=False):
        if flag == '-p':
            node, name, value = re.fullmatch(r'(\w+):([\w.]+):=(.*)', rule, re.S).groups()
            rules.setdefault(node, {})[name] = yaml.safe_load(value)
    return rules


@pytest.mark.parametrize(
    'arguments',
    [{}, {'device': 'cuda:0', 'stn_weights': '/w/stn.pt', 'gqcnn_weights': '/w/g.pt', 'target_frame': 'base_link'}],
)
def test_single_process_runs_both_nodes_with_the_two_process_files_values_and_remappings(arguments):
    two = launch(LAUNCH, **arguments)
    [pipeline] = launch(LAUNCH, single_process='true', **arguments).nodes
    assert (pipeline.package, pipeline.executable, pipeline.name) == ('stn_ros', 'perception_pipeline', None)
    assert not pipeline.parameters  # launch_ros puts parameters= after ros_arguments: the per-node values would lose
    args = pipeline.ros_arguments
    files = [Path(args[i + 1]) for i, a in enumerate(args) if a == '--params-file']
    assert files == [two.node(n).parameter_files[0] for n in ('stn_node', 'grasp_quality_node')]
    last_file = max(i for i, a in enumerate(args) if a == '--params-file')
    assert min(i for i, a in enumerate(args) if a == '-p') > last_file  # the per-node values win over the files
    rules = node_scoped_rules(args)
    assert rules == {n: two.node(n).inline_parameters for n in NODE_EXECUTABLES}, rules
    assert rules['grasp_quality_node']['target_frame'] == arguments.get('target_frame', '')
    assert set(pipeline.remappings) == {r for n in NODE_EXECUTABLES for r in two.node(n).remappings}
    for node, values in rules.items():
        declared = {spec.name for spec in importlib.import_module(NODE_MODULES[node]).PARAMETERS}
        assert set(values) <= declared, (node, values)


def test_the_gripper_arguments_default_to_config_gripper_yaml_and_reach_both_nodes_as_numbers():
    shipped = yaml.safe_load((ROOT / 'config' / 'gripper.yaml').read_text())['/**']['ros__parameters']['gripper']
    default = launch(LAUNCH)
    for name in ('opening', 'jaw_width', 'finger_depth'):
        assert default.declared[f'gripper_{name}'].default_value == str(shipped[name])
    given = {'gripper_opening': '0.07', 'gripper_jaw_width': '0.015', 'gripper_finger_depth': '0.025'}
    expected = {'gripper.opening': 0.07, 'gripper.jaw_width': 0.015, 'gripper.finger_depth': 0.025}
    two = launch(LAUNCH, **given)
    for node in NODE_EXECUTABLES:
        assert {k: v for k, v in two.node(node).inline_parameters.items() if k.startswith('gripper.')} == expected
    [pipeline] = launch(LAUNCH, single_process='true', **given).nodes
    rules = node_scoped_rules(pipeline.ros_arguments)
    for node in NODE_EXECUTABLES:
        assert {k: v for k, v in rules[node].items() if k.startswith('gripper.')} == expected  # floats, not '0.07'


# --- lifecycle:=true: the same nodes as launch_ros LifecycleNodes -----------------------------------------------


def test_lifecycle_runs_the_same_nodes_as_lifecycle_nodes_of_their_lifecycle_variant():
    plain = launch(LAUNCH, **PIPELINE_ARGUMENTS)
    managed = launch(LAUNCH, lifecycle='true', **PIPELINE_ARGUMENTS)
    assert sorted(n.name for n in managed.nodes) == sorted(n.name for n in plain.nodes)
    for node in managed.nodes:
        other = plain.node(node.name)
        if node.executable in NODE_EXECUTABLES:
            assert node.lifecycle and node.arguments == ['--lifecycle'], node
            assert node.namespace == '/', node  # launch_ros's LifecycleNode is given namespace='' (Kilted needs it)
            assert (node.parameters, node.remappings) == (other.parameters, other.remappings), node
        else:
            assert node == other  # synthetic_camera is no lifecycle node
    assert not any(n.lifecycle or n.arguments for n in plain.nodes)
    assert managed.shutdown is None and plain.shutdown is None


def test_lifecycle_with_single_process_stops_the_launch_with_the_reason():
    launched = launch(LAUNCH, lifecycle='true', single_process='true', **PIPELINE_ARGUMENTS)
    assert launched.nodes == [] and 'not supported' in launched.shutdown, launched


@pytest.mark.parametrize('name', sorted(NODE_EXECUTABLES))
def test_the_parameter_files_values_are_valid_for_the_declarations(name):
    """Every value of a shipped parameter file passes the node's own check of that parameter (type and range), the
    file's values together pass its cross-check, and a value's type is the declared default's (a number may be
    written 1 or 1.0)."""
    node = launch(LAUNCH, **PIPELINE_ARGUMENTS).node(name)
    module = importlib.import_module(NODE_MODULES[name])
    declared = declared_parameters(node)
    [path] = node.parameter_files
    values = yaml.safe_load(path.read_text())[name]['ros__parameters']
    checked = {spec.name: spec.check(spec.default) for spec in declared.values()}
    for parameter, value in values.items():
        spec = declared[parameter]
        checked[parameter] = spec.check(value)  # raises ValueError with the reason
        if spec.float_range is None and spec.default is not None:
            assert type(value) is type(spec.default), (parameter, value, spec.default)
    module.check_together(checked)


def test_a_lifecycle_launch_starts_unconfigured_nodes_that_give_grasps_once_activated(tmp_path):
    """Runs before the module's pipeline fixture starts the plain nodes (same names): file order."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    from ros_harness import call

    launched = launch(LAUNCH, lifecycle='true', **PIPELINE_ARGUMENTS)
    processes = start_launched(launched, tmp_path)
    try:
        with ros_probe('lifecycle_launch_probe') as probe:
            grasps = []
            probe.create_subscription(PointCloud2, '/grasp_quality_node/grasps', grasps.append, 10)
            for name in ('stn_node', 'grasp_quality_node'):
                response = call(probe, GetState, f'/{name}/get_state', GetState.Request())
                assert response.current_state.label == 'unconfigured', name
            assert not spin_until(probe, lambda: bool(grasps), 2.0)  # nothing before configure and activate
            for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
                for name in ('grasp_quality_node', 'stn_node'):
                    request = ChangeState.Request(transition=Transition(id=transition))
                    assert call(probe, ChangeState, f'/{name}/change_state', request).success, (name, transition)
            assert spin_until(probe, lambda: any(g.width * g.height > 0 for g in grasps), STARTUP_S), 'no grasps'
    finally:
        outputs = {name: finish(process) for name, process in processes.items()}
        for name, output in outputs.items():
            print(f'--- {name}\n{output}')
    assert not any('Traceback' in o for o in outputs.values())


# --- the pipeline it starts: real processes, checked over the graph -----------------------------------------


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
    launched = launch(LAUNCH, **PIPELINE_ARGUMENTS)
    processes = start_launched(launched, tmp_path_factory.mktemp('launch'))
    try:
        with ros_probe('launch_probe') as probe:
            grasp, grasps = launched.node('grasp_quality_node'), []
            probe.create_subscription(
                PointCloud2, expand_topic_name('~/grasps', grasp.name, grasp.namespace), grasps.append, 10
            )
            yield Pipeline(launched, processes, probe, grasps, time.monotonic() + STARTUP_S)
    finally:
        outputs = {name: finish(process) for name, process in processes.items()}
        for name, output in outputs.items():
            print(f'--- {name}\n{output}')
        assert not any('Traceback' in o for o in outputs.values())


def test_the_nodes_appear_under_their_launch_names(pipeline):
    expected = {(n.name, n.namespace) for n in pipeline.launched.nodes}

    def missing():
        return expected - set(pipeline.probe.get_node_names_and_namespaces())

    assert pipeline.wait(lambda: not missing()), f'not in the graph: {sorted(missing())}'


def test_every_remapping_target_is_a_topic_of_its_node(pipeline):
    missing = pipeline.missing_remapping_targets
    assert pipeline.wait(lambda: not missing()), f'remapped to topics the node never uses: {sorted(missing())}'


def test_grasp_quality_node_reads_its_rectified_inputs_from_stn_node(pipeline):
    grasp, stn = pipeline.launched.node('grasp_quality_node'), pipeline.launched.node('stn_node')
    inputs = {pipeline.resolve(grasp, target) for source, target in grasp.remappings if source.startswith('rectified/')}
    assert len(inputs) == 2, grasp.remappings

    def fed(topic):
        read = {r for r in pipeline.topics(grasp, 'sub') if r[0] == topic}  # (topic, type) pairs
        return bool(read) and read <= pipeline.topics(stn, 'pub')

    def unfed():
        return {t for t in inputs if not fed(t)}

    assert pipeline.wait(lambda: not unfed()), (
        f'inputs stn_node does not publish: {sorted(unfed())}; it publishes {sorted(pipeline.topics(stn, "pub"))}'
    )


def test_every_input_of_every_node_is_published_by_a_launched_node(pipeline):
    def unfed():
        published = set().union(*(pipeline.topics(n, 'pub') for n in pipeline.launched.nodes))
        return {(n.name, t) for n in pipeline.launched.nodes for t in pipeline.topics(n, 'sub') - published}

    # once the remapped inputs exist, the nodes have subscribed (an empty graph would pass vacuously)
    assert pipeline.wait(lambda: not pipeline.missing_remapping_targets() and not unfed()), (
        f'inputs nobody in the launch publishes: {sorted(unfed())}'
    )


def test_grasps_come_out_of_the_launched_pipeline(pipeline):
    assert pipeline.wait(lambda: any(g.width * g.height > 0 for g in pipeline.grasps)), (
        f'no grasps in {STARTUP_S} s ({len(pipeline.grasps)} empty clouds)'
    )
    assert 'quality' in {f.name for f in pipeline.grasps[-1].fields}
