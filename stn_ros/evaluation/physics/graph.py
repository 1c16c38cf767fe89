"""Driving the ROS 2 graph of the shipped nodes: depth frames and their camera_info published over real topics
(loopback) to ``stn_node`` -> ``grasp_quality_node`` processes, their ``~/grasps`` and ``~/best_grasp`` collected per
frame.

:class:`PipelineGraph` keeps the nodes up across frames (a session: ``with PipelineGraph(...) as graph:
graph.frame(scene)``), for evaluations whose next frame depends on what the last one did (clearing a table);
:func:`run_pipeline` runs it over a list of scenes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stn_ros.perception.frame_report import stamp_ns
from stn_ros.perception.grasps.gripper import GripperConfig, gripper_parameters
from stn_ros.sim.physics.scenes import PhysicsScene


@dataclass
class FrameOutput:
    """What the nodes published for one frame.

    Attributes:
        grasps: the structured ``~/grasps`` record (quality u v x y z angle width, and the pose fields when sent).
        best_published: ``~/best_grasp`` came for the frame (a quality reached the node's threshold).
        planning_seconds: from the frame's publication (its last try's, when it was sent again) to its ``~/grasps``
            received; NaN when not measured.
    """

    grasps: np.ndarray
    best_published: bool
    planning_seconds: float = float('nan')


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


class PipelineGraph:
    """The shipped ``stn_node`` -> ``grasp_quality_node`` processes and a probe node, up for a ``with`` block.

    Entering starts both nodes (their shipped parameter files, ``stn_node`` never shedding load; ``threshold``:
    ``grasp_quality_node``'s ``quality_threshold``; ``weights``: per executable, a checkpoint path or None for the
    shipped one; ``hypotheses``: ``stn_node``'s ``hypotheses_per_object``, None for its default; ``gripper``: both
    nodes' ``gripper.*`` parameters, not refused outside the measured range, None for the trained gripper), initialises
    rclpy in this process and waits up to ``timeout`` seconds until the graph is connected; leaving stops the nodes
    and shuts rclpy down, whatever happened. The caller sets the ROS environment first
    (:func:`~stn_ros.ros.loopback_env.apply_loopback_ros_env`). Node logs go to ``log_dir``.
    """

    def __init__(
        self,
        log_dir: Path,
        timeout: float,
        threshold: float,
        weights: dict[str, str | None] | None = None,
        hypotheses: int | None = None,
        gripper: GripperConfig | None = None,
        name: str = 'stn_evaluate_physics',
    ) -> None:
        self.log_dir, self.timeout, self.threshold = Path(log_dir), float(timeout), float(threshold)
        self.weights, self.hypotheses, self.gripper, self.name = weights or {}, hypotheses, gripper, name
        self.frames = 0
        self._group = None
        self._probe = None

    def node_parameters(self) -> dict[str, list[str]]:
        """Per executable, the ``-p`` overrides the nodes start with (on top of their shipped parameter files)."""
        gripper_params = []
        if self.gripper is not None:
            gripper_params = [f'gripper.{name}:={value!r}' for name, value in gripper_parameters(self.gripper).items()]
            gripper_params.append('gripper.check_range:=false')
        params = {
            # Frames come back to back, so a slow one (a busy machine) would look like a camera the node cannot keep
            # up with and it would shed hypotheses and objects: the evaluations judge the full work.
            'stn_node': ['shed_load:=false']
            + ([] if self.hypotheses is None else [f'hypotheses_per_object:={self.hypotheses}'])
            + gripper_params,
            'grasp_quality_node': [f'quality_threshold:={self.threshold}', *gripper_params],
        }
        for executable, found in params.items():
            if self.weights.get(executable):
                found.append(f'weights:={Path(self.weights[executable]).resolve()}')
        return params

    def __enter__(self) -> PipelineGraph:
        import rclpy

        from stn_ros.ros.child_processes import ProcessGroup, node_command

        remaps = {
            'stn_node': ['image:=/physics/depth', 'camera_info:=/physics/camera_info'],
            'grasp_quality_node': [
                'rectified/image:=/stn_node/rectified/image',
                'rectified/transforms:=/stn_node/rectified/transforms',
                'camera_info:=/physics/camera_info',
            ],
        }
        self._group = ProcessGroup()
        rclpy.init()
        try:
            for executable, params in self.node_parameters().items():
                command = node_command(executable, params, remaps[executable])
                self._group.start(executable, command, log=self.log_dir / f'{executable}.log')
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from stn_ros.bridge.pointcloud_codec import decode_pointcloud

        self._probe = probe = rclpy.create_node(self.name)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._depth_pub = probe.create_publisher(Image, '/physics/depth', qos)
        self._info_pub = probe.create_publisher(CameraInfo, '/physics/camera_info', qos)
        self._grasps: dict[int, tuple[np.ndarray, float]] = {}
        self._best: set[int] = set()
        probe.create_subscription(
            PointCloud2,
            '/grasp_quality_node/grasps',
            lambda m: self._grasps.__setitem__(stamp_ns(m.header), (decode_pointcloud(m), time.monotonic())),
            10,
        )
        probe.create_subscription(
            PoseStamped, '/grasp_quality_node/best_grasp', lambda m: self._best.add(stamp_ns(m.header)), 10
        )
        ready = time.monotonic() + self.timeout
        while (
            self._depth_pub.get_subscription_count() < 1
            or self._info_pub.get_subscription_count() < 2
            or probe.count_publishers('/grasp_quality_node/grasps') < 1
        ):
            self._group.check_alive()
            if time.monotonic() > ready:
                raise RuntimeError(f'the nodes did not connect within {self.timeout:.0f} s; logs in {self.log_dir}')
            rclpy.spin_once(probe, timeout_sec=0.1)
        time.sleep(1.0)  # let the nodes' own matching settle before the first frame

    def frame(self, scene: PhysicsScene) -> FrameOutput:
        """Publish ``scene``'s depth (``32FC1``) and camera_info with the next stamp and wait for the nodes' answer
        (the frame is sent again, up to 3 times in all, when none comes within a third of the timeout: one published
        while a connection settles can be lost); RuntimeError when none comes, or when a node has exited."""
        import rclpy
        from sensor_msgs.msg import Image

        from stn_ros.bridge.camera_info import camera_info_message
        from stn_ros.bridge.image_codec import encode_image

        if self._probe is None:
            raise RuntimeError('PipelineGraph.frame needs the graph up: use it inside its with block')
        probe, group = self._probe, self._group
        check_graph_is_ours(probe)
        self.frames += 1
        header = Image().header
        header.stamp.sec, header.frame_id = self.frames, 'camera_optical_frame'
        stamp = stamp_ns(header)
        for _attempt in range(3):
            self._info_pub.publish(camera_info_message(scene.camera, header))
            time.sleep(0.02)
            sent = time.monotonic()
            self._depth_pub.publish(encode_image(scene.depth, '32FC1', header=header))
            deadline = sent + self.timeout / 3
            while stamp not in self._grasps and time.monotonic() < deadline:
                rclpy.spin_once(probe, timeout_sec=0.05)
                group.check_alive()
            if stamp in self._grasps:
                break
        else:
            raise RuntimeError(f'no grasps for frame {self.frames - 1} after 3 tries; logs in {self.log_dir}')
        record, received = self._grasps.pop(stamp)
        # best_grasp follows grasps when a quality reaches the node's threshold: wait for it briefly.
        deadline = time.monotonic() + 0.5
        while stamp not in self._best and time.monotonic() < deadline and (record['quality'] >= self.threshold).any():
            rclpy.spin_once(probe, timeout_sec=0.02)
        published = stamp in self._best
        self._best.discard(stamp)
        return FrameOutput(record, published, received - sent)

    def close(self) -> None:
        """Destroy the probe, shut rclpy down and stop the nodes (what leaving the ``with`` block does)."""
        import rclpy

        try:
            if self._probe is not None:
                self._probe.destroy_node()
                self._probe = None
        finally:
            rclpy.try_shutdown()
            if self._group is not None:
                self._group.stop()

    def __exit__(self, *exc) -> None:
        self.close()


def run_pipeline(
    scenes: list[PhysicsScene],
    log_dir: Path,
    timeout: float,
    threshold: float,
    weights: dict[str, str] | None = None,
    hypotheses: int | None = None,
    gripper: GripperConfig | None = None,
) -> list[FrameOutput]:
    """Publish each scene to the shipped nodes over real topics and collect ``~/grasps`` and ``~/best_grasp``
    (:class:`PipelineGraph`, one session for all of them)."""
    with PipelineGraph(log_dir, timeout, threshold, weights, hypotheses, gripper) as graph:
        return [graph.frame(scene) for scene in tqdm(scenes, desc='pipeline (ROS 2)', unit='frame')]
