"""grasp_quality_node's diagnostics over real topics, and internal errors of both nodes told apart from bad input."""

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from ros_harness import Consumer, NodeProcess, camera_qos, ros_probe, spin_until, stamped
from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.perception.transforms_record import build_record

pytestmark = pytest.mark.timeout(120)


def crop_pair(sec: int, crops: int = 2) -> tuple[Image, PointCloud2]:
    """What stn_node publishes for one frame: a 32FC1 tile of ``crops`` 32x32 crops and its record."""
    tile = np.full((32 * crops, 32), 0.7, np.float32)
    tile[:, 12:20] = 0.65  # a bar across each crop: something to grasp
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], crops, axis=0)
    record = build_record(homographies, np.zeros((crops, 4)), 2, np.tile([0, 0, 64, 64], (crops, 1)), (32, 32))
    image = stamped(tile, '32FC1', sec)
    return image, encode_pointcloud(record, header=image.header)


def test_diagnostics_count_each_frame_once_and_unpaired_messages_apart_from_drops():
    with ros_probe('grasp_diagnostics_probe') as probe:
        qos = camera_qos(ReliabilityPolicy.RELIABLE)
        qos.depth = 10
        tiles = probe.create_publisher(Image, '/gq/rectified/image', qos)
        records = probe.create_publisher(PointCloud2, '/gq/rectified/transforms', qos)
        node = NodeProcess(
            'grasp_quality_node',
            '-p',
            'device:=cpu',
            '-p',
            'pairing_buffer:=3',
            '-r',
            'rectified/image:=/gq/rectified/image',
            '-r',
            'rectified/transforms:=/gq/rectified/transforms',
            '-r',
            '__ns:=/gq',
            params_file=None,
        )
        consumer = Consumer(probe, '/gq/grasp_quality_node')  # for its /diagnostics
        grasps = []
        probe.create_subscription(PointCloud2, '/gq/grasp_quality_node/grasps', grasps.append, 50)
        try:
            assert spin_until(probe, lambda: tiles.get_subscription_count() and records.get_subscription_count(), 30)
            warm_up = []  # frames sent until the first grasps came back (discovery settling)

            def send_warm_up_frame():
                warm_up.append(len(warm_up))
                for publisher, msg in zip((tiles, records), crop_pair(1 + len(warm_up)), strict=True):
                    publisher.publish(msg)
                spin_until(probe, lambda: False, 0.1)

            assert spin_until(probe, lambda: bool(grasps), 20, step=send_warm_up_frame), node.stop()
            frames = 40
            for sec in range(1000, 1000 + frames):  # 20 Hz, both messages of each frame
                for publisher, msg in zip((tiles, records), crop_pair(sec), strict=True):
                    publisher.publish(msg)
                spin_until(probe, lambda: False, 0.05)
            assert spin_until(
                probe, lambda: len({g.header.stamp.sec for g in grasps if g.header.stamp.sec >= 1000}) == frames, 10
            )
            for sec in range(2000, 2008):  # tiles whose records never come: evicted from the pairing buffer
                tiles.publish(crop_pair(sec)[0])
                spin_until(probe, lambda: False, 0.05)
            spin_until(probe, lambda: False, 2.5)  # a diagnostics period after the last input
            values = consumer.latest_diagnostics('grasp_quality_node')
        finally:
            output = node.stop()
        assert 'Traceback' not in output
    assert int(values['frames received']) == len(warm_up) + frames + 8, values  # one per frame, not per message
    assert 10 <= float(values['input rate (Hz)']) <= 26, values  # about 20 Hz of frames, not 40 of messages
    assert values['frames dropped (latest wins)'] == '0', values
    assert int(values['unpaired dropped']) >= 8 - 3, values  # the buffer keeps the last 3
    assert values['bad inputs'] == '0' and values['internal errors'] == '0', values


@pytest.fixture
def in_process_ros():
    rclpy.init()
    try:
        yield
    finally:
        rclpy.shutdown()


def test_an_internal_error_of_the_grasp_node_is_counted_as_such_not_as_bad_input(in_process_ros, monkeypatch):
    from stn_ros.ros.grasp_quality_node import GraspQualityNode

    node = GraspQualityNode()
    try:

        def broken(*args, **kwargs):
            raise RuntimeError('injected fault in scoring')

        monkeypatch.setattr(node.scorer, 'score', broken)
        tile, record = crop_pair(5)
        node._on_tile(tile, {})
        node._on_record(record, {})  # the pair is complete: the worker scores it
        deadline = time.monotonic() + 10
        while node.health.internal_errors == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        values = node.health.report().values
    finally:
        node.stop()
        node.destroy_node()
    assert values['internal errors'] == '1' and values['bad inputs'] == '0', values


def test_an_internal_error_of_stn_node_is_counted_as_such_not_as_bad_input(in_process_ros, monkeypatch):
    from rclpy.parameter import Parameter

    from stn_ros.ros.stn_node import StnNode

    node = StnNode(parameter_overrides=[Parameter('crop_source', value='full_frame'), Parameter('device', value='cpu')])
    try:
        called = threading.Event()

        def broken(*args, **kwargs):
            called.set()
            raise RuntimeError('injected fault in the canonicalizer')

        monkeypatch.setattr(node.canonicalizer, 'process', broken)
        node._on_image(stamped(np.zeros((48, 64), np.uint8), 'mono8', 3), {})
        assert called.wait(10)
        time.sleep(0.2)  # the worker counts it right after the call
        values = node.health.report().values
    finally:
        node.stop()
        node.destroy_node()
    assert values['internal errors'] == '1' and values['bad inputs'] == '0', values


def test_grasp_node_makes_no_metric_grasps_from_an_invalid_camera_info(in_process_ros):
    from sensor_msgs.msg import CameraInfo

    from stn_ros.ros.grasp_quality_node import GraspQualityNode

    node = GraspQualityNode()
    try:
        info = CameraInfo(width=640, height=480)
        info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
        node._on_camera_info(info)
        assert node._camera is not None
        info.k[0] = float('nan')
        node._on_camera_info(info)  # the older, valid intrinsics are not used either
        values = node.health.report().values
    finally:
        node.stop()
        node.destroy_node()
    assert node._camera is None and values['bad input: camera_info'] == '1', values
