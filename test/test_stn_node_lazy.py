"""stn_node is lazy as image_pipeline's nodes are (it reads the camera only while someone listens to an output) and its
outputs' QoS can be overridden by parameters: one node process, this test process as camera and listeners."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterType, ParameterValue
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ros_harness import NodeProcess, camera_qos, ros_probe, set_parameter, spin_until, stamped
from stn_ros.ros.health import ERROR, OK, WARN, NodeHealth
from stn_ros.ros.lazy_subscription import ACTIVE_LISTENED, ACTIVE_NOT_LAZY, IDLE
from stn_ros.ros.stn_node import CAMERA_SUBSCRIPTION

pytestmark = pytest.mark.timeout(150)

NS = '/lazy'
IMAGE, INFO = '/lazy_cam/image', '/lazy_cam/camera_info'
TILE, RECORD = f'{NS}/stn_node/rectified/image', f'{NS}/stn_node/rectified/transforms'
STATUS = f'{NS}/stn_node: canonicalizer'


def test_idle_is_ok_and_the_idle_span_is_no_input_gap():
    health = NodeHealth(stale_after_s=1.0)
    health.on_input(now=0.0)
    health.set_idle('idle: no one listens', now=0.5)
    report = health.report(now=10.0)  # silent for 10 s, but nobody asked for input
    assert (report.level, report.message) == (OK, 'idle: no one listens')
    health.set_idle(None, now=10.0)  # subscribed again: input is awaited from now
    health.on_input(now=10.5)
    assert health.gaps == 0 and health.report(now=10.6).level == OK
    assert health.report(now=12.0).level == WARN  # subscribed and silent for longer than stale_after_s: a warning
    health.set_idle('idle', now=12.0)
    health.on_internal_error()
    assert health.report(now=12.1).level == ERROR  # internal errors are errors, idle or not


class LazyNode:
    """The node under test (full-frame crops, CPU, its tile published best-effort by a QoS override parameter), the
    camera publishers and the node's diagnostics, seen from the probe."""

    def __init__(self, probe):
        self.probe = probe
        self.images = probe.create_publisher(Image, IMAGE, camera_qos(ReliabilityPolicy.RELIABLE))
        self.infos = probe.create_publisher(CameraInfo, INFO, camera_qos(ReliabilityPolicy.RELIABLE))
        self.statuses = []
        probe.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.process = NodeProcess(
            'stn_node', '-p', 'crop_source:=full_frame', '-p', 'device:=cpu', '-p', 'diagnostics_period:=0.2',
            '-r', f'image:={IMAGE}', '-r', f'camera_info:={INFO}', '-r', f'__ns:={NS}',
            '-p', f'qos_overrides.{TILE}.publisher.reliability:=best_effort',
            '-p', f'qos_overrides.{TILE}.publisher.depth:=2',
        )  # fmt: skip

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.statuses += [s for s in msg.status if s.name == STATUS]

    def camera_readers(self) -> tuple[int, int]:
        """How many subscriptions the graph shows on the camera's image and camera_info topics."""
        return self.probe.count_subscribers(IMAGE), self.probe.count_subscribers(INFO)

    def says(self, state: str, timeout: float = 15.0) -> bool:
        """Spin until a diagnostics message after this call says ``state`` for the camera subscription."""
        seen = len(self.statuses)

        def said() -> bool:
            return any(
                {kv.key: kv.value for kv in s.values}.get(CAMERA_SUBSCRIPTION) == state for s in self.statuses[seen:]
            )

        return spin_until(self.probe, said, timeout)


@pytest.fixture(scope='module')
def lazy_node():
    with ros_probe('lazy_probe') as probe:
        node = LazyNode(probe)
        try:
            assert spin_until(probe, lambda: bool(node.statuses), 60), node.process.stop()  # up and reporting
            yield node
        finally:
            output = node.process.stop()
            print(output)
        assert 'Traceback' not in output


