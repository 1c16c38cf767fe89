"""perception_pipeline: stn_node and grasp_quality_node in one process, over real topics (synthetic_camera in another
process), with the two nodes' own parameter files and topics."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.parameter import parameter_value_to_python
from sensor_msgs.msg import PointCloud2

from launch_stand_in import launch
from launched_pipeline import LAUNCH, PIPELINE_ARGUMENTS, STARTUP_S, Pipeline, finish, start_launched
from ros_harness import ROOT, NodeProcess, call, node_env, ros_probe, spin_until
from stn_ros.ros.perception_pipeline import EXECUTORS

try:
    from stn_ros_interfaces.srv import GetGrasps
except ImportError:  # not built (no cmake or compiler at set-up): the node runs without ~/get_grasps
    GetGrasps = None

pytestmark = pytest.mark.timeout(180)
CONFIG = ROOT / 'config'
CAMERA_REMAPS = ('-r', 'depth:=/pp_cam/depth', '-r', 'camera_info:=/pp_cam/camera_info', '-r', 'image:=/pp_cam/image')
PIPELINE_REMAPS = (
    '-r', 'image:=/pp_cam/depth', '-r', 'camera_info:=/pp_cam/camera_info',
    '-r', 'rectified/image:=/stn_node/rectified/image', '-r', 'rectified/transforms:=/stn_node/rectified/transforms',
)  # fmt: skip


def parameter_file(tmp_path: Path, node: str, **changes) -> Path:
    """The shipped ``config/<node>.yaml`` with ``changes``: values that are not the defaults, so that seeing them in
    the node proves the file reached it."""
    content = yaml.safe_load((CONFIG / f'{node}.yaml').read_text())
    content[node]['ros__parameters'].update(changes)
    path = tmp_path / f'{node}.yaml'
    path.write_text(yaml.safe_dump(content))
    return path


def parameters(probe: Node, node: str, names: list[str]) -> dict:
    """``names`` of the node ``node``, read through its parameter service."""
    client = probe.create_client(GetParameters, f'{node}/get_parameters')
    try:
        assert client.wait_for_service(timeout_sec=10), node
        future = client.call_async(GetParameters.Request(names=names))
        assert spin_until(probe, future.done, 10)
        return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values, strict=True)}
    finally:
        probe.destroy_client(client)


def topics(probe: Node, node: str, kind: str) -> set[str]:
    query = (
        probe.get_subscriber_names_and_types_by_node if kind == 'sub' else probe.get_publisher_names_and_types_by_node
    )
    return {topic for topic, _ in query(node, '/')}


@pytest.mark.parametrize('executor', sorted(EXECUTORS))
def test_one_process_gives_grasps_on_the_same_topics_with_each_node_its_parameters(tmp_path, executor):
    stn_file = parameter_file(tmp_path, 'stn_node', max_crops=5, hypotheses_per_object=2)
    grasp_file = parameter_file(tmp_path, 'grasp_quality_node', quality_threshold=0.25, all_hypotheses=True)
    camera = NodeProcess(
        'synthetic_camera', '-p', 'scene_period:=0.0', '-p', 'seed:=5', *CAMERA_REMAPS,
        params_file=CONFIG / 'synthetic_camera.yaml',
    )  # fmt: skip
    pipeline = NodeProcess(
        'perception_pipeline', '--', '--executor', executor, '--ros-args', '--params-file', str(stn_file),
        '--params-file', str(grasp_file),
        '-p', 'stn_node:device:=cpu', '-p', 'grasp_quality_node:device:=cpu', *PIPELINE_REMAPS, params_file=None,
    )  # fmt: skip
    try:
        with ros_probe('perception_pipeline_probe') as probe:
            grasps = []
            probe.create_subscription(PointCloud2, '/grasp_quality_node/grasps', grasps.append, 10)
            assert spin_until(probe, lambda: sum(g.width > 0 for g in grasps) >= 3 or not pipeline.alive(), 120), (
                pipeline.stop()
            )
            assert pipeline.alive(), pipeline.stop()
            # One process, the two nodes under their own names, on the topics of the two-process launch.
            # Node names reach the graph in a discovery message of their own, which may come after the first grasps.
            assert spin_until(probe, lambda: {'stn_node', 'grasp_quality_node'} <= set(probe.get_node_names()), 10), (
                probe.get_node_names()
            )
            # Each node's endpoints come in discovery messages of their own too, after its name.
            expected = {
                ('stn_node', 'sub'): {'/pp_cam/depth', '/pp_cam/camera_info'},
                ('stn_node', 'pub'): {
                    '/stn_node/rectified/image',
                    '/stn_node/rectified/transforms',
                    '/stn_node/debug/image',
                },
                ('grasp_quality_node', 'sub'): {
                    '/stn_node/rectified/image',
                    '/stn_node/rectified/transforms',
                    '/pp_cam/camera_info',
                },
                ('grasp_quality_node', 'pub'): {'/grasp_quality_node/grasps', '/grasp_quality_node/best_grasp'},
            }
            assert spin_until(probe, lambda: all(want <= topics(probe, *key) for key, want in expected.items()), 10), {
                key: topics(probe, *key) for key in expected
            }
            # Each node got its own file's values, and the node-scoped -p rules.
            stn = parameters(probe, 'stn_node', ['max_crops', 'hypotheses_per_object', 'device'])
            grasp = parameters(probe, 'grasp_quality_node', ['quality_threshold', 'all_hypotheses', 'device'])
            assert stn == {'max_crops': 5, 'hypotheses_per_object': 2, 'device': 'cpu'}, stn
            assert grasp == {'quality_threshold': 0.25, 'all_hypotheses': True, 'device': 'cpu'}, grasp
            # all_hypotheses: every crop of at most 5 objects x 2 hypotheses
            assert all(g.width <= 10 for g in grasps) and {f.name for f in grasps[-1].fields} >= {'quality', 'u', 'v'}
            # ~/get_grasps answers under this executor too, waiting for a newer frame while the nodes take frames
            if GetGrasps is not None:
                request = GetGrasps.Request(count=3, timeout=10.0)
                ranked = call(probe, GetGrasps, '/grasp_quality_node/get_grasps', request)
                assert ranked.success, ranked.message
                assert 1 <= len(ranked.grasps) <= 3
                assert [g.rank for g in ranked.grasps] == list(range(len(ranked.grasps)))
                assert all(a.quality >= b.quality for a, b in zip(ranked.grasps, ranked.grasps[1:], strict=False))
        # SIGTERM (what launch sends after SIGINT, and a process manager first) stops it cleanly too.
        pipeline.process.send_signal(signal.SIGTERM)
        assert pipeline.wait(timeout=20) == 0, pipeline.output
        assert 'Traceback' not in pipeline.output
    finally:
        outputs = [camera.stop(), pipeline.stop() if pipeline.alive() else pipeline.output]
        print(*outputs, sep='\n')
    assert not any('Traceback' in o for o in outputs)


BARE_REMAPS = ('-r', 'image:=/pp_cam/depth', '-r', 'camera_info:=/pp_cam/camera_info')  # the camera's, nothing else
OWN_REMAPS = ('-r', 'rectified/image:=/elsewhere/image', '-r', 'rectified/transforms:=/elsewhere/transforms')


def test_started_bare_the_two_nodes_are_connected_and_an_outside_subscriber_gets_grasps():
    """No remapping of rectified/*, no parameter file: grasp_quality_node reads stn_node's outputs, which makes the
    lazy stn_node subscribe to the camera, and grasps reach a subscriber in another process."""
    camera = NodeProcess(
        'synthetic_camera', '-p', 'scene_period:=0.0', '-p', 'seed:=5', *CAMERA_REMAPS,
        params_file=CONFIG / 'synthetic_camera.yaml',
    )  # fmt: skip
    pipeline = NodeProcess('perception_pipeline', *BARE_REMAPS, params_file=None)
    try:
        with ros_probe('bare_pipeline_probe') as probe:
            grasps: list[PointCloud2] = []
            probe.create_subscription(PointCloud2, '/grasp_quality_node/grasps', grasps.append, 10)
            assert spin_until(probe, lambda: sum(g.width > 0 for g in grasps) >= 3 or not pipeline.alive(), 120), (
                f'{len(grasps)} grasp clouds, {sum(g.width > 0 for g in grasps)} with grasps\n{pipeline.stop()}'
            )
            assert pipeline.alive(), pipeline.stop()
            wired = {'/stn_node/rectified/image', '/stn_node/rectified/transforms'}
            assert spin_until(  # the lazy stn_node reads the camera (endpoints are discovered after the grasps)
                probe,
                lambda: (
                    wired <= topics(probe, 'grasp_quality_node', 'sub')
                    and '/pp_cam/depth' in topics(probe, 'stn_node', 'sub')
                ),
                10,
            ), (topics(probe, 'grasp_quality_node', 'sub'), topics(probe, 'stn_node', 'sub'))
            assert {f.name for f in grasps[-1].fields} >= {'quality', 'u', 'v', 'x', 'y', 'z'}
    finally:
        outputs = [camera.stop(), pipeline.stop()]
        print(*outputs, sep='\n')
    assert not any('Traceback' in o for o in outputs)


def test_a_remapping_of_the_users_own_wins_over_the_built_in_one():
    pipeline = NodeProcess('perception_pipeline', *BARE_REMAPS, *OWN_REMAPS, params_file=None)
    try:
        with ros_probe('remapped_pipeline_probe') as probe:
            wanted = {'/elsewhere/image', '/elsewhere/transforms'}

            def seen(node: str, kind: str) -> set[str]:  # empty until the probe has discovered the node
                known = node in {n for n, _ in probe.get_node_names_and_namespaces()}
                return topics(probe, node, kind) if known else set()

            assert spin_until(probe, lambda: wanted <= seen('grasp_quality_node', 'sub') or not pipeline.alive(), 60), (
                pipeline.stop()
            )
            assert not {t for t in seen('grasp_quality_node', 'sub') if t.startswith('/stn_node/')}
            # Nobody listens to stn_node's outputs now, so the lazy node stays off the camera.
            assert spin_until(probe, lambda: '/stn_node/rectified/image' in seen('stn_node', 'pub'), 20)
            assert '/pp_cam/depth' not in seen('stn_node', 'sub')
    finally:
        output = pipeline.stop()
        print(output)
    assert 'Traceback' not in output


def test_a_node_that_cannot_start_is_named_in_one_line():
    pipeline = NodeProcess(
        'perception_pipeline', '--params-file', str(CONFIG / 'stn_node.yaml'),
        '--params-file', str(CONFIG / 'grasp_quality_node.yaml'),
        '-p', 'grasp_quality_node:weights:=/nonexistent/gqcnn.pt', params_file=None,
    )  # fmt: skip
    assert pipeline.wait(timeout=60) == 1, pipeline.output
    assert 'perception_pipeline: cannot start: grasp_quality_node: weights file /nonexistent' in pipeline.output
    assert 'Traceback' not in pipeline.output


# --- launch/perception.launch.py single_process:=true: what it starts, started as launch_ros would start it ---


def test_the_single_process_launch_gives_grasps_from_both_nodes_on_the_same_topics(tmp_path):
    launched = launch(LAUNCH, single_process='true', **PIPELINE_ARGUMENTS)
    two = launch(LAUNCH, **PIPELINE_ARGUMENTS)
    processes = start_launched(launched, tmp_path)
    assert sorted(processes) == ['perception_pipeline', 'synthetic_camera']
    try:
        with ros_probe('single_process_launch_probe') as probe:
            grasps: list[PointCloud2] = []
            probe.create_subscription(PointCloud2, '/grasp_quality_node/grasps', grasps.append, 10)
            view = Pipeline(two, processes, probe, grasps, time.monotonic() + STARTUP_S)  # the two-process names

            def grasped() -> bool:
                return any(g.width * g.height > 0 for g in grasps)

            assert view.wait(grasped), f'no grasps in {STARTUP_S} s ({len(grasps)} empty clouds)'
            missing = view.missing_remapping_targets  # every remapping of the two-process launch is in use
            assert view.wait(lambda: not missing()), f'remapped to topics no node uses: {sorted(missing())}'
            names = set(probe.get_node_names_and_namespaces())
            assert {(n.name, n.namespace) for n in two.nodes} <= names  # the nodes of the two-process launch
            stn, grasp = two.node('stn_node'), two.node('grasp_quality_node')
            fed = {t for t in view.topics(grasp, 'sub') if t[0].startswith('/stn_node/')}
            assert len(fed) == 2 and fed <= view.topics(stn, 'pub'), fed  # the tile and the record, from stn_node
            assert {view.resolve(stn, target) for _, target in stn.remappings} <= {
                t for t, _ in view.topics(stn, 'sub')
            }
    finally:
        outputs = {name: finish(process) for name, process in processes.items()}
        for name, output in outputs.items():
            print(f'--- {name}\n{output}')
    assert not any('Traceback' in o for o in outputs.values())


def test_a_signal_never_raises_keyboardinterrupt_in_a_node_process():
    """rclpy's handlers stop the spin on Ctrl-C and SIGTERM, then call the Python handler they replaced; a
    KeyboardInterrupt from it could land in a finalizer and print a traceback (seen under a frame flood). Checked in
    a process of its own, whose handlers the node runtime sets."""
    script = (
        'import signal\n'
        'from stn_ros.ros.node_runtime import run_nodes\n'
        'from stn_ros.ros.parameters import StartupError\n'
        'def factory():\n'
        '    for signum in (signal.SIGINT, signal.SIGTERM):\n'
        '        signal.getsignal(signum)(signum, None)  # what rclpy chains to: must not raise\n'
        '    print("handlers quiet")\n'
        '    raise StartupError("done")\n'
        'raise SystemExit(run_nodes([factory], "probe", []))\n'
    )
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60, env=node_env())
    assert result.returncode == 1 and 'handlers quiet' in result.stdout, result.stderr
    assert 'probe: cannot start: done' in result.stderr and 'Traceback' not in result.stderr
