"""The node a robotics team would hand-roll instead of ``stn_node``: depth proposals, then per object
``cv2.minAreaRect`` of its mask and a ``cv2.warpAffine`` crop. A comparator for the benchmarks, not a product node.

Subscribes ``image`` (depth, ``16UC1`` mm or ``32FC1`` m) and ``camera_info``; publishes ``~/rectified/image``
(the crops tiled vertically, ``32FC1`` metres) and ``~/rectified/transforms`` (``PointCloud2``, one point per crop,
the transforms record of :mod:`stn_ros.perception.stn.transforms_record`), both stamped with the input's header, with
``stn_node``'s output QoS (keep last 5, reliable). It finds objects with ``stn_node``'s depth proposals (its
default settings for the frame's width), and crops each one ``crop_side_m`` metres wide at the depth of its centre
(the shipped grasp STN's crop size; the proposal's square without depth or ``camera_info``), its rectangle's long
side horizontal. No torch, one OpenCV thread; the work is done in the image callback (keep last 1: the latest
frame wins while it works).

    python benchmarks/opencv_alignment_node.py --ros-args -r image:=/camera/depth -r camera_info:=/camera/camera_info
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import ImageDecodeError, encode_image
from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.evaluation.min_area_rect import min_area_rect_grasp
from stn_ros.perception.geometry.camera import depth_at
from stn_ros.perception.stn.frame import Frame, decode_frame
from stn_ros.perception.stn.proposals import ProposalConfig, auto_decimation, depth_proposals
from stn_ros.perception.stn.transforms_record import build_record
from stn_ros.ros.qos import camera_qos

SIMILARITY = 2
"""The transforms record's family code of a rotation + scale + translation (transforms_record's table)."""
OUTPUT_DEPTH = 5
"""stn_node's outputs: keep last 5, reliable."""
CROP_SIDE_M = 0.24
"""Crops this many metres wide: the shipped grasp STN's ``roi_side_m`` (a test keeps the two the same)."""


def proposal_config_for(width: int) -> ProposalConfig:
    """``stn_node``'s default proposal settings for frames ``width`` pixels wide (decimation auto)."""
    return ProposalConfig(decimation=auto_decimation(width))


def align_objects(
    frame: Frame, camera: PinholeCamera | None, max_crops: int = 16, size: int = 32, side_m: float = CROP_SIDE_M
) -> tuple[np.ndarray, np.ndarray]:
    """Crops ``(N, size, size)`` float32 metres and their transforms record of a depth ``frame``: per proposal,
    ``minAreaRect`` of its mask, then a ``warpAffine`` crop ``side_m`` metres wide (with ``camera``; else the
    proposal's square) around the rectangle's centre, its long side horizontal."""
    depth = frame.pixels
    width = frame.size[1]
    proposals = depth_proposals(depth, proposal_config_for(width), max_crops)
    crops = np.empty((len(proposals.rois), size, size), np.float32)
    homographies = np.empty((len(proposals.rois), 3, 3))
    xyz = np.full((len(proposals.rois), 3), np.nan)
    middle = (size - 1) / 2.0
    for index, (x, y, w, h) in enumerate(proposals.rois):
        x0, y0 = max(int(x), 0), max(int(y), 0)
        mask = proposals.labels[y0 : int(math.ceil(y + h)), x0 : int(math.ceil(x + w))] == index + 1
        (u, v), grasp_angle = min_area_rect_grasp(mask)  # the proposal's own pixels: never empty
        u, v = u + x0, v + y0
        z = float(depth_at(depth, np.array([[u, v]]), radius=3)[0])
        metric = camera is not None and math.isfinite(z)
        scale = (side_m * (camera.fx + camera.fy) / 2 / z if metric else float(w)) / size  # source px per crop px
        long_side = grasp_angle + math.pi / 2  # the grasp closes across the short side
        c, s = scale * math.cos(long_side), scale * math.sin(long_side)
        homographies[index] = [[c, -s, u - c * middle + s * middle], [s, c, v - s * middle - c * middle], [0, 0, 1]]
        cv2.warpAffine(
            depth,
            homographies[index, :2],
            (size, size),
            dst=crops[index],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=float('nan'),
        )
        if metric:
            xyz[index] = camera.back_project(np.array([[u, v]]), np.array([z]))[0]
    record = build_record(homographies, np.zeros((len(crops), 0)), SIMILARITY, proposals.rois, (size, size), xyz)
    return crops, record


class OpenCvAlignmentNode(Node):
    """Depth image (+ camera_info) in, minAreaRect-aligned crops and their transforms out (module docstring)."""

    def __init__(self) -> None:
        super().__init__('opencv_alignment_node')
        self.max_crops = int(self.declare_parameter('max_crops', 16).value)
        self.size = int(self.declare_parameter('crop_size', 32).value)
        self.side_m = float(self.declare_parameter('crop_side_m', CROP_SIDE_M).value)
        self.camera: PinholeCamera | None = None
        self.tile_pub = self.create_publisher(Image, '~/rectified/image', OUTPUT_DEPTH)
        self.transforms_pub = self.create_publisher(PointCloud2, '~/rectified/transforms', OUTPUT_DEPTH)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, qos_profile_sensor_data)
        self.create_subscription(Image, 'image', self._on_image, camera_qos(ReliabilityPolicy.RELIABLE))
        self.get_logger().info(
            f'minAreaRect + warpAffine crops {self.size}x{self.size}, {self.side_m} m wide, at most {self.max_crops} '
            f'objects; reading {self.resolve_topic_name("image")}'
        )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.camera = PinholeCamera.from_camera_info(msg)
        except ValueError as exc:
            self.camera = None
            self.get_logger().warning(f'bad camera_info: {exc}', throttle_duration_sec=5.0)

    def _on_image(self, msg: Image) -> None:
        try:
            frame = decode_frame(msg)
        except ImageDecodeError as exc:
            self.get_logger().warning(f'bad image: {exc}', throttle_duration_sec=5.0)
            return
        if not frame.is_depth:
            self.get_logger().warning(f'not a depth image ({msg.encoding}): skipped', throttle_duration_sec=5.0)
            return
        try:
            camera = self.camera.for_image(*frame.size) if self.camera is not None else None
        except ValueError:
            camera = None  # camera_info of another image: no metric crops
        crops, record = align_objects(frame, camera, self.max_crops, self.size, self.side_m)
        self.tile_pub.publish(encode_image(crops.reshape(-1, self.size), '32FC1', header=msg.header))
        self.transforms_pub.publish(encode_pointcloud(record, header=msg.header))


def node_command(remaps: Sequence[str] = (), params: Sequence[str] = ()) -> list[str]:
    """The command line that runs this node with this interpreter, ``-p`` ``params`` and ``-r`` ``remaps``."""
    args = [sys.executable, str(Path(__file__).resolve()), '--ros-args']
    for param in params:
        args += ['-p', param]
    for remap in remaps:
        args += ['-r', remap]
    return args


def main(args: list[str] | None = None) -> int:
    cv2.setNumThreads(1)
    rclpy.init(args=args)
    node = OpenCvAlignmentNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