def test_nobody_listening_means_no_camera_subscription_and_an_idle_ok_in_diagnostics(lazy_node):
    assert lazy_node.says(IDLE)
    assert lazy_node.camera_readers() == (0, 0)
    status = lazy_node.statuses[-1]
    assert status.level == bytes([0]) and status.message.startswith('idle: no one listens'), status


def test_a_listener_brings_the_camera_subscription_and_its_leaving_ends_it(lazy_node):
    probe, records = lazy_node.probe, []
    assert lazy_node.says(IDLE)
    listener = probe.create_subscription(PointCloud2, RECORD, records.append, 10)
    try:
        assert spin_until(probe, lambda: lazy_node.camera_readers() == (1, 1), 15), lazy_node.camera_readers()
        assert spin_until(probe, lambda: lazy_node.images.get_subscription_count() == 1, 10)
        # The first frame after the subscription appears is not lost (a reliable camera is read reliably).
        msg = stamped(np.full((48, 64), 100, np.uint8), 'mono8', sec=11)
        lazy_node.images.publish(msg)
        assert spin_until(probe, lambda: any(r.header.stamp == msg.header.stamp for r in records), 15)
        assert lazy_node.says(ACTIVE_LISTENED)
    finally:
        probe.destroy_subscription(listener)
    assert spin_until(probe, lambda: lazy_node.camera_readers() == (0, 0), 15), lazy_node.camera_readers()
    assert lazy_node.says(IDLE)


def test_lazy_false_reads_the_camera_with_nobody_listening(lazy_node):
    probe = lazy_node.probe
    assert lazy_node.says(IDLE)
    off = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=False)
    assert set_parameter(probe, f'{NS}/stn_node', 'lazy', off).successful
    try:
        assert spin_until(probe, lambda: lazy_node.camera_readers() == (1, 1), 15), lazy_node.camera_readers()
        assert lazy_node.says(ACTIVE_NOT_LAZY)
    finally:
        on = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=True)
        assert set_parameter(probe, f'{NS}/stn_node', 'lazy', on).successful
    assert spin_until(probe, lambda: lazy_node.camera_readers() == (0, 0), 15), lazy_node.camera_readers()


def test_a_publisher_qos_override_sets_what_the_output_offers_and_who_can_listen(lazy_node):
    probe = lazy_node.probe
    offered = lambda topic: [i.qos_profile.reliability for i in probe.get_publishers_info_by_topic(topic)]  # noqa: E731
    assert spin_until(probe, lambda: offered(TILE) == [ReliabilityPolicy.BEST_EFFORT], 10), offered(TILE)
    assert offered(RECORD) == [ReliabilityPolicy.RELIABLE]  # not overridden: the default
    # A reliable reader cannot match a best-effort writer: it gets nothing, so it is no listener.
    assert lazy_node.says(IDLE)
    tiles = []
    reliable = probe.create_subscription(Image, TILE, tiles.append, QoSProfile(depth=5))
    try:
        spin_until(probe, lambda: False, 2.0)  # ten diagnostics periods
        assert lazy_node.camera_readers() == (0, 0) and lazy_node.says(IDLE)
    finally:
        probe.destroy_subscription(reliable)
    best_effort = probe.create_subscription(
        Image, TILE, tiles.append, QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    )
    try:
        assert spin_until(probe, lambda: lazy_node.camera_readers() == (1, 1), 15), lazy_node.camera_readers()
        msg = stamped(np.full((48, 64), 50, np.uint8), 'mono8', sec=21)
        assert spin_until(
            probe,
            lambda: any(t.header.stamp == msg.header.stamp for t in tiles),
            15,
            step=lambda: lazy_node.images.publish(msg),
        )
    finally:
        probe.destroy_subscription(best_effort)
    assert spin_until(probe, lambda: lazy_node.camera_readers() == (0, 0), 15)
