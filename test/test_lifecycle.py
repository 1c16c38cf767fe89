"""The lifecycle variants (``--lifecycle``) of stn_node and grasp_quality_node, driven through their lifecycle
services over real topics: separate node processes, this test process as camera, consumer and lifecycle manager."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from ros_harness import ROOT, Consumer, NodeProcess, call, camera_qos, ros_probe, spin_until, stamp_key, stamped

pytestmark = pytest.mark.timeout(240)

ROIS = [8, 6, 40, 40, 60, 20, 30, 50]
QUIET_S = 2.0  # how long a node that must not publish is watched
GET_GRASPS = '/grasp_quality_node/get_grasps'
try:
    from stn_ros_interfaces.srv import GetGrasps
except ImportError:  # not built (no cmake or compiler at set-up): the node runs without ~/get_grasps
    GetGrasps = None


@pytest.fixture(scope='module')
def probe():
    with ros_probe('lifecycle_test_probe') as node:
        yield node


def state(probe: Node, node: str) -> str:
    return call(probe, GetState, f'/{node}/get_state', GetState.Request()).current_state.label


def change(probe: Node, node: str, transition: int) -> ChangeState.Response:
    return call(probe, ChangeState, f'/{node}/change_state', ChangeState.Request(transition=Transition(id=transition)))


def frame(sec: int) -> Image:
    ys, xs = np.mgrid[0:96, 0:128]
    depth = (700 + 200 * np.sin(xs / 9.0) * np.cos(ys / 7.0)).astype(np.uint16)  # millimetres
    return stamped(depth, '16UC1', sec)


class Pipeline:
    """The two lifecycle node processes, a camera publisher and consumers of both nodes' outputs."""

    def __init__(self, probe: Node):
        self.probe = probe
        self.camera = probe.create_publisher(Image, '/lc/depth', camera_qos(ReliabilityPolicy.RELIABLE))
        self.stn = NodeProcess(
            'stn_node', '-p', 'device:=cpu', '-p', 'crop_source:=fixed_rois', '-p', f'rois:={ROIS}',
            '-r', 'image:=/lc/depth', '-r', 'camera_info:=/lc/camera_info', arguments=('--lifecycle',),
        )  # fmt: skip
        self.grasp = NodeProcess(
            'grasp_quality_node', '-p', 'device:=cpu', '-r', 'rectified/image:=/stn_node/rectified/image',
            '-r', 'rectified/transforms:=/stn_node/rectified/transforms', '-r', 'camera_info:=/lc/camera_info',
            params_file=ROOT / 'config' / 'grasp_quality_node.yaml', arguments=('--lifecycle',),
        )  # fmt: skip
        self.consumer = Consumer(probe, '/stn_node')
        self.grasps: dict[tuple[int, int], PointCloud2] = {}
        probe.create_subscription(
            PointCloud2, '/grasp_quality_node/grasps', lambda m: self.grasps.__setitem__(stamp_key(m), m), 10
        )

    def stop(self) -> dict[str, str]:
        return {'stn_node': self.stn.stop(), 'grasp_quality_node': self.grasp.stop()}

    def reading_camera(self) -> bool:
        return self.camera.get_subscription_count() > 0

    def outputs_for(self, msg: Image, timeout: float) -> bool:
        """Publish ``msg`` every 0.3 s until its tile, record and grasps all arrive (True) or ``timeout`` passes."""
        key, last = stamp_key(msg), [0.0]

        def republish():
            if time.monotonic() - last[0] > 0.3:
                self.camera.publish(msg)
                last[0] = time.monotonic()

        return spin_until(self.probe, lambda: self.consumer.has(key) and key in self.grasps, timeout, step=republish)

    def nothing_for(self, msg: Image) -> bool:
        """Publish ``msg`` for QUIET_S seconds: True when no output of either node came for it."""
        key = stamp_key(msg)
        self.outputs_for(msg, QUIET_S)
        return key not in self.consumer.tiles and key not in self.consumer.records and key not in self.grasps


@pytest.fixture(scope='module')
def pipeline(probe):
    pipeline = Pipeline(probe)
    try:
        yield pipeline
    finally:
        outputs = pipeline.stop()
        for name, output in outputs.items():
            print(f'--- {name}\n{output}')
        assert not any('Traceback' in output for output in outputs.values()), outputs


NODES = ('stn_node', 'grasp_quality_node')


def test_the_nodes_start_unconfigured_and_read_nothing(probe, pipeline):
    assert [state(probe, n) for n in NODES] == ['unconfigured', 'unconfigured']
    assert not pipeline.reading_camera()


def test_configure_makes_them_inactive_and_an_inactive_node_publishes_nothing(probe, pipeline):
    for node in NODES:
        assert change(probe, node, Transition.TRANSITION_CONFIGURE).success, node
    assert [state(probe, n) for n in NODES] == ['inactive', 'inactive']
    assert pipeline.nothing_for(frame(1))
    assert not pipeline.reading_camera()


