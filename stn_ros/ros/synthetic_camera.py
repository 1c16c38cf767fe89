"""``synthetic_camera``: publishes synthetic depth scenes as a depth camera would (for the demo and tests).

Topics (relative): ``depth`` (``32FC1`` metres or ``16UC1`` mm), ``image`` (``bgr8`` rendering) and
``camera_info``, all three with the same header, at ``rate`` Hz; a new scene every ``scene_period`` s.
``source``: analytic prism scenes, or pybullet scenes of held-out meshes (``physics``, needs pybullet).
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from stn_ros.bridge.image_codec import DEPTH_ENCODINGS, encode_image
from stn_ros.perception.camera import PinholeCamera
from stn_ros.ros.node_runtime import run_node
from stn_ros.ros.parameters import ParameterSet, ParameterSpec, StartupError, one_of
from stn_ros.sim.physics_world import import_pybullet
from stn_ros.sim.synthetic_frames import SOURCES, SyntheticFrame, synthetic_frame

PARAMETERS = [
    ParameterSpec.number('rate', 10.0, 'frames per second', 0.1, 100.0, read_only=True),
    ParameterSpec.number('scene_period', 2.0, 'seconds between scene changes', 0.0, 3600.0),
    ParameterSpec.integer('seed', 0, 'seed of the scene sequence', 0, 2**31 - 1, read_only=True),
    ParameterSpec(
        'depth_encoding',
        '32FC1',
        '32FC1 (metres) or 16UC1 (millimetres)',
        one_of(*sorted(DEPTH_ENCODINGS)),
        read_only=True,
    ),
    ParameterSpec('frame_id', 'camera_optical_frame', 'frame_id of the headers', read_only=True),
    ParameterSpec(
        'source',
        'prisms',
        'prisms (analytic prism scenes) or physics (pybullet mesh scenes; needs pybullet)',
        one_of(*SOURCES),
        read_only=True,
    ),
]


def camera_info_message(camera: PinholeCamera, header) -> CameraInfo:
    """The ``CameraInfo`` of an ideal (rectified, distortion-free) pinhole camera, with ``header``."""
    info = CameraInfo(header=header, width=camera.width, height=camera.height, distortion_model='plumb_bob')
    info.k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    info.p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return info


class SyntheticCamera(Node):
    def __init__(self, **kwargs):
        super().__init__('synthetic_camera', **kwargs)
        self.parameters = ParameterSet(self, PARAMETERS)
        if self.parameters.values['source'] == 'physics':
            try:
                import_pybullet()
            except ImportError as exc:
                raise StartupError(f"parameter 'source': {exc}") from None
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = self.create_publisher(Image, 'depth', qos)
        self.image_pub = self.create_publisher(Image, 'image', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', qos)
        self.scene_index = -1
        self.frames_published = 0
        self._frame: SyntheticFrame | None = None
        self._scene_started = None
        self.create_timer(1.0 / self.parameters.values['rate'], self._tick)

    def _next_scene(self, now) -> None:
        values = self.parameters.values
        self.scene_index += 1
        self._frame = synthetic_frame(
            values['seed'], self.scene_index, values['depth_encoding'], source=values['source']
        )
        self._scene_started = now

    def _tick(self) -> None:
        now = self.get_clock().now()
        period = self.parameters.values['scene_period']
        if self._frame is None or (period > 0 and (now - self._scene_started).nanoseconds >= period * 1e9):
            self._next_scene(now)
            now = self.get_clock().now()  # the capture time: after the scene is made (a physics scene takes ~0.2 s)
        frame, values = self._frame, self.parameters.values
        header = Image().header
        header.stamp, header.frame_id = now.to_msg(), values['frame_id']
        self.info_pub.publish(camera_info_message(frame.scene.camera, header))
        self.image_pub.publish(encode_image(frame.bgr, 'bgr8', header=header))
        self.depth_pub.publish(encode_image(frame.depth, values['depth_encoding'], header=header))
        self.frames_published += 1


def main(args: list[str] | None = None) -> int:
    """Console script ``synthetic_camera``."""
    return run_node(SyntheticCamera, 'synthetic_camera', args)


if __name__ == '__main__':
    sys.exit(main())
