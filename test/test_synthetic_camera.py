"""synthetic_camera over real topics, and the frames it renders."""

import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import CameraInfo, Image

from ros_harness import NodeProcess, spin_until
from stn_ros.bridge.image_codec import decode_image
from stn_ros.sim.prisms.camera_frames import colour_rendering, synthetic_frame

pytestmark = pytest.mark.timeout(120)


def test_frames_are_reproducible_and_16uc1_is_millimetres():
    a, b = synthetic_frame(3, 1), synthetic_frame(3, 1, '16UC1')
    np.testing.assert_array_equal(a.scene.labels, b.scene.labels)
    valid = np.isfinite(a.depth)
    np.testing.assert_array_equal(b.depth[valid], np.round(a.depth[valid] * 1000).astype(np.uint16))
    assert (b.depth[~valid] == 0).all()
    assert not np.array_equal(a.scene.labels, synthetic_frame(3, 2).scene.labels)
    bgr = colour_rendering(a.scene)
    assert bgr.shape == (480, 640, 3) and bgr.dtype == np.uint8
    objects = a.scene.labels > 0
    assert np.abs(bgr[objects].mean(0) - bgr[~objects].mean(0)).max() > 10  # objects stand out
    with pytest.raises(ValueError, match='depth_encoding'):
        synthetic_frame(0, 0, 'mono8')


def test_camera_publishes_depth_image_and_info_with_one_header_and_changing_scenes():
    rclpy.init()
    probe = rclpy.create_node('synthetic_camera_probe')
    node = NodeProcess(
        'synthetic_camera',
        '-p',
        'rate:=20.0',
        '-p',
        'scene_period:=0.5',
        '-p',
        'depth_encoding:=16UC1',
        '-r',
        '__ns:=/synth',
        params_file=None,
    )
    received = {'depth': [], 'image': [], 'camera_info': []}
    try:
        for topic, kind in (('depth', Image), ('image', Image), ('camera_info', CameraInfo)):
            probe.create_subscription(kind, f'/synth/{topic}', received[topic].append, 10)
        assert spin_until(probe, lambda: len(received['depth']) >= 25, 40), node.stop()
        depth_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in received['depth']}
        image_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in received['image']}
        info_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in received['camera_info']}
        assert len(depth_stamps & image_stamps & info_stamps) >= 10
        depth = received['depth'][-1]
        assert depth.encoding == '16UC1' and (depth.height, depth.width) == (480, 640)
        assert (
            received['image'][-1].encoding == 'bgr8' and received['depth'][0].header.frame_id == 'camera_optical_frame'
        )
        info = received['camera_info'][-1]
        assert list(info.k) == [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
        first, last = decode_image(received['depth'][0]), decode_image(received['depth'][-1])
        assert not np.array_equal(first > 0, last > 0) or np.abs(first.astype(int) - last).max() > 20  # new scene
        assert 600 < np.median(last[last > 0]) < 720  # mm: the table ~0.70 m away
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        output = node.stop()
    assert 'Traceback' not in output


def test_physics_source_publishes_the_mesh_scene_with_its_exact_intrinsics():
    pytest.importorskip('pybullet')
    expected = synthetic_frame(5, 0, source='physics')
    camera = expected.scene.camera
    assert expected.scene.kinds and all(
        k in ('box', 'cylinder', 'sphere') or 400 <= int(k.split()[1]) <= 499 for k in expected.scene.kinds
    )
    with pytest.raises(ValueError, match='source'):
        synthetic_frame(5, 0, source='meshes')
    rclpy.init()
    probe = rclpy.create_node('synthetic_camera_physics_probe')
    node = NodeProcess(
        'synthetic_camera', '-p', 'source:=physics', '-p', 'seed:=5', '-p', 'scene_period:=3600.0', '-r', '__ns:=/phys'
    )
    received = {'depth': [], 'camera_info': []}
    try:
        for topic, kind in (('depth', Image), ('camera_info', CameraInfo)):
            probe.create_subscription(kind, f'/phys/{topic}', received[topic].append, 10)
        assert spin_until(probe, lambda: received['depth'] and received['camera_info'], 40), node.stop()
        np.testing.assert_array_equal(decode_image(received['depth'][-1]), expected.depth)  # NaNs alike
        info = received['camera_info'][-1]
        assert list(info.k) == [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        output = node.stop()
    assert 'Traceback' not in output


def test_tilt_deg_publishes_the_tilted_view():
    """``tilt_deg``: the camera publishes the scene seen from that tilt, the frame ``synthetic_frame`` renders."""
    expected = synthetic_frame(5, 0, tilt_deg=45.0)
    rclpy.init()
    probe = rclpy.create_node('synthetic_camera_tilt_probe')
    node = NodeProcess(
        'synthetic_camera', '-p', 'tilt_deg:=45.0', '-p', 'seed:=5', '-p', 'scene_period:=3600.0', '-r', '__ns:=/tilt'
    )
    received = []
    try:
        probe.create_subscription(Image, '/tilt/depth', received.append, 10)
        assert spin_until(probe, lambda: received, 30), node.stop()
        np.testing.assert_array_equal(decode_image(received[-1]), expected.depth)  # NaNs alike
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        output = node.stop()
    assert 'Traceback' not in output
