"""Scoring canonical crops with the GQ-CNN and turning them into grasps (no rclpy).

``~/grasps`` record, one point per object of ``stn_node``'s tile (its best-quality crop), with ``all_hypotheses`` one
point per crop, ranked: best quality first (:func:`ranked`; ties and NaN qualities as there). Fields float32 unless
said:

==========  ====================================================================================
field       meaning
==========  ====================================================================================
quality     GQ-CNN probability that the grasp succeeds, in [0, 1]
u, v        grasp centre in source pixels (the crop centre mapped through ``H``)
x, y, z     the gripper frame's origin (the fingertips' centre at the gripper depth), metres in the camera
            frame (NaN without depth and camera_info)
angle       grasp axis in the image, radians in [-pi/2, pi/2) (the crop's +x mapped through ``H``)
width       object width across the jaws at the grasp, metres (NaN without camera_info)
opening     metres between the jaws' inner faces to open them to before the approach: the widest, up to the
            gripper's, at which they reach the grasp without hitting a neighbour or the table
            (:mod:`~stn_ros.perception.grasps.jaw_clearance`; NaN: no surface under the crop's centre)
qx ... qw   the gripper frame's orientation in the same frame as x, y, z, a unit quaternion (x, y, z, w):
            z = the approach (the table's normal, or the optical axis without one), x = the closing axis,
            y = z x x (:mod:`~stn_ros.perception.grasps.grasp_pose`; NaN where x, y, z are)
object_id   int32: the crop's object (the transforms record's ``object_id``)
hypothesis  int32: the crop's STN hypothesis, 0 = the best-scored (the record's ``hypothesis``)
rank        int32: the grasp's place in the frame, 0 = the best (highest quality); the point's index
==========  ====================================================================================

A crop whose jaws hit something at every opening is *blocked*: it is never the best grasp and ``~/grasps`` leaves it
out (:class:`ScoredGrasps` ``.blocked``; ``avoid_collisions`` off: none is).

``object_id`` and ``hypothesis`` name the crop, so a consumer that wants the tile order back sorts by them
(:func:`in_tile_order`).

Sample and rank (Dex-Net's policy with the STN as its proposal distribution): ``stn_node`` proposes an
object's best-scored STN hypotheses as crops, the GQ-CNN scores each, and :func:`best_per_object` keeps
the best-quality one of each object that is not blocked.

The gripper depth of a crop (where the fingertips go) is
:func:`~stn_ros.perception.grasps.gripper_depth.gripper_depths`: the finger depth below the surface at the crop's
centre, deeper on tall round objects, never into the table beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core import inference_module
from stn_ros.core.cuda_graphs import CaptureContext, GraphedFunction, buckets_up_to
from stn_ros.models.backends import QualityNet
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, crop_axis, normalize_grasp_images
from stn_ros.perception.grasps.grasp_pose import GraspFrames, grasp_frames, top_down_images
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import crop_surface_depths, gripper_depths
from stn_ros.perception.grasps.jaw_clearance import JawOpenings, clear_openings

DEFAULT_GQCNN_WEIGHTS = 'gqcnn.pt'
"""The shipped GQ-CNN in ``weights/``: what ``grasp_quality_node`` loads when its ``weights`` is empty."""
PREPARED_CROPS = 64
"""The GQ-CNN's CUDA graphs are captured for batches of up to this many crops (``stn_node``'s default ``max_crops``
16 x ``hypotheses_per_object`` 4); a frame with more is scored op by op (counted)."""
QUATERNION_FIELDS = ('qx', 'qy', 'qz', 'qw')
"""The grasp's orientation fields: the gripper frame as a unit quaternion in the frame of ``x, y, z``."""
GRASP_FIELDS = ('quality', 'u', 'v', 'x', 'y', 'z', 'angle', 'width', 'opening', *QUATERNION_FIELDS)
"""The float32 fields of a grasp; :data:`GRASP_DTYPE` adds the int32 ``object_id`` and ``hypothesis``."""
GRASP_DTYPE = np.dtype(
    [(name, np.float32) for name in GRASP_FIELDS] + [('object_id', np.int32), ('hypothesis', np.int32)]
)
RANKED_GRASP_DTYPE = np.dtype(GRASP_DTYPE.descr + [('rank', np.int32)])
"""``~/grasps``' record: :data:`GRASP_DTYPE` and the int32 ``rank`` (0 = the frame's best)."""


