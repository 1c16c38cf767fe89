"""The per-frame steps of ``stn_node`` and ``grasp_quality_node``, shared with ``stn_replay``. No rclpy.

The nodes run these on the messages their subscriptions get; ``stn_replay`` runs them on the messages of a
bag (duck-typed, decoded by ``mcap_ros2``), so a replay computes what the nodes would have published:

* :class:`StnPipeline`: ``sensor_msgs/Image`` -> :class:`Frame` (:meth:`~StnPipeline.decode`) -> ROIs, the
  camera's intrinsics for it, canonical crops (:meth:`~StnPipeline.canonicalize`); :func:`stn_messages`
  makes ``~/rectified/image`` and ``~/rectified/transforms`` of them, :func:`debug_picture` ``~/debug/image``.
* :func:`score_rectified`: ``~/rectified/image`` + ``~/rectified/transforms`` -> grasps (in the camera frame;
  :meth:`GraspFrame.in_frame` maps them into a target frame); :func:`grasp_messages` makes ``~/grasps`` and
  ``~/best_grasp`` of them, :func:`grasp_markers` ``~/grasp_markers``.

What goes wrong with a frame is said to a :class:`FrameReport`: ``bad_input(reason, message)`` for an input
that gets no output, ``event(name, count, message)`` for one that does but is worth counting. The nodes count
and log these (rate-limited, in ``/diagnostics``); the replay counts them and prints the totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stn_ros.bridge.image_codec import ImageDecodeError, decode_image, encode_image
from stn_ros.bridge.pointcloud_codec import PointCloudDecodeError, decode_pointcloud, encode_pointcloud
from stn_ros.core.package_files import package_file
from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.perception.camera import PinholeCamera
from stn_ros.perception.canonicalizer import CanonicalCrops, Canonicalizer, LoadedModel
from stn_ros.perception.frame import Frame, decode_frame
from stn_ros.perception.frames import RigidTransform, quaternion_multiply
from stn_ros.perception.grasp_image import GripperConfig
from stn_ros.perception.grasp_markers import grasp_marker_array
from stn_ros.perception.grasp_quality import (
    DEFAULT_GQCNN_WEIGHTS,
    GraspScorer,
    ScoredGrasps,
    grasp_orientation,
    grasps_to_publish,
)
from stn_ros.perception.gripper import metric_roi_side
from stn_ros.perception.proposals import (
    ProposalConfig,
    auto_decimation,
    check_rois_inside,
    depth_proposals,
    full_frame_roi,
    intensity_proposals,
    order_and_limit,
    rois_inside,
)
from stn_ros.perception.transforms_record import parse_record
from stn_ros.perception.visualize import crop_quadrilaterals, draw_quadrilaterals

BLIND_FRAMES = 'blind frames'
CAMERA_FRAME_MISMATCH = 'camera_info in another frame_id'
ROIS_OUTSIDE = 'rois skipped (outside the image)'
IDENTITY_FALLBACK = 'frames on identity fallback'


class FrameReport:
    """Counts what went wrong with frames (the replay's report; the nodes subclass it to count and log).

    ``bad_inputs[reason]``: inputs that got no output; ``events[name]``: counted events of frames that did.
    ``last_messages[reason or name]``: the latest message of each.
    """

    def __init__(self) -> None:
        self.bad_inputs: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.last_messages: dict[str, str] = {}

    def bad_input(self, reason: str, message: str) -> None:
        """An input that gets no output (or, for ``camera_info``, is not used), with the reason and what is wrong."""
        self.bad_inputs[reason] += 1
        self.last_messages[reason] = message

    def event(self, name: str, count: int, message: Callable[[], str]) -> None:
        """``count`` events ``name`` of a frame that gets its output; ``message()`` says what happened (an empty
        message says nothing)."""
        self.events[name] += count
        self.last_messages[name] = message() or self.last_messages.get(name, '')


def proposal_config(values: dict[str, Any], width: int | None = None) -> ProposalConfig:
    """The proposal settings of ``stn_node``'s parameter values for frames ``width`` pixels wide (the
    decimation of ``proposal_decimation`` 0, auto: :func:`auto_decimation`; 1 without a width)."""
    decimation = values.get('proposal_decimation', 1) or (auto_decimation(width) if width else 1)
    return ProposalConfig(
        min_area=values['proposal_min_area'],
        max_area=values['proposal_max_area'],
        margin=values['proposal_margin'],
        table_threshold=values['table_threshold'],
        decimation=decimation,
    )


def stamp_ns(header: Any) -> int:
    """A header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


