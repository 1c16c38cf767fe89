"""``~/get_grasps`` over real ROS 2: grasp_quality_node in its own process, this test process its camera side (tile,
transforms record, camera_info) and the service's client. The answers are ``~/grasps`` of the same frame, ranked best
first, with poses in the target frame; ``timeout`` waits for a frame newer than the request while the node keeps
taking frames (the executor is not blocked), and ends with ``success`` false when none comes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from d435_camera import camera_info as d435_camera_info
from ros_harness import ROOT, NodeProcess, camera_qos, ros_probe, spin_until, stamped
from stn_ros.bridge.pointcloud_codec import decode_pointcloud, encode_pointcloud
from stn_ros.perception.stn.transforms_record import build_record

NOT_BUILT = 'stn_ros_interfaces is not built (scripts/setup_venv.sh builds it where cmake and a C compiler are)'
GetGrasps = pytest.importorskip('stn_ros_interfaces.srv', reason=NOT_BUILT).GetGrasps

pytestmark = pytest.mark.timeout(180)

NS = 'gsrv'
SERVICE = f'/{NS}/grasp_quality_node/get_grasps'
OBJECTS, HYPOTHESES = 3, 2
CAMERA_TO_TARGET = [0.2, -0.05, 0.6, 0.9238795325112867, -0.3826834323650898, 0.0, 0.0]


def frame(sec: int) -> tuple[Image, PointCloud2]:
    """stn_node's output for one frame: 3 objects of 2 hypotheses each, object-major (tile order), bars of different
    widths (so qualities differ) at their own places and angles in a 640x480 source."""
    count = OBJECTS * HYPOTHESES
    tile = np.full((count, 32, 32), 0.7, np.float32)
    homographies = np.zeros((count, 3, 3))
    middle = 15.5
    for index in range(count):
        width = 3 + 2 * ((index * 5) % count)  # 1.5 to 6.5 cm: every bar fits the 8 cm gripper
        tile[index, :, 16 - width // 2 : 16 + (width + 1) // 2] = 0.65
        angle, (u, v) = (0.3, -0.8, 1.2, 0.0)[index % 4], (150 + 70 * index, 120 + 40 * index)
        c, s = 2 * np.cos(angle), 2 * np.sin(angle)
        homographies[index] = [[c, -s, u - middle * (c - s)], [s, c, v - middle * (s + c)], [0, 0, 1]]
    record = build_record(
        homographies,
        np.zeros((count, 4)),
        2,
        np.tile([0, 0, 64, 64], (count, 1)),
        (32, 32),
        object_ids=np.repeat(np.arange(OBJECTS), HYPOTHESES),
        hypotheses=np.tile(np.arange(HYPOTHESES), OBJECTS),
    )
    image = stamped(tile.reshape(-1, 32), '32FC1', sec)
    return image, encode_pointcloud(record, header=image.header)


class Client:
    """The service's client in this process, with the camera side's publishers and a ~/grasps subscriber."""

    def __init__(self, probe):
        self.probe = probe
        qos = camera_qos(ReliabilityPolicy.RELIABLE)
        qos.depth = 10
        self.tiles = probe.create_publisher(Image, f'/{NS}/rectified/image', qos)
        self.records = probe.create_publisher(PointCloud2, f'/{NS}/rectified/transforms', qos)
        self.info = probe.create_publisher(CameraInfo, f'/{NS}/camera_info', qos)
        self.grasps: dict[int, PointCloud2] = {}
        keep = lambda m: self.grasps.__setitem__(m.header.stamp.sec, m)  # noqa: E731
        probe.create_subscription(PointCloud2, f'/{NS}/grasp_quality_node/grasps', keep, 10)
        self.client = probe.create_client(GetGrasps, SERVICE)

    def send(self, sec: int) -> None:
        self.info.publish(d435_camera_info(525.0, 525.0, 319.5, 239.5, 640, 480, 'camera_optical'))
        for publisher, msg in zip((self.tiles, self.records), frame(sec), strict=True):
            publisher.publish(msg)

    def ask(self, count: int, timeout: float):
        return self.client.call_async(GetGrasps.Request(count=count, timeout=timeout))

    def answer(self, future, within: float = 30.0):
        assert spin_until(self.probe, future.done, within), f'{SERVICE} did not answer within {within} s'
        return future.result()


def poses(response) -> np.ndarray:
    """``(N, 7)``: each grasp's position and orientation (x, y, z, qx, qy, qz, qw)."""
    rows = [
        (*(getattr(g.pose.position, k) for k in 'xyz'), *(getattr(g.pose.orientation, k) for k in 'xyzw'))
        for g in response.grasps
    ]
    return np.array(rows, np.float64).reshape(-1, 7)


