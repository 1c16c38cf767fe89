"""``synthetic_camera``: publishes synthetic depth scenes as a depth camera would (for the demo and tests).

Topics (relative): ``depth`` (``32FC1`` metres or ``16UC1`` mm), ``image`` (``bgr8`` rendering) and
``camera_info``, all three with the same header, at ``rate`` Hz; a new scene every ``scene_period`` s.
``source``: analytic prism scenes, or pybullet scenes of the validation meshes (``physics``, needs pybullet).
``tilt_deg``: degrees from vertical of the camera (a random azimuth and roll per scene, :mod:`~stn_ros.sim.prisms.
camera_frames`); 0 keeps each source's own camera (prisms straight down, physics up to 10 deg).
``record_mcap``: also write every frame it publishes to an MCAP file (rosbag2's default storage), on the same
topic names, for ``stn_replay``; ``max_frames``: stop after that many frames (the file is then complete).
"""

from __future__ import annotations

import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from stn_ros.bridge.camera_info import camera_info_message
from stn_ros.bridge.image_codec import DEPTH_ENCODINGS, encode_image
from stn_ros.ros.node_runtime import run_node
from stn_ros.ros.parameter_specs import ParameterSpec, one_of
from stn_ros.ros.parameters import ParameterSet, StartupError
from stn_ros.sim.physics.world import import_pybullet
from stn_ros.sim.prisms.camera_frames import SOURCES, SyntheticFrame, synthetic_frame
from stn_ros.sim.prisms.scenes import MAX_VIEW_TILT_DEG

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
    ParameterSpec.number(
        'tilt_deg',
        0.0,
        "camera tilt from vertical, degrees, at a random azimuth and roll per scene; 0: the source's own camera "
        '(prisms straight down, physics up to 10 deg)',
        0.0,
        MAX_VIEW_TILT_DEG,
        read_only=True,
    ),
    ParameterSpec(
        'record_mcap',
        '',
        'also write every frame published (depth, image, camera_info) to this MCAP file, for stn_replay; '
        'empty: no recording',
        read_only=True,
    ),
    ParameterSpec.integer(
        'max_frames', 0, 'stop after this many frames (0: run until stopped)', 0, 10_000_000, read_only=True
    ),
]


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
        self._bag = None
        self._last_log_time = 0
        if self.parameters.values['record_mcap']:
            self._bag = self._open_bag(self.parameters.values['record_mcap'])
        self.create_timer(1.0 / self.parameters.values['rate'], self._tick)

    def _open_bag(self, path: str):
        try:
            from stn_ros.bridge.mcap_bag import BagWriter, message_definition
        except ImportError as exc:  # the mcap packages are pip-only
            raise StartupError(f"parameter 'record_mcap': {exc} (pip install mcap mcap-ros2-support)") from None
        try:
            for type_name in ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'):
                message_definition(type_name)  # say now, not at the first frame, when a definition is missing
            bag = BagWriter(path)
        except OSError as exc:
            raise StartupError(f"parameter 'record_mcap': {exc}") from None
        self.get_logger().info(f'recording to {bag.path}')
        return bag

    def _record(self, topic: str, type_name: str, msg) -> None:
        """Write ``msg`` to the bag, logged now (strictly after the previous one, so the bag keeps the order)."""
        self._last_log_time = max(time.time_ns(), self._last_log_time + 1)
        self._bag.write(topic, type_name, msg, self._last_log_time)

    def _next_scene(self, now) -> None:
        values = self.parameters.values
        self.scene_index += 1
        self._frame = synthetic_frame(
            values['seed'],
            self.scene_index,
            values['depth_encoding'],
            source=values['source'],
            tilt_deg=values['tilt_deg'],
        )
        self._scene_started = now

    def _tick(self) -> None:
        if self.parameters.values['max_frames'] and self.frames_published >= self.parameters.values['max_frames']:
            return  # done: shutting down
        now = self.get_clock().now()
        period = self.parameters.values['scene_period']
        if self._frame is None or (period > 0 and (now - self._scene_started).nanoseconds >= period * 1e9):
            self._next_scene(now)
            now = self.get_clock().now()  # the capture time: after the scene is made (a physics scene takes ~0.2 s)
        frame, values = self._frame, self.parameters.values
        header = Image().header
        header.stamp, header.frame_id = now.to_msg(), values['frame_id']
        outputs = (
            (self.info_pub, 'sensor_msgs/msg/CameraInfo', camera_info_message(frame.scene.camera, header, CameraInfo)),
            (self.image_pub, 'sensor_msgs/msg/Image', encode_image(frame.bgr, 'bgr8', header=header)),
            (
                self.depth_pub,
                'sensor_msgs/msg/Image',
                encode_image(frame.depth, values['depth_encoding'], header=header),
            ),
        )
        for publisher, type_name, msg in outputs:
            publisher.publish(msg)
            if self._bag is not None:
                self._record(publisher.topic_name, type_name, msg)
        self.frames_published += 1
        if values['max_frames'] and self.frames_published >= values['max_frames']:
            self.stop()
            where = f' to {self._bag.path}' if self._bag is not None else ''
            self.get_logger().info(f'{self.frames_published} frames published{where}: max_frames reached, stopping')
            rclpy.try_shutdown(context=self.context)

    def stop(self) -> None:
        """Complete the bag (its summary), if recording."""
        if self._bag is not None:
            self._bag.close()


def main(args: list[str] | None = None) -> int:
    """Console script ``synthetic_camera``."""
    return run_node(SyntheticCamera, 'synthetic_camera', args)


if __name__ == '__main__':
    sys.exit(main())
