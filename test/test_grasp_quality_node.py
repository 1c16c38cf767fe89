"""grasp_quality_node's diagnostics and its best grasp per object over real topics, and internal errors of both
nodes told apart from bad input."""

import threading
import time

import numpy as np
import pytest
from rcl_interfaces.msg import ParameterType, ParameterValue
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from messages import crop_pair
from ros_harness import ROOT, Consumer, NodeProcess, camera_qos, ros_probe, set_parameter, spin_until, stamped
from stn_ros.bridge.pointcloud_codec import decode_pointcloud, encode_pointcloud
from stn_ros.perception.grasps.grasp_quality import in_tile_order
from stn_ros.perception.stn.transforms_record import build_record
from stn_ros.ros.grasp_quality_node import BLOCKED, NO_GRASP

pytestmark = pytest.mark.timeout(120)


def hypotheses_pair(sec: int, objects: int = 2, hypotheses: int = 3) -> tuple[Image, PointCloud2]:
    """What stn_node publishes with ``hypotheses_per_object`` > 1: each object's crops (bars of different
    widths, so their qualities differ), object-major, and their record with ``object_id`` and ``hypothesis``. Of the
    default 2 x 3 crops the second (object 0, hypothesis 1) is a bar 9 cm wide: too wide for the 8 cm gripper, so
    its jaws would land on it (blocked)."""
    count = objects * hypotheses
    crops = np.full((count, 32, 32), 0.7, np.float32)
    for index in range(count):
        width = 3 + 3 * ((index * 5) % count)
        crops[index, :, 16 - width // 2 : 16 + (width + 1) // 2] = 0.65
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], count, axis=0)
    record = build_record(
        homographies,
        np.zeros((count, 4)),
        2,
        np.tile([0, 0, 64, 64], (count, 1)),
        (32, 32),
        object_ids=np.repeat(np.arange(objects), hypotheses),
        hypotheses=np.tile(np.arange(hypotheses), objects),
        scores=np.tile(np.linspace(0.5, 0.1, hypotheses), objects),
    )
    image = stamped(crops.reshape(-1, 32), '32FC1', sec)
    return image, encode_pointcloud(record, header=image.header)


def grasp_node_with_inputs(probe, namespace: str, *params: str, params_file):
    """Publishers of a rectified tile and transforms record (keep-last 10, reliable) on ``/<namespace>/``, and a
    grasp_quality_node on the CPU in that namespace reading them with ``params`` (``name:=value``)."""
    qos = camera_qos(ReliabilityPolicy.RELIABLE)
    qos.depth = 10
    tiles = probe.create_publisher(Image, f'/{namespace}/rectified/image', qos)
    records = probe.create_publisher(PointCloud2, f'/{namespace}/rectified/transforms', qos)
    args = ['-p', 'device:=cpu'] + [a for p in params for a in ('-p', p)]
    node = NodeProcess(
        'grasp_quality_node',
        *args,
        '-r',
        f'rectified/image:=/{namespace}/rectified/image',
        '-r',
        f'rectified/transforms:=/{namespace}/rectified/transforms',
        '-r',
        f'__ns:=/{namespace}',
        params_file=params_file,
    )
    return tiles, records, node


def test_grasps_keep_each_objects_best_crop_or_every_crop_and_frames_without_a_grasp_and_blocked_crops_are_counted():
    with ros_probe('grasp_hypotheses_probe') as probe:
        # quality_threshold 1.0: nothing reaches it, every frame is one without a grasp
        tiles, records, node = grasp_node_with_inputs(
            probe, 'sr', 'quality_threshold:=1.0', params_file=ROOT / 'config' / 'grasp_quality_node.yaml'
        )
        consumer = Consumer(probe, '/sr/grasp_quality_node')  # for its /diagnostics
        grasps = {}
        probe.create_subscription(
            PointCloud2, '/sr/grasp_quality_node/grasps', lambda m: grasps.__setitem__(m.header.stamp.sec, m), 50
        )

        def grasps_of(sec: int) -> np.ndarray:
            def send():
                for publisher, msg in zip((tiles, records), hypotheses_pair(sec), strict=True):
                    publisher.publish(msg)
                spin_until(probe, lambda: False, 0.3)

            assert spin_until(probe, lambda: sec in grasps, 30, step=send), node.stop()
            return decode_pointcloud(grasps[sec])

        try:
            assert spin_until(probe, lambda: tiles.get_subscription_count() and records.get_subscription_count(), 30)
            best = grasps_of(10)
            on = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=True)
            assert set_parameter(probe, '/sr/grasp_quality_node', 'all_hypotheses', on).successful
            every = grasps_of(11)

            def every_frame_counted_without_a_grasp() -> bool:  # both frames (and resent ones) processed
                values = consumer.latest_diagnostics('grasp_quality_node')
                processed = values.get('frames processed')
                return int(values.get(NO_GRASP, 0)) >= 2 and values[NO_GRASP] == processed == values[BLOCKED]

            assert spin_until(probe, every_frame_counted_without_a_grasp, 10), str(consumer.latest_diagnostics('grasp'))
        finally:
            output = node.stop()
        assert 'Traceback' not in output
    for published in (best, every):  # ranked: best quality first, rank = the point's index
        np.testing.assert_array_equal(published['rank'], np.arange(len(published)))
        assert (np.diff(published['quality']) <= 0).all(), published['quality']
    every, best = in_tile_order(every), in_tile_order(best)
    crops = list(zip(every['object_id'].tolist(), every['hypothesis'].tolist(), strict=True))
    assert crops == [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)]  # every crop but the blocked one
    np.testing.assert_array_equal(best['object_id'], [0, 1])
    assert len(np.unique(every['quality'])) > 1, every['quality']  # the crops differ: the choice is a real one
    for object_id in (0, 1):
        own = every[every['object_id'] == object_id]
        mine = best[best['object_id'] == object_id]
        assert (mine['hypothesis'][0], mine['quality'][0]) == (
            own['hypothesis'][np.argmax(own['quality'])],
            own['quality'].max(),
        )
    assert (every['quality'] < 1.0).all()


def test_diagnostics_count_each_frame_once_and_unpaired_messages_apart_from_drops():
    with ros_probe('grasp_diagnostics_probe') as probe:
        tiles, records, node = grasp_node_with_inputs(probe, 'gq', 'pairing_buffer:=3', params_file=None)
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
    # every timed frame came back (above); only a warm-up frame may have been replaced while the first one was
    # scored (the first inference is the slow one)
    assert int(values['frames dropped (latest wins)']) <= len(warm_up) - 1, values
    assert int(values['unpaired dropped']) >= 8 - 3, values  # the buffer keeps the last 3
    assert values['bad inputs'] == '0' and values['internal errors'] == '0', values


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