@dataclass
class ScoredGrasps:
    record: np.ndarray  # structured, GRASP_DTYPE: one grasp per crop, in tile order
    best: int | None  # index of the best grasp at or above the threshold (not blocked), None when there is none
    blocked: np.ndarray | None = None  # (N,) bool: the jaws hit something at every opening (None: none is)

    @property
    def blocked_count(self) -> int:
        """How many crops are blocked (left out of ``~/grasps``)."""
        return 0 if self.blocked is None else int(np.count_nonzero(self.blocked))


def best_per_object(quality: np.ndarray, object_ids: np.ndarray) -> np.ndarray:
    """Indices of each object's best-quality crop, objects in order of their first crop (tile order).

    A tie goes to the earlier crop (the better-scored hypothesis); a NaN quality is never the best of an
    object that has another.
    """
    quality = np.where(np.isnan(quality), -np.inf, np.asarray(quality, np.float64))
    object_ids = np.asarray(object_ids)
    _, first = np.unique(object_ids, return_index=True)
    best = []
    for start in np.sort(first):
        crops = np.flatnonzero(object_ids == object_ids[start])
        best.append(crops[np.argmax(quality[crops])])  # argmax: the first of equal maxima
    return np.asarray(best, dtype=np.intp)


def rank_order(quality: np.ndarray) -> np.ndarray:
    """Indices that put grasps best first: descending ``quality``, a NaN quality after every number, equal qualities
    in their given order (a stable sort: in tile order, the earlier object and the better-scored hypothesis first).

    >>> rank_order(np.array([0.2, np.nan, 0.9, 0.2])).tolist()
    [2, 0, 3, 1]
    """
    quality = np.asarray(quality, np.float64)
    if quality.ndim != 1:
        raise ValueError(f'quality must be a 1-D array, got shape {quality.shape}')
    return np.argsort(-np.where(np.isnan(quality), -np.inf, quality), kind='stable')


def ranked(record: np.ndarray) -> np.ndarray:
    """A grasp record (:data:`GRASP_DTYPE`, any order) best first (:func:`rank_order`), as :data:`RANKED_GRASP_DTYPE`
    with ``rank`` = 0, 1, ... (a record with ``rank`` already is ranked anew).

    With the tile order as given, equal qualities keep it, so ``rank`` 0 is the crop ``ScoredGrasps.best`` picks
    (``np.argmax``: the first of equal maxima) whenever that one reaches the threshold.
    """
    order = rank_order(record['quality'])
    out = np.zeros(len(record), RANKED_GRASP_DTYPE)
    for name in GRASP_DTYPE.names:
        out[name] = record[name][order]
    out['rank'] = np.arange(len(record))
    return out


def in_tile_order(record: np.ndarray) -> np.ndarray:
    """A ``~/grasps`` record in ``stn_node``'s tile order (``object_id``, then ``hypothesis``), as it was published
    before it was ranked: for consumers that pair its points with the tile's crops or the transforms record."""
    return record[np.lexsort((record['hypothesis'], record['object_id']))]


def grasps_to_publish(
    record: np.ndarray, all_hypotheses: bool = False, blocked: np.ndarray | None = None
) -> np.ndarray:
    """What ``~/grasps`` carries of a frame's grasps ``record`` (one per crop, tile order): each object's best-quality
    grasp (:func:`best_per_object`), or every crop's with ``all_hypotheses``, :func:`ranked` best first; never a
    ``blocked`` one (``(N,)`` bool, None: none is), so an object whose every crop is blocked has none."""
    if blocked is not None:
        record = record[~np.asarray(blocked, bool)]
    return ranked(record if all_hypotheses else record[best_per_object(record['quality'], record['object_id'])])


