"""``grasp_quality_node``'s per-frame steps, shared with ``stn_replay``. No rclpy.

:func:`score_rectified`: ``~/rectified/image`` + ``~/rectified/transforms`` -> grasps (in the camera frame;
:meth:`GraspFrame.in_frame` maps them into a target frame); :func:`grasp_messages` makes ``~/grasps`` and
``~/best_grasp`` of them, :func:`grasp_markers` ``~/grasp_markers``. What goes wrong is said to a
:class:`~stn_ros.perception.frame_report.FrameReport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import ImageDecodeError, decode_image
from stn_ros.bridge.pointcloud_codec import PointCloudDecodeError, decode_pointcloud, encode_pointcloud
from stn_ros.core.package_files import package_file
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.perception.frame_report import FrameReport
from stn_ros.perception.geometry.rigid_transforms import RigidTransform, quaternion_multiply
from stn_ros.perception.grasps.grasp_quality import (
    DEFAULT_GQCNN_WEIGHTS,
    QUATERNION_FIELDS,
    GraspScorer,
    ScoredGrasps,
    grasps_to_publish,
)
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.markers import grasp_marker_array
from stn_ros.perception.stn.transforms_record import parse_record


def load_gqcnn_model(weights: str) -> tuple[GQCNN, str, str | None]:
    """``grasp_quality_node``'s GQ-CNN of its ``weights`` parameter (empty: the shipped default), its description
    and a warning (None: nothing to warn about). Without shipped weights it is an untrained GQ-CNN, warned;
    ValueError (``CheckpointError``) for a file that is missing or not a GQ-CNN."""
    path = Path(weights) if weights else package_file('weights', DEFAULT_GQCNN_WEIGHTS)
    if not weights and not path.is_file():
        warning = (
            f'no trained GQ-CNN at {path}: using an untrained one (qualities are '
            'meaningless; train one, or set the "weights" parameter)'
        )
        return GQCNN().eval(), 'untrained GQ-CNN', warning
    if not path.is_file():
        raise ValueError(f'weights file {path} does not exist')
    model, _ = load_gqcnn(path)
    return model, f'GQ-CNN from {path}', None


@dataclass
class GraspFrame:
    """``grasp_quality_node``'s result for one frame, in the camera frame or (:meth:`in_frame`) a target frame."""

    scored: ScoredGrasps  # one grasp per crop, and the best at or above the threshold
    published: np.ndarray  # what ~/grasps carries, ranked best first: each object's best grasp, or every crop's
    frame_id: str | None = None  # the frame of the poses; None: the camera frame (the source image's frame_id)

    def in_frame(self, frame_id: str, camera_to_target: RigidTransform | None) -> GraspFrame:
        """These grasps in the frame ``frame_id``: their poses (``x, y, z`` and ``qx .. qw``) mapped by
        ``camera_to_target`` (camera frame -> ``frame_id``). ``camera_to_target`` None (its transform is unknown for
        this frame) gives NaN poses: no best pose and no markers. ``angle`` stays the grasp axis in the image,
        ``width`` the metres across the jaws (a length, the same in every frame)."""
        if self.frame_id is not None:
            raise ValueError(f'these grasps are in frame {self.frame_id!r} already')
        return GraspFrame(
            ScoredGrasps(_record_in_frame(self.scored.record, camera_to_target), self.scored.best, self.scored.blocked),
            _record_in_frame(self.published, camera_to_target),
            frame_id,
        )

    @property
    def best_pose(self) -> tuple[tuple[float, float, float], tuple[float, float, float, float]] | None:
        """``~/best_grasp``'s position (metres) and orientation (x, y, z, w): None without a best grasp or
        without a metric pose."""
        if self.scored.best is None:
            return None
        positions, orientations = record_poses(self.scored.record[self.scored.best : self.scored.best + 1])
        if not (np.isfinite(positions).all() and np.isfinite(orientations).all()):
            return None
        return tuple(float(v) for v in positions[0]), tuple(float(v) for v in orientations[0])

    @property
    def best_published(self) -> int | None:
        """The index in :attr:`published` of the best grasp (the same crop), None when there is none."""
        if self.scored.best is None:
            return None
        best = self.scored.record[self.scored.best]
        same = (self.published['object_id'] == best['object_id']) & (self.published['hypothesis'] == best['hypothesis'])
        return int(np.flatnonzero(same)[0]) if same.any() else None

    def published_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(N, 3)`` and orientations ``(N, 4)`` (x, y, z, w) of the grasps of :attr:`published`, in this
        frame, float64 (NaN: no metric pose)."""
        return record_poses(self.published)


def record_poses(record: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(N, 3)`` and orientations ``(N, 4)`` (x, y, z, w), float64, of a grasp record (``GRASP_DTYPE``)."""
    positions = np.stack([record[k] for k in 'xyz'], axis=1).astype(np.float64).reshape(-1, 3)
    orientations = np.stack([record[k] for k in QUATERNION_FIELDS], axis=1).astype(np.float64).reshape(-1, 4)
    return positions, orientations


