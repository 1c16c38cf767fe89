"""Driving the ROS 2 graph of the shipped nodes: each scene's depth frame and camera_info published over real
topics (loopback) to ``stn_node`` -> ``grasp_quality_node`` processes, their ``~/grasps`` and ``~/best_grasp``
collected per frame."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stn_ros.perception.grasps.gripper import GripperConfig, gripper_parameters
from stn_ros.sim.physics.scenes import PhysicsScene


@dataclass
class FrameOutput:
    """What the nodes published for one frame."""

    grasps: np.ndarray  # structured ``~/grasps`` record (quality u v x y z angle width)
    best_published: bool


EVALUATION_GRAPH = {  # topic -> publishers of the evaluation's own graph (the probe, the two nodes)
    '/physics/depth': 1,
    '/physics/camera_info': 1,
    '/stn_node/rectified/image': 1,
    '/grasp_quality_node/grasps': 1,
}


def check_graph_is_ours(probe: Any) -> None:
    """RuntimeError when a process outside the evaluation publishes on its topics: one that shares this ROS domain
    (a random one of 101: two runs on one machine can draw the same) and would feed the nodes other frames or
    camera_info, as once silently cost 15 grasps their depth."""
    for topic, expected in EVALUATION_GRAPH.items():
        found = probe.count_publishers(topic)
        if found > expected:
            raise RuntimeError(
                f'{found} publishers on {topic}, {expected} expected: another ROS graph shares ROS_DOMAIN_ID '
                f'{os.environ.get("ROS_DOMAIN_ID")}; run the evaluation again (it draws another domain)'
            )


def run_pipeline(
    scenes: list[PhysicsScene],
    log_dir: Path,
    timeout: float,
    threshold: float,
    weights: dict[str, str] | None = None,
    hypotheses: int | None = None,
    gripper: GripperConfig | None = None,
) -> list[FrameOutput]:
    """Publish each scene to the shipped nodes over real topics and collect ``~/grasps`` and ``~/best_grasp``.

    ``gripper``: both nodes' ``gripper.*`` parameters, not refused outside the measured range (an evaluation
    measures; it is how the range was found); None: the nodes' defaults (the trained gripper)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from stn_ros.bridge.camera_info import camera_info_message
    from stn_ros.bridge.image_codec import encode_image
    from stn_ros.bridge.pointcloud_codec import decode_pointcloud
    from stn_ros.ros.child_processes import ProcessGroup, node_command

    nodes = (
        ('stn_node', ['image:=/physics/depth', 'camera_info:=/physics/camera_info']),
        (
            'grasp_quality_node',
            [
                'rectified/image:=/stn_node/rectified/image',
                'rectified/transforms:=/stn_node/rectified/transforms',
                'camera_info:=/physics/camera_info',
            ],
        ),
    )
    group = ProcessGroup()
    outputs: list[FrameOutput] = []
    gripper_params = []
    if gripper is not None:
        gripper_params = [f'gripper.{name}:={value!r}' for name, value in gripper_parameters(gripper).items()]
        gripper_params.append('gripper.check_range:=false')
    rclpy.init()
    try:
        for executable, remaps in nodes:
            if executable == 'grasp_quality_node':
                params = [f'quality_threshold:={threshold}', *gripper_params]
            else:
                params = [] if hypotheses is None else [f'hypotheses_per_object:={hypotheses}']
                params += gripper_params
            if (weights or {}).get(executable):
                params.append(f'weights:={Path(weights[executable]).resolve()}')
            group.start(executable, node_command(executable, params, remaps), log=log_dir / f'{executable}.log')
        probe = rclpy.create_node('stn_evaluate_physics')
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        depth_pub = probe.create_publisher(Image, '/physics/depth', qos)
        info_pub = probe.create_publisher(
            type(camera_info_message(scenes[0].camera, Image().header)), '/physics/camera_info', qos
        )
        grasps: dict[int, np.ndarray] = {}
        best: set[int] = set()
        key = lambda h: h.stamp.sec * 10**9 + h.stamp.nanosec  # noqa: E731
        probe.create_subscription(
            PointCloud2,
            '/grasp_quality_node/grasps',
            lambda m: grasps.__setitem__(key(m.header), decode_pointcloud(m)),
            10,
        )
        probe.create_subscription(PoseStamped, '/grasp_quality_node/best_grasp', lambda m: best.add(key(m.header)), 10)
        ready = time.monotonic() + timeout
        while (
            depth_pub.get_subscription_count() < 1
            or info_pub.get_subscription_count() < 2
            or probe.count_publishers('/grasp_quality_node/grasps') < 1
        ):
            group.check_alive()
            if time.monotonic() > ready:
                raise RuntimeError(f'the nodes did not connect within {timeout:.0f} s; logs in {log_dir}')
            rclpy.spin_once(probe, timeout_sec=0.1)
        time.sleep(1.0)  # let the nodes' own matching settle before the first frame
        for index, scene in enumerate(tqdm(scenes, desc='pipeline (ROS 2)', unit='frame')):
            check_graph_is_ours(probe)
            header = Image().header
            header.stamp.sec, header.frame_id = index + 1, 'camera_optical_frame'
            stamp = key(header)
            for _attempt in range(3):  # a frame published while a connection settles can be lost
                info_pub.publish(camera_info_message(scene.camera, header))
                time.sleep(0.02)
                depth_pub.publish(encode_image(scene.depth, '32FC1', header=header))
                deadline = time.monotonic() + timeout / 3
                while stamp not in grasps and time.monotonic() < deadline:
                    rclpy.spin_once(probe, timeout_sec=0.05)
                    group.check_alive()
                if stamp in grasps:
                    break
            else:
                raise RuntimeError(f'no grasps for frame {index} after 3 tries; logs in {log_dir}')
            # best_grasp follows grasps when a quality reaches the node's threshold: wait for it briefly.
            deadline = time.monotonic() + 0.5
            while stamp not in best and time.monotonic() < deadline and (grasps[stamp]['quality'] >= threshold).any():
                rclpy.spin_once(probe, timeout_sec=0.02)
            outputs.append(FrameOutput(grasps[stamp], stamp in best))
        probe.destroy_node()
    finally:
        rclpy.try_shutdown()
        group.stop()
    return outputs