class StnPipeline:
    """``stn_node``'s compute for one image: decode, ROIs by ``crop_source``, intrinsics, canonical crops.

    ``values`` are the node's checked parameter values (one snapshot per frame); ``camera`` the last valid
    ``camera_info``'s intrinsics and its ``frame_id`` (None: none yet, or the last was invalid).
    """

    def __init__(self, model: LoadedModel, canonicalizer: Canonicalizer):
        self.model = model
        self.canonicalizer = canonicalizer

    @classmethod
    def for_gripper(
        cls, model: LoadedModel, device: torch.device, output_size: tuple[int, int], gripper: GripperConfig
    ) -> StnPipeline:
        """The node's pipeline for ``gripper``: a metric-crop STN looks at ROIs scaled with its opening
        (:func:`~stn_ros.perception.gripper.metric_roi_side`); a frame without depth or camera_info gets the
        identity STN on its plain ROIs."""
        roi_side_m = metric_roi_side(model.roi_side_m, gripper)
        return cls(model, Canonicalizer(model.stn, device, output_size, roi_side_m, identity_fallback=True))

    def decode(self, msg: Any, report: FrameReport) -> Frame | None:
        """The frame of an Image message; None (said to ``report``) when it cannot be decoded."""
        try:
            return decode_frame(msg)
        except ImageDecodeError as exc:
            report.bad_input(exc.reason, str(exc))
            return None

    def canonicalize(
        self,
        frame: Frame,
        msg: Any,
        values: dict[str, Any],
        camera: tuple[PinholeCamera, str] | None,
        report: FrameReport,
        detection_rois: Callable[[], np.ndarray] | None = None,
    ) -> CanonicalCrops | None:
        """The canonical crops of ``frame`` (decoded from ``msg``); None when its ROIs are bad (said to ``report``).

        ``detection_rois()`` gives the boxes of the detections with the image's stamp (``crop_source``
        ``detections``; raises ValueError when there are none).
        """
        try:
            rois = self._rois(frame, values, report, detection_rois)
        except ValueError as exc:
            report.bad_input('bad_rois', str(exc))
            return None
        intrinsics = self._camera_for(frame, msg, camera, report)
        result = self.canonicalizer.process(
            frame, rois, intrinsics, values['output_size'], values['hypotheses_per_object']
        )
        if frame.is_depth and not frame.grey().any():  # every pixel 0 or NaN: no reading at all
            report.event(BLIND_FRAMES, 1, lambda: 'the camera is blind: a depth frame without a single reading')
        if result.fallback:
            report.event(
                IDENTITY_FALLBACK,
                1,
                lambda: (
                    f'{self.model.description} looks at {self.canonicalizer.roi_side_m * 100:.0f} cm crops of depth '
                    f'with camera_info ({result.fallback}): these crops are their plain ROIs (identity STN)'
                ),
            )
        return result

    def _camera_for(
        self, frame: Frame, msg: Any, camera: tuple[PinholeCamera, str] | None, report: FrameReport
    ) -> PinholeCamera | None:
        """The last camera_info's intrinsics for this frame (scaled to its size), or None when there are none
        that fit: then the frame gets no metric output (NaN xyz), counted and said, never wrong numbers."""
        if camera is None or not frame.is_depth:
            return None
        intrinsics, frame_id = camera
        if frame_id != msg.header.frame_id:
            report.event(
                CAMERA_FRAME_MISMATCH,
                1,
                lambda: (
                    f'camera_info is in frame {frame_id!r}, the image in {msg.header.frame_id!r}: '
                    'check the remappings (its intrinsics are used all the same)'
                ),
            )
        try:
            return intrinsics.for_image(*frame.size)
        except ValueError as exc:
            report.bad_input('camera_info_size', f'{exc}: no metric output for this frame')
            return None

    def _rois(
        self,
        frame: Frame,
        values: dict[str, Any],
        report: FrameReport,
        detection_rois: Callable[[], np.ndarray] | None,
    ) -> np.ndarray:
        height, width = frame.size
        source = values['crop_source']
        if source == 'full_frame':
            return full_frame_roi(height, width)
        if source == 'fixed_rois':
            rois = _inside(values['rois'], height, width, report)
            return rois[order_and_limit(rois, rois[:, 2] * rois[:, 3], values['max_crops'])]
        if source == 'detections':
            if detection_rois is None:
                raise ValueError('crop_source detections: no detections input')
            rois = detection_rois()
            return rois[order_and_limit(rois, rois[:, 2] * rois[:, 3], values['max_crops'])]
        config = proposal_config(values, width)
        if frame.is_depth:
            return depth_proposals(frame.pixels, config, values['max_crops']).rois
        return intensity_proposals(frame.grey(), config, values['max_crops']).rois


