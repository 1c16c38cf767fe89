"""``grasp_quality_node``: scores stn_node's canonical crops with the GQ-CNN and publishes grasps.

Subscribes ``rectified/image`` and ``rectified/transforms`` (remap them to stn_node's outputs), pairs
them by exact stamp (a bounded buffer; unpaired messages are counted and dropped), and ``camera_info``
(optional: metric grasps). Scores every crop and publishes ``~/grasps`` (PointCloud2, the best-quality crop
of each object, or every crop with ``all_hypotheses``; fields in :mod:`stn_ros.perception.grasp_quality`),
``~/best_grasp`` (PoseStamped, the best grasp over all crops at or above ``quality_threshold`` when it has a
metric position) and ``/diagnostics``. The callbacks only pair; one worker thread scores the latest complete
pair (latest wins, as in ``stn_node``), so scoring never holds up the inputs, and every loss is counted:
replaced before scoring, unpaired, lost before the node.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from stn_ros.bridge.image_codec import ImageDecodeError, decode_image
from stn_ros.bridge.pointcloud_codec import PointCloudDecodeError, decode_pointcloud, encode_pointcloud
from stn_ros.core import DeviceUnavailableError, device_memory_values, resolve_device
from stn_ros.core.package_files import package_file
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.perception.camera import PinholeCamera
from stn_ros.perception.grasp_quality import (
    DEFAULT_GQCNN_WEIGHTS,
    GraspScorer,
    grasp_orientation,
    grasps_to_publish,
)
from stn_ros.perception.transforms_record import TransformsRecord, parse_record
from stn_ros.ros.health import LogThrottle, NodeHealth
from stn_ros.ros.node_runtime import LatestWorker, apply_thread_budget, diagnostic_array, run_node
from stn_ros.ros.parameters import TORCH_THREADS, ParameterSet, ParameterSpec, StartupError, device_string

PARAMETERS = [
    ParameterSpec('device', 'auto', 'auto (CUDA if available), cpu, cuda, cuda:N', device_string, read_only=True),
    ParameterSpec('weights', '', 'GQ-CNN checkpoint; empty = the shipped default', read_only=True),
    ParameterSpec.number('quality_threshold', 0.5, 'a grasp below this quality is never the best grasp', 0.0, 1.0),
    ParameterSpec(
        'all_hypotheses', False, '~/grasps keeps every crop (every STN hypothesis), not only the best per object'
    ),
    ParameterSpec.integer(
        'pairing_buffer', 10, 'messages kept per input while waiting for their pair', 1, 100, read_only=True
    ),
    ParameterSpec.number('diagnostics_period', 1.0, 'seconds between /diagnostics messages', 0.1, 60.0, read_only=True),
    TORCH_THREADS,
]


def _stamp(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


UNPAIRED = 'unpaired dropped'
NO_GRASP = 'frames without a grasp above the threshold'


class GraspQualityNode(Node):
    def __init__(self, **kwargs):
        super().__init__('grasp_quality_node', **kwargs)
        self.parameters = ParameterSet(self, PARAMETERS)
        values = self.parameters.values
        apply_thread_budget(values['torch_threads'])
        try:
            device = resolve_device(values['device'])
            model, self.model_description = self._load(values['weights'])
        except (DeviceUnavailableError, ValueError) as exc:
            raise StartupError(str(exc)) from None
        self.scorer = GraspScorer(model, device)
        self._frames_without_grasp = 0  # a count, not a health event: a scene may have nothing to grasp
        self.health = NodeHealth(events=(UNPAIRED,))
        self._throttle = LogThrottle(5.0)
        self._camera: PinholeCamera | None = None
        self._tiles: OrderedDict = OrderedDict()
        self._records: OrderedDict = OrderedDict()
        self._pairing = threading.Lock()
        self._worker = LatestWorker(self, 'grasp_worker', self._process_pair, self.health, self._throttle)
        self.grasps_pub = self.create_publisher(PointCloud2, '~/grasps', 5)
        self.best_pub = self.create_publisher(PoseStamped, '~/best_grasp', 5)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Image, 'rectified/image', self._on_tile, 5)
        self.create_subscription(PointCloud2, 'rectified/transforms', self._on_record, 5)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, qos_profile_sensor_data)
        self.create_timer(values['diagnostics_period'], self._publish_diagnostics)
        self.get_logger().info(f'{self.model_description} on {device}')

    def _load(self, weights: str) -> tuple[GQCNN, str]:
        path = Path(weights) if weights else package_file('weights', DEFAULT_GQCNN_WEIGHTS)
        if not weights and not path.is_file():
            self.get_logger().warning(
                f'no trained GQ-CNN at {path}: using an untrained one (qualities are '
                'meaningless; train one, or set the "weights" parameter)'
            )
            return GQCNN().eval(), 'untrained GQ-CNN'
        if not path.is_file():
            raise ValueError(f'weights file {path} does not exist')
        model, _ = load_gqcnn(path)
        return model, f'GQ-CNN from {path}'

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = PinholeCamera.from_camera_info(msg)
        except ValueError as exc:
            self._camera = None  # no metric grasps from intrinsics that are not valid (nor from older ones)
            self._bad('camera_info', str(exc))

    def _on_tile(self, msg: Image, info: MessageInfo) -> None:
        self.health.on_message_info(info, 'rectified/image')
        self._pair(self._tiles, msg)

    def _on_record(self, msg: PointCloud2, info: MessageInfo) -> None:
        self.health.on_message_info(info, 'rectified/transforms')
        self._pair(self._records, msg)

    def _pair(self, buffer: OrderedDict, msg) -> None:
        """Store ``msg``; a frame whose tile and record are both here goes to the worker (latest wins)."""
        stamp = _stamp(msg)
        with self._pairing:
            if stamp not in self._tiles and stamp not in self._records:
                self.health.on_input()  # a frame is a tile and its record: count it once, when the first arrives
            buffer[stamp] = msg
            while len(buffer) > self.parameters.values['pairing_buffer']:
                buffer.popitem(last=False)  # its pair never came: counted apart from latest-wins drops
                self.health.on_event(UNPAIRED)
            if stamp not in self._tiles or stamp not in self._records:
                return
            pair = self._tiles.pop(stamp), self._records.pop(stamp)
        self._worker.submit(pair)

    def _process_pair(self, pair: tuple[Image, PointCloud2]) -> None:
        self._process(*pair)

    def _bad(self, reason: str, message: str) -> None:
        self.health.on_bad_input(reason)
        if self._throttle.allow(reason):
            self.get_logger().warning(f'bad input ({reason}): {message}')

    def _process(self, tile_msg: Image, record_msg: PointCloud2) -> None:
        started = time.perf_counter()
        try:
            record = parse_record(decode_pointcloud(record_msg))
            tile = decode_image(tile_msg) if tile_msg.height else np.zeros((0, tile_msg.width), np.float32)
        except (ImageDecodeError, PointCloudDecodeError, ValueError) as exc:
            self._bad(getattr(exc, 'reason', 'bad_record'), str(exc))
            return
        count = len(record.homographies)
        if tile_msg.encoding != '32FC1' or (count and tile.shape[0] % count):
            self._bad(
                'not_depth_tile',
                f'expected a 32FC1 tile of {count} crops, got {tile_msg.encoding} {tile_msg.height}x{tile_msg.width}',
            )
            return
        crops = tile.reshape(count, -1, tile.shape[1]) if count else np.zeros((0, 32, 32), np.float32)
        self._score_and_publish(crops, record, tile_msg.header)
        stamp = tile_msg.header.stamp.sec * 10**9 + tile_msg.header.stamp.nanosec
        latency = self.health.stamp_latency_ms(stamp, self.get_clock().now().nanoseconds)
        self.health.on_processed((time.perf_counter() - started) * 1e3, latency)

    def _score_and_publish(self, crops: np.ndarray, record: TransformsRecord, header) -> None:
        camera = self._camera  # camera_info describes the source image the H map into
        values = self.parameters.values
        scored = self.scorer.score(
            crops, record.homographies, camera, values['quality_threshold'], record.object_ids, record.hypotheses
        )
        self.grasps_pub.publish(
            encode_pointcloud(grasps_to_publish(scored.record, values['all_hypotheses']), header=header)
        )
        if scored.best is None:
            self._frames_without_grasp += 1
        elif np.isfinite(scored.record['z'][scored.best]):
            best = scored.record[scored.best]
            pose = PoseStamped()
            pose.header = header
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(best[k]) for k in 'xyz')
            o = pose.pose.orientation
            o.x, o.y, o.z, o.w = grasp_orientation(float(best['angle']))
            self.best_pub.publish(pose)

    def _publish_diagnostics(self) -> None:
        device = str(self.scorer.device)
        report = self.health.report(
            device=device,
            model=self.model_description,
            **{NO_GRASP: str(self._frames_without_grasp)},
            **device_memory_values(self.scorer.device),
        )
        self.diagnostics_pub.publish(diagnostic_array(self, 'grasp quality', report, device))

    def stop(self) -> None:
        self._worker.stop()


def main(args: list[str] | None = None) -> int:
    """Console script ``grasp_quality_node``."""
    return run_node(GraspQualityNode, 'grasp_quality_node', args)


if __name__ == '__main__':
    sys.exit(main())
