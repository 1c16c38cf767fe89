"""The demo pipeline over real topics: synthetic_camera -> stn_node -> grasp_quality_node, separate processes."""

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import PointCloud2

from ros_harness import ROOT, NodeProcess, spin_until
from stn_ros.bridge.pointcloud_codec import decode_pointcloud
from stn_ros.perception.geometry.rigid_transforms import quaternion_matrix
from stn_ros.sim.prisms.camera_frames import synthetic_frame

pytestmark = pytest.mark.timeout(180)
CONFIG = ROOT / 'config'


@pytest.fixture
def pipeline():
    camera = NodeProcess(
        'synthetic_camera',
        '-p',
        'scene_period:=0.0',
        '-p',
        'seed:=5',
        '-r',
        'depth:=/cam/depth',
        '-r',
        'camera_info:=/cam/camera_info',
        '-r',
        'image:=/cam/image',
        params_file=CONFIG / 'synthetic_camera.yaml',
    )
    stn = NodeProcess(
        'stn_node',
        '-p',
        'device:=cpu',
        '-r',
        'image:=/cam/depth',
        '-r',
        'camera_info:=/cam/camera_info',
        params_file=CONFIG / 'stn_node.yaml',
    )
    grasp = NodeProcess(
        'grasp_quality_node',
        '-p',
        'device:=cpu',
        '-p',
        'quality_threshold:=0.0',
        '-r',
        'rectified/image:=/stn_node/rectified/image',
        '-r',
        'rectified/transforms:=/stn_node/rectified/transforms',
        '-r',
        'camera_info:=/cam/camera_info',
        params_file=CONFIG / 'grasp_quality_node.yaml',
    )
    processes = (camera, stn, grasp)
    try:
        yield processes
    finally:
        outputs = [p.stop() for p in processes]
        for output in outputs:
            print(output)
        assert not any('Traceback' in o for o in outputs)


def test_grasps_come_out_for_synthetic_scenes_and_the_best_lies_on_an_object(pipeline):
    rclpy.init()
    probe = rclpy.create_node('pipeline_probe')
    grasps, best = [], []
    try:
        probe.create_subscription(PointCloud2, '/grasp_quality_node/grasps', grasps.append, 10)
        probe.create_subscription(PoseStamped, '/grasp_quality_node/best_grasp', best.append, 10)
        assert spin_until(probe, lambda: len(best) >= 3 and len(grasps) >= 3, 120), [p.output for p in pipeline]
        record = decode_pointcloud(grasps[-1])
        assert len(record) >= 1 and ((record['quality'] >= 0) & (record['quality'] <= 1)).all()
        assert np.isfinite(record['z']).all() and (np.abs(record['z'] - 0.68) < 0.1).all()  # the table is 0.70 m away
        scene = synthetic_frame(5, 0).scene  # scene_period 0: the camera keeps showing scene 0 of seed 5
        pose = best[-1]
        assert pose.header.frame_id == 'camera_optical_frame'
        point = np.array([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z])
        u = 525.0 * point[0] / point[2] + 319.5
        v = 525.0 * point[1] / point[2] + 239.5
        assert scene.labels[int(round(v)), int(round(u))] > 0, 'the best grasp is not on an object'
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in grasps}
        assert (pose.header.stamp.sec, pose.header.stamp.nanosec) in stamps
        # ~/best_grasp is the pose of the best point of ~/grasps of its frame: x, y, z and qx .. qw
        same_frame = next(m for m in grasps if m.header.stamp == pose.header.stamp)
        top = decode_pointcloud(same_frame)[np.argmax(decode_pointcloud(same_frame)['quality'])]
        o = pose.pose.orientation
        np.testing.assert_allclose(point, [top['x'], top['y'], top['z']], atol=1e-6)
        np.testing.assert_allclose([o.x, o.y, o.z, o.w], [top['qx'], top['qy'], top['qz'], top['qw']], atol=1e-6)
        rotation = quaternion_matrix([o.x, o.y, o.z, o.w])
        # the synthetic camera looks straight down at the table: the approach (z) is its optical axis within a degree
        assert np.degrees(np.arccos(rotation[2, 2])) < 1.0
        assert abs(rotation[:, 0] @ rotation[:, 2]) < 1e-6  # the closing axis (x) lies across the approach
    finally:
        probe.destroy_node()
        rclpy.shutdown()