def _inside(rois: np.ndarray, height: int, width: int, report: FrameReport) -> np.ndarray:
    """The ROIs inside the frame; each one outside is skipped, counted and said (the rest still get crops)."""
    inside = rois_inside(rois, height, width)
    if not inside.all():

        def message() -> str:
            try:
                check_rois_inside(rois, height, width)
            except ValueError as exc:
                return f'{exc}: skipped ({int((~inside).sum())} of {len(rois)} ROIs)'
            return ''

        report.event(ROIS_OUTSIDE, int((~inside).sum()), message)
    return rois[inside]


def detection_boxes(detections: Any) -> np.ndarray:
    """``(N, 4)`` float32 ROIs (x, y, w, h) of a ``vision_msgs/Detection2DArray``'s boxes of positive size."""
    boxes = [
        (
            d.bbox.center.position.x - d.bbox.size_x / 2,
            d.bbox.center.position.y - d.bbox.size_y / 2,
            d.bbox.size_x,
            d.bbox.size_y,
        )
        for d in detections.detections
        if d.bbox.size_x > 0 and d.bbox.size_y > 0
    ]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def stn_messages(tile: np.ndarray, tile_encoding: str, record: np.ndarray, header: Any) -> tuple[Any, Any]:
    """``~/rectified/image`` and ``~/rectified/transforms`` of a frame's tile (:attr:`CanonicalCrops.tile`, in
    :attr:`Frame.tile_encoding`) and transforms record, with ``header`` (the source image's): rclpy
    ``sensor_msgs`` messages."""
    return encode_image(tile, tile_encoding, header=header), encode_pointcloud(record, header=header)