def test_get_grasps_answers_ranked_grasps_of_the_latest_frame_and_waits_for_a_newer_one():
    node = NodeProcess(
        'grasp_quality_node',
        '-p', 'device:=cpu', '-p', 'quality_threshold:=0.0', '-p', 'all_hypotheses:=true',
        '-p', 'target_frame:=base_link',
        '-p', f'camera_to_target:=[{", ".join(repr(v) for v in CAMERA_TO_TARGET)}]',
        '-r', f'rectified/image:=/{NS}/rectified/image', '-r', f'rectified/transforms:=/{NS}/rectified/transforms',
        '-r', f'camera_info:=/{NS}/camera_info', '-r', f'__ns:=/{NS}',
        params_file=ROOT / 'config' / 'grasp_quality_node.yaml',
    )  # fmt: skip
    try:
        with ros_probe('get_grasps_client') as probe:
            client = Client(probe)
            assert client.client.wait_for_service(timeout_sec=60), (node.alive(), node.stop())

            # No frame yet: an immediate answer says so.
            empty = client.answer(client.ask(0, 0.0))
            assert not empty.success and 'no frame scored yet' in empty.message, empty
            assert len(empty.grasps) == 0

            # Frame 1 (sent again while discovery settles), then the answer now: ~/grasps of that frame.
            def settled() -> bool:
                return 1 in client.grasps and client.info.get_subscription_count() > 0

            assert spin_until(probe, settled, 60, step=lambda: (client.send(1), spin_until(probe, lambda: False, 0.3)))
            spin_until(probe, lambda: False, 0.5)  # frames sent again are scored, and their ~/grasps here
            topic = decode_pointcloud(client.grasps[1])
            every = client.answer(client.ask(0, 0.0))
            assert every.success and every.message == '', every.message
            assert (every.header.stamp.sec, every.header.frame_id) == (1, 'base_link')
            assert len(every.grasps) == OBJECTS * HYPOTHESES
            qualities = np.array([g.quality for g in every.grasps])
            assert [g.rank for g in every.grasps] == list(range(len(every.grasps)))
            assert (np.diff(qualities) <= 0).all(), qualities  # rank order = descending quality
            assert len(np.unique(qualities)) > 1, qualities  # a real ranking
            assert sorted((g.object_id, g.hypothesis) for g in every.grasps) == [
                (o, h) for o in range(OBJECTS) for h in range(HYPOTHESES)
            ]
            # ... the same grasps as ~/grasps, in the same order: the topic is ranked too, with its rank field
            np.testing.assert_array_equal(topic['rank'], np.arange(len(topic)))
            np.testing.assert_array_equal(qualities, topic['quality'])
            np.testing.assert_array_equal([g.object_id for g in every.grasps], topic['object_id'])
            np.testing.assert_array_equal([g.hypothesis for g in every.grasps], topic['hypothesis'])
            fields = ('x', 'y', 'z', 'qx', 'qy', 'qz', 'qw')
            expected = np.stack([topic[k] for k in fields], axis=1).astype(np.float64)
            assert np.isfinite(expected).all()  # metric poses, in base_link
            np.testing.assert_allclose(poses(every), expected, rtol=1e-6)
            for name in ('width', 'u', 'v', 'angle'):
                np.testing.assert_allclose([getattr(g, name) for g in every.grasps], topic[name], rtol=1e-6)

            # count: the best ones
            best_two = client.answer(client.ask(2, 0.0))
            assert best_two.success and [g.rank for g in best_two.grasps] == [0, 1]
            assert [(g.object_id, g.hypothesis) for g in best_two.grasps] == [
                (g.object_id, g.hypothesis) for g in every.grasps[:2]
            ]

            # timeout > 0 and no newer frame: success false, after the timeout and not long after it
            started = time.monotonic()
            late = client.answer(client.ask(0, 0.5), within=10)
            waited = time.monotonic() - started
            assert not late.success and 'no frame newer than the request within 0.5 s' in late.message, late
            assert 0.5 <= waited < 2.5, waited

            # A request waits; meanwhile the node answers another at once (its executor is not blocked) and takes the
            # frame that answers the first.
            waiting = client.ask(1, 20.0)
            spin_until(probe, lambda: False, 0.5)
            assert not waiting.done(), 'answered without a newer frame'
            now = client.answer(client.ask(0, 0.0), within=5)
            assert now.success and now.header.stamp.sec == 1  # the latest frame is still frame 1
            asked = time.monotonic()
            client.send(2)
            newer = client.answer(waiting, within=20)
            assert newer.success and newer.header.stamp.sec == 2 and len(newer.grasps) == 1, newer
            assert newer.grasps[0].rank == 0
            assert time.monotonic() - asked < 10  # answered by the frame, not by the timeout

            # A bad timeout is refused with the reason.
            bad = client.answer(client.ask(0, -1.0))
            assert not bad.success and 'timeout must be 0' in bad.message
    finally:
        output = node.stop()
    assert 'Traceback' not in output, output
