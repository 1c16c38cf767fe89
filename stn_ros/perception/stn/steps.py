"""``stn_node``'s per-frame steps, shared with ``stn_replay``. No rclpy.

The node runs these on the messages its subscriptions get; ``stn_replay`` runs them on the messages of a bag
(duck-typed, decoded by ``mcap_ros2``), so a replay computes what the node would have published:
:class:`StnPipeline`: ``sensor_msgs/Image`` -> :class:`~stn_ros.perception.stn.frame.Frame`
(:meth:`~StnPipeline.decode`) -> ROIs, the camera's intrinsics for it, canonical crops
(:meth:`~StnPipeline.canonicalize`); :func:`stn_messages` makes ``~/rectified/image`` and
``~/rectified/transforms`` of them, :func:`debug_picture` ``~/debug/image``. What goes wrong is said to a
:class:`~stn_ros.perception.frame_report.FrameReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import ImageDecodeError, encode_image
from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.perception.frame_report import FrameReport
from stn_ros.perception.grasps.gripper import GripperConfig, metric_roi_side
from stn_ros.perception.stn.canonicalizer import CanonicalCrops, Canonicalizer, LoadedModel
from stn_ros.perception.stn.frame import Frame, decode_frame
from stn_ros.perception.stn.object_views import ObjectViews
from stn_ros.perception.stn.proposals import (
    ProposalConfig,
    auto_decimation,
    check_rois_inside,
    depth_proposals,
    full_frame_roi,
    intensity_proposals,
    order_and_limit,
    rois_inside,
)
from stn_ros.perception.stn.transforms_record import mark_work
from stn_ros.perception.visualize import crop_quadrilaterals, draw_quadrilaterals

BLIND_FRAMES = 'blind frames'
CAMERA_FRAME_MISMATCH = 'camera_info in another frame_id'
ROIS_OUTSIDE = 'rois skipped (outside the image)'
IDENTITY_FALLBACK = 'frames on identity fallback'


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


class StnPipeline:
    """``stn_node``'s compute for one image: decode, ROIs by ``crop_source``, intrinsics, canonical crops.

    ``values`` are the node's checked parameter values (one snapshot per frame); ``camera`` the last valid
    ``camera_info``'s intrinsics and its ``frame_id`` (None: none yet, or the last was invalid).

    ``device_proposals``: depth proposals fit the table plane and threshold the objects on the canonicalizer's
    device, on the frame's one upload, which the canonicalizer then samples from (None: on CUDA; a CPU keeps numpy).
    """

    def __init__(self, model: LoadedModel, canonicalizer: Canonicalizer, device_proposals: bool | None = None):
        self.model = model
        self.canonicalizer = canonicalizer
        self.device_proposals = canonicalizer.device.type == 'cuda' if device_proposals is None else device_proposals

    @classmethod
    def for_gripper(
        cls,
        model: LoadedModel,
        device: torch.device,
        output_size: tuple[int, int],
        gripper: GripperConfig,
        sampler: str = 'auto',
        inference_backend: str = 'torch',
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> StnPipeline:
        """The node's pipeline for ``gripper``: a metric-crop STN looks at ROIs scaled with its opening
        (:func:`~stn_ros.perception.grasps.gripper.metric_roi_side`); a frame without depth or camera_info gets the
        identity STN on its plain ROIs. ``sampler``: the device's (``auto``, as the node), or ``opencv``/``torch``;
        ``inference_backend``, ``threads``, ``cache_dir``: what runs the localization net (:class:`Canonicalizer`)."""
        roi_side_m = metric_roi_side(model.roi_side_m, gripper)
        canonicalizer = Canonicalizer(
            model.stn,
            device,
            output_size,
            roi_side_m,
            identity_fallback=True,
            sampler=sampler,
            inference_backend=inference_backend,
            threads=threads,
            cache_dir=cache_dir,
        )
        return cls(model, canonicalizer)

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
        shed_level: int = 0,
    ) -> CanonicalCrops | None:
        """The canonical crops of ``frame`` (decoded from ``msg``); None when its ROIs are bad (said to ``report``).

        ``detection_rois()`` gives the boxes of the detections with the image's stamp (``crop_source``
        ``detections``; raises ValueError when there are none). The record says the frame's work: ``shed_level`` (the
        node's load-shedding level, 0: full work), ``values``' ``hypotheses_per_object`` (capped at the model's K)
        and ``max_crops`` (:func:`~stn_ros.perception.stn.transforms_record.mark_work`).
        """
        with self.canonicalizer.graph_context.running():  # on CUDA the proposals too run on the node's stream
            intrinsics = self._camera_for(frame, msg, camera, report)
            view_camera = intrinsics if values['view_canonicalization'] else None
            try:
                rois, views = self._rois(frame, values, report, detection_rois, view_camera)
            except ValueError as exc:
                report.bad_input('bad_rois', str(exc))
                return None
            result = self.canonicalizer.process(
                frame, rois, intrinsics, values['output_size'], values['hypotheses_per_object'], views
            )
        hypotheses = min(values['hypotheses_per_object'], self.model.stn.localization.hypotheses)
        mark_work(result.record, shed_level, hypotheses, values['max_crops'])
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
        view_camera: PinholeCamera | None,
    ) -> tuple[np.ndarray, ObjectViews | None]:
        """The frame's ROIs by ``crop_source``, and with ``view_camera`` (depth proposals, view canonicalization on)
        each one's object in the view along the table's normal (None: today's crops)."""
        height, width = frame.size
        source = values['crop_source']
        if source == 'full_frame':
            return full_frame_roi(height, width), None
        if source == 'fixed_rois':
            rois = _inside(values['rois'], height, width, report)
            return rois[order_and_limit(rois, rois[:, 2] * rois[:, 3], values['max_crops'])], None
        if source == 'detections':
            if detection_rois is None:
                raise ValueError('crop_source detections: no detections input')
            rois = detection_rois()
            return rois[order_and_limit(rois, rois[:, 2] * rois[:, 3], values['max_crops'])], None
        config = proposal_config(values, width)
        if frame.is_depth:
            on_device = self.canonicalizer.frame_on_device(frame) if self.device_proposals else None
            found = depth_proposals(frame.pixels, config, values['max_crops'], on_device, view_camera)
            return found.rois, found.views
        return intensity_proposals(frame.grey(), config, values['max_crops']).rois, None


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