def test_activate_makes_the_frames_give_crops_and_grasps(probe, pipeline):
    for node in ('grasp_quality_node', 'stn_node'):  # consumer first, as a lifecycle manager would
        assert change(probe, node, Transition.TRANSITION_ACTIVATE).success, node
    assert [state(probe, n) for n in NODES] == ['active', 'active']
    assert pipeline.outputs_for(frame(2), 30), 'no ~/rectified/* and ~/grasps for a frame while active'
    tile = pipeline.consumer.tiles[stamp_key(frame(2))]
    assert tile.height > 0 and tile.header.stamp == frame(2).header.stamp
    if GetGrasps is not None:  # ~/get_grasps answers with the latest frame while active
        latest = call(probe, GetGrasps, GET_GRASPS, GetGrasps.Request(count=0, timeout=0.0))
        assert latest.success and latest.header.stamp == frame(2).header.stamp, latest.message


def test_deactivate_stops_the_outputs_and_the_camera_subscription(probe, pipeline):
    waiting = None
    if GetGrasps is not None:  # a request waiting for a newer frame when the node is deactivated
        client = probe.create_client(GetGrasps, GET_GRASPS)
        spin_until(probe, lambda: False, 1.0)  # the frames still in flight from the last test are scored first
        waiting = client.call_async(GetGrasps.Request(count=0, timeout=60.0))
    for node in NODES:
        assert change(probe, node, Transition.TRANSITION_DEACTIVATE).success, node
    assert [state(probe, n) for n in NODES] == ['inactive', 'inactive']
    if waiting is not None:  # ... answers at once that no frame will come; and so does a request to an inactive node
        assert spin_until(probe, waiting.done, 10), 'a waiting request outlived deactivate'
        assert not waiting.result().success and 'stopped scoring' in waiting.result().message
        idle = call(probe, GetGrasps, GET_GRASPS, GetGrasps.Request(count=0, timeout=0.0))
        assert not idle.success and 'not active' in idle.message, idle.message
        probe.destroy_client(client)
    assert spin_until(probe, lambda: not pipeline.reading_camera(), 10), 'stn_node still reads the camera'
    assert pipeline.nothing_for(frame(3))


def test_reactivate_then_cleanup_and_shutdown(probe, pipeline):
    assert change(probe, 'stn_node', Transition.TRANSITION_ACTIVATE).success
    assert change(probe, 'grasp_quality_node', Transition.TRANSITION_ACTIVATE).success
    assert pipeline.outputs_for(frame(4), 30), 'no outputs after a second activate'
    for node in NODES:
        assert change(probe, node, Transition.TRANSITION_DEACTIVATE).success, node
        assert change(probe, node, Transition.TRANSITION_CLEANUP).success, node
    assert [state(probe, n) for n in NODES] == ['unconfigured', 'unconfigured']
    if GetGrasps is not None:  # the service stays (as the parameters do) and says why there is no answer
        unconfigured = call(probe, GetGrasps, GET_GRASPS, GetGrasps.Request(count=0, timeout=0.0))
        assert not unconfigured.success and 'not active' in unconfigured.message, unconfigured.message
    assert change(probe, 'stn_node', Transition.TRANSITION_CONFIGURE).success  # weights load again
    assert change(probe, 'stn_node', Transition.TRANSITION_INACTIVE_SHUTDOWN).success
    assert change(probe, 'grasp_quality_node', Transition.TRANSITION_UNCONFIGURED_SHUTDOWN).success
    assert [state(probe, n) for n in NODES] == ['finalized', 'finalized']
    outputs = pipeline.stop()
    assert pipeline.stn.process.returncode == 0 and pipeline.grasp.process.returncode == 0, outputs
    assert 'model released' in outputs['stn_node'] and 'shut down' in outputs['grasp_quality_node'], outputs


@pytest.mark.parametrize('node', NODES)
def test_bad_weights_fail_configure_with_the_reason_and_the_node_stays_unconfigured(probe, node, tmp_path):
    weights = tmp_path / 'broken.pt'
    weights.write_bytes(b'not a checkpoint')
    params = ROOT / 'config' / f'{node}.yaml'
    process = NodeProcess(
        node, '-p', 'device:=cpu', '-p', f'weights:={weights}', params_file=params, arguments=('--lifecycle',)
    )
    try:
        assert not change(probe, node, Transition.TRANSITION_CONFIGURE).success
        assert state(probe, node) == 'unconfigured'
        assert not change(probe, node, Transition.TRANSITION_ACTIVATE).success  # no such transition from there
        assert not change(probe, node, Transition.TRANSITION_CONFIGURE).success  # a retry fails the same way
        assert process.alive()
    finally:
        output = process.stop()
    assert 'configure failed' in output and str(weights) in output, output
    assert 'Traceback' not in output and process.process.returncode == 0, output