def debug_picture(frame: Frame, result: CanonicalCrops) -> np.ndarray:
    """``~/debug/image``'s bgr8 picture: the source with each crop's sampling quadrilateral."""
    return draw_quadrilaterals(frame.bgr8(), crop_quadrilaterals(result.homographies, result.output_size))


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
    published: np.ndarray  # what ~/grasps carries: each object's best-quality grasp, or every crop's
    frame_id: str | None = None  # the frame of x, y, z; None: the camera frame (the source image's frame_id)
    rotation: tuple[float, float, float, float] | None = None  # the camera frame's orientation in frame_id

    def in_frame(self, frame_id: str, camera_to_target: RigidTransform | None) -> GraspFrame:
        """These grasps in the frame ``frame_id``: ``x, y, z`` mapped by ``camera_to_target`` (camera-frame points
        -> ``frame_id``), and the poses turned by its rotation. ``camera_to_target`` None (its transform is
        unknown for this frame) gives NaN ``x, y, z``: no metric position, so no best pose and no markers.
        ``angle`` stays the grasp axis in the image, ``width`` the metres across the jaws (a length, the same in
        every frame)."""
        if self.frame_id is not None:
            raise ValueError(f'these grasps are in frame {self.frame_id!r} already')
        rotation = camera_to_target.rotation if camera_to_target is not None else (0.0, 0.0, 0.0, 1.0)
        return GraspFrame(
            ScoredGrasps(_record_in_frame(self.scored.record, camera_to_target), self.scored.best),
            _record_in_frame(self.published, camera_to_target),
            frame_id,
            rotation,
        )

    def _orientations(self, angles: np.ndarray) -> np.ndarray:
        """``(N, 4)`` grasp orientations (x, y, z, w) in this frame of image angles ``(N,)``."""
        orientations = np.array([grasp_orientation(float(a)) for a in angles], dtype=np.float64).reshape(-1, 4)
        return orientations if self.rotation is None else quaternion_multiply(self.rotation, orientations)

    @property
    def best_pose(self) -> tuple[tuple[float, float, float], tuple[float, float, float, float]] | None:
        """``~/best_grasp``'s position (metres) and orientation (x, y, z, w): None without a best grasp or
        without a metric position."""
        if self.scored.best is None:
            return None
        best = self.scored.record[self.scored.best]
        if not all(np.isfinite(best[k]) for k in 'xyz'):
            return None
        orientation = (
            grasp_orientation(float(best['angle']))
            if self.rotation is None
            else tuple(float(v) for v in self._orientations(np.array([best['angle']]))[0])
        )
        return tuple(float(best[k]) for k in 'xyz'), orientation

    @property
    def best_published(self) -> int | None:
        """The index in :attr:`published` of the best grasp (the same crop), None when there is none."""
        if self.scored.best is None:
            return None
        best = self.scored.record[self.scored.best]
        same = (self.published['object_id'] == best['object_id']) & (self.published['hypothesis'] == best['hypothesis'])
        return int(np.flatnonzero(same)[0]) if same.any() else None

    def published_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(N, 3)`` (NaN: no metric position) and orientations ``(N, 4)`` (x, y, z, w) of the grasps
        of :attr:`published`, in this frame, float64."""
        positions = np.stack([self.published[k] for k in 'xyz'], axis=1).astype(np.float64).reshape(-1, 3)
        return positions, self._orientations(self.published['angle'])


def _record_in_frame(record: np.ndarray, camera_to_target: RigidTransform | None) -> np.ndarray:
    """A copy of a grasp record (``GRASP_DTYPE``) with ``x, y, z`` mapped by ``camera_to_target`` (None: NaN)."""
    out = record.copy()
    xyz = np.stack([record[k] for k in 'xyz'], axis=1).astype(np.float64).reshape(-1, 3)
    mapped = camera_to_target.apply_points(xyz) if camera_to_target is not None else np.full_like(xyz, np.nan)
    out['x'], out['y'], out['z'] = mapped[:, 0], mapped[:, 1], mapped[:, 2]
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
        crops, record.homographies, camera, values['quality_threshold'], record.object_ids, record.hypotheses
    )
    return GraspFrame(scored, grasps_to_publish(scored.record, values['all_hypotheses']))


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
    (:func:`~stn_ros.perception.grasp_markers.grasp_marker_array`); ``header`` as in :func:`grasp_messages`."""
    positions, orientations = grasps.published_poses()
    return grasp_marker_array(
        _header_in(header, grasps.frame_id),
        positions,
        orientations,
        grasps.published['quality'],
        grasps.best_published,
        gripper,
    )
