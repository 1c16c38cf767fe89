"""The benchmarks' hand-written OpenCV node (benchmarks/opencv_alignment_node.py): a real process over real topics,
and the settings it shares with stn_node."""

import sys

import cv2
import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ros_harness import (
    ROOT,
    Consumer,
    NodeProcess,
    camera_qos,
    publish_and_collect,
    ros_probe,
    spin_until,
    stamp_key,
    stamped,
)
from stn_ros.bridge.image_codec import decode_depth_m, decode_image
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.perception.stn.transforms_record import parse_record

sys.path.insert(0, str(ROOT / 'benchmarks'))
from bench_frames import camera_for, depth_frame_mm  # noqa: E402
from opencv_alignment_node import CROP_SIDE_M, SIMILARITY, proposal_config_for  # noqa: E402
from topic_endpoints import camera_info  # noqa: E402

SCRIPT = ROOT / 'benchmarks' / 'opencv_alignment_node.py'
OBJECTS = 4


def test_the_opencv_node_uses_stn_nodes_proposal_settings_and_crop_width():
    from stn_ros.perception.stn.canonicalizer import load_model
    from stn_ros.perception.stn.steps import proposal_config
    from stn_ros.ros.stn_parameters import PARAMETERS

    defaults = {spec.name: spec.default for spec in PARAMETERS}
    for width in (640, 1280, 1920):
        assert proposal_config_for(width) == proposal_config(defaults, width)
    assert load_model('').roi_side_m == CROP_SIDE_M


@pytest.mark.timeout(60)
def test_the_opencv_node_answers_each_frame_with_its_stamp_over_real_topics():
    with ros_probe('opencv_node_probe') as probe:
        images = probe.create_publisher(Image, '/camera/depth', camera_qos(ReliabilityPolicy.RELIABLE))
        infos = probe.create_publisher(CameraInfo, '/camera/camera_info', camera_qos(ReliabilityPolicy.RELIABLE))
        consumer = Consumer(probe, '/opencv_alignment_node')
        node = NodeProcess(
            'opencv_alignment_node', '-r', 'image:=/camera/depth', '-r', 'camera_info:=/camera/camera_info',
            params_file=None, command=(sys.executable, str(SCRIPT)),
        )  # fmt: skip
        try:
            connected = lambda: images.get_subscription_count() > 0 and infos.get_subscription_count() > 0  # noqa: E731
            assert spin_until(probe, connected, 20), node.stop()
            camera = camera_for(640, 480)
            # camera_info is read best-effort, keep last 1, and the node answers a frame without it (xyz NaN): send
            # both until a frame comes back metric, so the node has the intrinsics before the frames checked below
            warm_up = stamped(depth_frame_mm(OBJECTS, 99), '16UC1', sec=99)
            key = stamp_key(warm_up)

            def send_warm_up():
                infos.publish(camera_info(warm_up.header))
                images.publish(warm_up)
                spin_until(probe, lambda: False, 0.2)

            def metric() -> bool:
                return (
                    key in consumer.records
                    and np.isfinite(parse_record(decode_pointcloud(consumer.records[key])).xyz).all()
                )

            assert spin_until(probe, metric, 20, step=send_warm_up), node.stop()
            for seed in range(3):
                msg = stamped(depth_frame_mm(OBJECTS, seed), '16UC1', sec=100 + seed)
                for _ in range(3):  # camera_info is read best-effort, keep last 1
                    infos.publish(camera_info(msg.header))
                    spin_until(probe, lambda: False, 0.05)
                tile, cloud = publish_and_collect(probe, images, consumer, msg)
                assert tile.header == cloud.header == msg.header
                record = parse_record(decode_pointcloud(cloud))
                assert len(record.homographies) == OBJECTS and (record.family == SIMILARITY).all()
                assert (tile.encoding, tile.height, tile.width) == ('32FC1', OBJECTS * 32, 32)
                # metric: the crop centre's camera-frame point, and crops CROP_SIDE_M wide at its depth
                assert np.isfinite(record.xyz).all() and ((record.xyz[:, 2] > 0.6) & (record.xyz[:, 2] < 0.8)).all()
                widths_px = 32 * np.sqrt(np.abs(np.linalg.det(record.homographies[:, :2, :2])))
                np.testing.assert_allclose(widths_px, CROP_SIDE_M * camera.fx / record.xyz[:, 2], rtol=1e-4)
                # each H reproduces its crop from the source, as the transforms record promises
                source = np.nan_to_num(decode_depth_m(msg))
                crops = decode_image(tile).reshape(OBJECTS, 32, 32)
                for crop, h in zip(crops, record.homographies, strict=True):
                    again = cv2.warpPerspective(source, h, (32, 32), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
                    finite = np.isfinite(crop)
                    assert finite.mean() > 0.5
                    np.testing.assert_allclose(crop[finite], again[finite], atol=1e-4)
        finally:
            output = node.stop()
        assert 'Traceback' not in output, output