def _record_in_frame(record: np.ndarray, camera_to_target: RigidTransform | None) -> np.ndarray:
    """A copy of a grasp record (``GRASP_DTYPE``) with its poses mapped by ``camera_to_target`` (None: NaN)."""
    out = record.copy()
    positions, orientations = record_poses(record)
    if camera_to_target is None:
        positions, orientations = np.full_like(positions, np.nan), np.full_like(orientations, np.nan)
    else:
        positions = camera_to_target.apply_points(positions)
        orientations = quaternion_multiply(camera_to_target.rotation, orientations)
    for index, name in enumerate('xyz'):
        out[name] = positions[:, index]
    for index, name in enumerate(QUATERNION_FIELDS):
        out[name] = orientations[:, index]
    return out


def score_rectified(
    scorer: GraspScorer,
    tile_msg: Any,
    record_msg: Any,
    camera: PinholeCamera | None,
    values: dict[str, Any],
    report: FrameReport,
) -> GraspFrame | None:
    """Grasps of one frame's ``~/rectified/image`` and ``~/rectified/transforms`` (paired by stamp) with the
    intrinsics of the source image (None: no metric grasps); None (said to ``report``) for a bad pair."""
    try:
        record = parse_record(decode_pointcloud(record_msg))
        tile = decode_image(tile_msg) if tile_msg.height else np.zeros((0, tile_msg.width), np.float32)
    except (ImageDecodeError, PointCloudDecodeError, ValueError) as exc:
        report.bad_input(getattr(exc, 'reason', 'bad_record'), str(exc))
        return None
    count = len(record.homographies)
    if tile_msg.encoding != '32FC1' or (count and tile.shape[0] % count):
        report.bad_input(
            'not_depth_tile',
            f'expected a 32FC1 tile of {count} crops, got {tile_msg.encoding} {tile_msg.height}x{tile_msg.width}',
        )
        return None
    crops = tile.reshape(count, -1, tile.shape[1]) if count else np.zeros((0, 32, 32), np.float32)
    scored = scorer.score(
        crops,
        record.homographies,
        camera,
        values['quality_threshold'],
        record.object_ids,
        record.hypotheses,
        record.normals,
    )
    return GraspFrame(scored, grasps_to_publish(scored.record, values['all_hypotheses'], scored.blocked))


def _header_in(header: Any, frame_id: str | None) -> Any:
    """``header`` (an rclpy ``std_msgs/Header``), or a copy of it in ``frame_id`` (None: ``header`` itself)."""
    if frame_id is None:
        return header
    from std_msgs.msg import Header

    return Header(stamp=header.stamp, frame_id=frame_id)


def grasp_messages(grasps: GraspFrame, header: Any) -> tuple[Any, Any | None]:
    """``~/grasps`` (rclpy ``PointCloud2``) and ``~/best_grasp`` (``PoseStamped``, None when there is none to
    publish) of one frame, with ``header`` (the source image's), its ``frame_id`` replaced by the grasps' frame
    when they are in a target frame (:meth:`GraspFrame.in_frame`)."""
    header = _header_in(header, grasps.frame_id)
    msg = encode_pointcloud(grasps.published, header=header)
    pose = grasps.best_pose
    if pose is None:
        return msg, None
    from geometry_msgs.msg import PoseStamped

    stamped = PoseStamped()
    stamped.header = header
    position, orientation = pose
    stamped.pose.position.x, stamped.pose.position.y, stamped.pose.position.z = position
    o = stamped.pose.orientation
    o.x, o.y, o.z, o.w = orientation
    return msg, stamped


def grasp_markers(grasps: GraspFrame, header: Any, gripper: GripperConfig | None = None) -> Any:
    """``~/grasp_markers`` (rclpy ``visualization_msgs/MarkerArray``) of one frame: a DELETEALL, then a gripper
    outline per grasp of ``~/grasps`` with a metric position, the best one highlighted
    (:func:`~stn_ros.perception.grasps.markers.grasp_marker_array`); ``header`` as in :func:`grasp_messages`."""
    positions, orientations = grasps.published_poses()
    return grasp_marker_array(
        _header_in(header, grasps.frame_id),
        positions,
        orientations,
        grasps.published['quality'],
        grasps.best_published,
        gripper,
        grasps.published['opening'],
    )