def widths_m(crops: np.ndarray, z: np.ndarray, metres_per_crop_pixel: np.ndarray) -> np.ndarray:
    """Width of the object under the crop's centre row, along the grasp axis (``+x``), in metres.

    Object pixels are those nearer than the fingertips' plane (depth < z); the run through the centre
    column is measured. NaN when the centre is not on the object or the scale is unknown.
    """
    crops = np.asarray(crops)
    out = np.full(len(crops), np.nan)
    if not len(crops):
        return out
    # All crops at once (a loop over 64 crops took 0.34 ms of grasp_quality_node's frame, this 0.02 ms): argmin of a
    # run's mask finds its first non-object pixel each side of the centre column.
    rows = crops[:, crops.shape[1] // 2]
    solid = np.isfinite(rows) & (rows < np.asarray(z)[:, None])
    middle, width = crops.shape[2] // 2, crops.shape[2]
    leftward, rightward = solid[:, middle::-1], solid[:, middle:]
    left = np.where(leftward.all(axis=1), 0, middle - np.argmin(leftward, axis=1) + 1)
    right = np.where(rightward.all(axis=1), width, middle + np.argmin(rightward, axis=1))
    scale = np.asarray(metres_per_crop_pixel, dtype=np.float64)
    measured = solid[:, middle] & np.isfinite(scale)
    out[measured] = (right - left)[measured] * scale[measured]
    return out


class GraspScorer:
    """Scores a frame's canonical depth crops with a GQ-CNN on one device.

    On CUDA its work runs on a stream of its own and the GQ-CNN replays a graph per batch bucket (the crops padded: a
    few launches a frame), captured by :meth:`prepare_graphs` (:mod:`stn_ros.core.cuda_graphs`).

    The GQ-CNN runs once per frame, on all of its crops as one batch, behind ``inference_backend``
    (:class:`~stn_ros.models.backends.QualityNet`: ``torch``, ``onnxruntime`` on a CPU, or ``auto``; ``threads`` the
    onnxruntime backend's intra-op threads, ``cache_dir`` where it keeps its export, None: in memory).

    ``avoid_collisions``: each crop's jaws open as wide as clears its neighbours and the table, and a crop no opening
    clears is blocked (:mod:`~stn_ros.perception.grasps.jaw_clearance`); off, every crop opens fully and none is.
    """

    def __init__(
        self,
        model: GQCNN,
        device: torch.device,
        gripper: GripperConfig | None = None,
        inference_backend: str = 'torch',
        threads: int | None = None,
        cache_dir: Path | None = None,
        avoid_collisions: bool = True,
    ):
        self.model = inference_module(model, device)
        self.quality_net = QualityNet(self.model, inference_backend, device, threads, cache_dir)
        self.device = device
        self.gripper = gripper or GripperConfig()
        self.avoid_collisions = avoid_collisions
        self.graph_context = CaptureContext.for_device(device)
        self.frames_op_by_op = 0  # frames (on CUDA) scored op by op for want of a graph
        self._quality = GraphedFunction(
            self._model_quality, device.type == 'cuda', batched=(0, 1), context=self.graph_context
        )

    def _from_above(
        self, crops: np.ndarray, homographies: np.ndarray, camera: PinholeCamera | None, normals: np.ndarray | None
    ) -> tuple[GraspFrames, np.ndarray]:
        """The crops' gripper frames, and the crops as seen from straight above their grasps: a crop canonicalized to a
        table normal (finite ``normals`` row) is :func:`top_down_images` of it, what the GQ-CNN was trained on and the
        gripper-depth rule reads; the others as they are."""
        if camera is None:
            return GraspFrames.unknown(len(crops)), crops
        frames = grasp_frames(homographies, crops.shape[1:], crop_surface_depths(crops), camera, normals)
        oblique = np.zeros(len(crops), bool) if normals is None else np.isfinite(normals).all(axis=1)
        if not oblique.any():
            return frames, crops
        crops = np.array(crops, dtype=np.float32)
        seen = frames.subset(oblique)
        columns = seen.columns(crops[oblique], np.asarray(homographies)[oblique], camera)
        crops[oblique] = top_down_images(crops[oblique], columns, seen.metres_per_crop_pixel)
        return frames, crops

    def _model_quality(self, images: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.quality_net.quality(images, z),)

    @property
    def cuda_graphs(self) -> bool:
        return self._quality.enabled and self.graph_context.can_capture

    @property
    def graphs_captured(self) -> int:
        return self._quality.captured

    @property
    def graph_failures(self) -> list[str]:
        return [self._quality.failure] if self._quality.failure else []

    @torch.no_grad()
    def prepare_graphs(self, max_crops: int = PREPARED_CROPS) -> int:
        """Capture the GQ-CNN's CUDA graphs for batches of 1 to ``max_crops`` crops (every bucket up to it); returns the
        number held (0 off CUDA)."""
        size = CANONICAL_SIZE
        with self.graph_context.running():
            for bucket in buckets_up_to(max_crops):
                images = torch.zeros(bucket, 1, size, size, device=self.device)
                self._quality.prepare(images, torch.full((bucket,), 0.5, device=self.device))
        self.graph_context.mark_prepared()
        return self._quality.captured

    @torch.no_grad()
    def score(
        self,
        crops: np.ndarray,
        homographies: np.ndarray,
        camera: PinholeCamera | None,
        threshold: float,
        object_ids: np.ndarray | None = None,
        hypotheses: np.ndarray | None = None,
        normals: np.ndarray | None = None,
    ) -> ScoredGrasps:
        """Grasps of crops ``(N, h, w)`` (metres along the approach, NaN = no reading) with their ``H``
        ``(N, 3, 3)``, one per crop.

        ``object_ids``, ``hypotheses`` and ``normals`` (the approach each crop was canonicalized to, ``(N, 3)``, NaN
        rows or None: the optical axis) are the transforms record's; the first two default to one crop per object.
        The best grasp is the best over all crops.
        """
        count = len(crops)
        record = np.zeros(count, dtype=GRASP_DTYPE)
        record['object_id'] = np.arange(count) if object_ids is None else object_ids
        record['hypothesis'] = 0 if hypotheses is None else hypotheses
        if count == 0:
            return ScoredGrasps(record, None)
        frames, crops = self._from_above(crops, homographies, camera, normals)
        jaws = self._openings(crops)
        z = jaws.z
        images = crops
        if crops.shape[1:] != (CANONICAL_SIZE, CANONICAL_SIZE):  # the GQ-CNN was trained on 32x32
            images = np.stack(
                [cv2.resize(c, (CANONICAL_SIZE, CANONICAL_SIZE), interpolation=cv2.INTER_NEAREST) for c in crops]
            )
        images = normalize_grasp_images(images, np.nan_to_num(z, nan=0.0))
        op_by_op = self._quality.op_by_op
        with self.graph_context.running():
            (quality,) = self._quality(
                torch.from_numpy(images)[:, None].to(self.device),
                torch.from_numpy(np.nan_to_num(z, nan=0.0).astype(np.float32)).to(self.device),
            )
            quality = quality.cpu().numpy()
        self.frames_op_by_op += self._quality.op_by_op > op_by_op
        quality = np.where(np.isfinite(z), quality, 0.0)  # no surface seen: no grasp
        centres, angles = crop_axis(homographies)
        record['quality'], record['u'], record['v'], record['angle'] = quality, centres[:, 0], centres[:, 1], angles
        poses = frames.poses(z)
        for index, name in enumerate('xyz'):
            record[name] = poses.positions[:, index]
        for index, name in enumerate(QUATERNION_FIELDS):
            record[name] = poses.quaternions[:, index]
        record['width'] = widths_m(crops, z, poses.metres_per_crop_pixel)
        record['opening'] = jaws.opening
        blocked = jaws.blocked
        above = np.flatnonzero((quality >= threshold) & ~blocked)
        best = int(above[np.argmax(quality[above])]) if len(above) else None
        return ScoredGrasps(record, best, blocked)

    def _openings(self, crops: np.ndarray) -> JawOpenings:
        """The crops' jaw openings and gripper depths: the widest clear ones, or (``avoid_collisions`` off) the full
        opening wherever a surface is seen."""
        if self.avoid_collisions:
            return clear_openings(crops, self.gripper)
        z = gripper_depths(crops, self.gripper)
        return JawOpenings(np.where(np.isfinite(z), self.gripper.max_opening, np.nan), z)
