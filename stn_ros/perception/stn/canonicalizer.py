"""The canonicalizer: a frame and its ROIs -> canonical crops, their transforms record and a tile.

This is all the node's compute, kept free of rclpy so that tests and benchmarks run it directly.
On the CPU the crops are sampled by OpenCV from the published ``H`` (fast); on CUDA by torch's
``grid_sample`` (the same pixels within OpenCV's 1/32-pixel interpolation steps, tested).

View canonicalization (a depth frame with intrinsics and each object's
:class:`~stn_ros.perception.stn.object_views.ObjectViews`, i.e. a table plane): each object is cropped as a camera
at the same centre looking along the table's normal sees it. Its ROI is a square in that view's pixels around its
grasp point (``roi_side_m`` at its top's depth along the normal), mapped to the source by ``K R K^-1``, so each crop's
``H`` is projective and still one resampling of the source; the localization net's small crops and the canonical
crops then hold metres along the normal, ``crop(p) = source(H p) * (n . K^-1 H p)`` (``H p`` dehomogenized). What
lies outside the source stays NaN (no reading); a rotation about the camera's centre does not change what hides what,
so where a camera above would see the table beside an object's near side, the crop shows that side as the oblique
camera saw it. A non-linear family (TPS) gets the same: its spline's grid composed with the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core import (
    CropTransforms,
    SpatialTransformer,
    check_roi_sizes,
    crop_transforms,
    inference_module,
    load_spatial_transformer,
    roi_matrix,
    sample_crops_opencv,
    sample_grids,
)
from stn_ros.core.crops import linear_crop_transforms, sample_localization_crops, scale_by_field
from stn_ros.core.cuda_graphs import CaptureContext, GraphedFunction, PinnedUpload, buckets_up_to, to_host
from stn_ros.core.families import homography_grid, pixel_frames
from stn_ros.core.package_files import package_file
from stn_ros.core.stage_clock import StageClock
from stn_ros.models.backends import Localizer
from stn_ros.perception.geometry.camera import depth_at, metric_rois
from stn_ros.perception.geometry.table_view import points_at_normal_depth
from stn_ros.perception.stn.frame import Frame
from stn_ros.perception.stn.object_views import FrameView, ObjectViews, normal_depth_factors
from stn_ros.perception.stn.transforms_record import build_record, crop_centres

DEFAULT_WEIGHTS = 'grasp_stn.pt'
SAMPLERS = ('auto', 'opencv', 'torch')
MODALITIES = ('depth', 'intensity')


@dataclass
class LoadedModel:
    """A Spatial Transformer with what the node reports about it."""

    stn: SpatialTransformer
    modality: str  # what the localization net was trained on: 'depth' or 'intensity'
    description: str  # for logs and diagnostics
    warning: str | None = None
    roi_side_m: float | None = None  # the net was trained on square crops this many metres wide


def identity_model() -> SpatialTransformer:
    """The untrained default: similarity family, identity-initialised, 32x32 grey localization input."""
    return SpatialTransformer('similarity', in_channels=1, localization_size=(32, 32), output_size=(32, 32))


def load_model(weights: str) -> LoadedModel:
    """The STN of ``weights`` (a checkpoint path); empty means the shipped default.

    Raises ``CheckpointError`` for a bad file and ValueError for a checkpoint the node cannot use.
    """
    path = Path(weights) if weights else package_file('weights', DEFAULT_WEIGHTS)
    if not weights and not path.is_file():
        return LoadedModel(
            identity_model(),
            'depth',
            'identity-initialised similarity STN (untrained)',
            warning=f'no trained weights at {path}: using an identity-initialised STN, '
            'so each crop is its ROI (train one, or set the "weights" parameter)',
        )
    stn, metadata = load_spatial_transformer(path)
    if stn.in_channels != 1:
        raise ValueError(
            f'weights file {path} has a {stn.in_channels}-channel localization net; '
            'the node feeds it one grey/depth channel'
        )
    modality = metadata.get('modality', 'depth')
    if modality not in MODALITIES:
        raise ValueError(f'weights file {path} names modality {modality!r}; expected one of {MODALITIES}')
    roi_side_m = metadata.get('roi_side_m')
    if roi_side_m and (
        isinstance(roi_side_m, bool) or not isinstance(roi_side_m, (int, float)) or not 0 < roi_side_m < float('inf')
    ):
        raise ValueError(f'weights file {path} names roi_side_m {roi_side_m!r}; expected a positive number of metres')
    return LoadedModel(
        stn, modality, f'{stn.family.name} STN from {path}', roi_side_m=float(roi_side_m) if roi_side_m else None
    )


class MissingCameraInfo(ValueError):
    """A metric-crop STN got a frame it cannot scale (no depth or no camera_info)."""


def tile_crops(crops: np.ndarray) -> np.ndarray:
    """Crops ``(N, h, w[, C])`` stacked vertically into ``(N * h, w[, C])`` (crop i at rows i*h..)."""
    return crops.reshape((-1,) + crops.shape[2:])


@dataclass
class CanonicalCrops:
    """The result for one frame, in tile order (object-major: each object's hypotheses, best-scored first)."""

    crops: np.ndarray  # (N, h, w[, C]): depth float32 metres (NaN no reading), else input dtype
    output_size: tuple[int, int]  # (h, w) the crops and their H were made for
    transforms: CropTransforms  # on the canonicalizer's device
    homographies: np.ndarray  # (N, 3, 3) float64 on the host: crop pixel -> source pixel
    record: np.ndarray  # structured transforms record (stn_ros.perception.stn.transforms_record)
    timings_ms: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None  # why the identity STN stood in for a metric-crop STN (None: it did not)
    hypotheses_per_object: int = 1  # crops per object (object-major): what was asked, clamped to the model's K

    @property
    def tile(self) -> np.ndarray:
        return tile_crops(self.crops)


class Canonicalizer:
    """Runs one STN over the ROIs of each frame on one device.

    Args:
        stn: the Spatial Transformer (one input channel).
        device: where the localization net (and, on CUDA, the sampling) runs.
        output_size: ``(h, w)`` of each canonical crop (a frame may ask for another, see :meth:`process`).
        roi_side_m: when the STN was trained on metric crops (the grasp canonicalizer), each ROI is
            replaced by the square of this many metres around its centre (needs depth and intrinsics).
        identity_fallback: for such an STN, a frame without depth or intrinsics gets the identity STN
            on its plain ROIs (each crop is its ROI; the result says why) instead of
            :class:`MissingCameraInfo`.
        sampler: how crops are sampled from the source: ``opencv`` (``warpPerspective`` from the published
            ``H``, on the host), ``torch`` (``grid_sample`` on the device) or ``auto`` (OpenCV on a CPU, where
            it is faster, torch on CUDA).
        cuda_graphs: on CUDA, replay the localization of a linear-family STN and the building of its crops'
            grids from CUDA graphs (:mod:`stn_ros.core.cuda_graphs`), batches padded to fixed sizes, captured by
            :meth:`prepare_graphs`; the frame goes to the device once, through a pinned buffer. No effect on a CPU.
        inference_backend: what runs the localization net (:mod:`stn_ros.models.backends`): ``torch``,
            ``onnxruntime`` (a CPU only) or ``auto``; the rest of the frame stays torch/OpenCV. The identity fallback
            (zero weights: its output is its bias) always runs torch.
        threads: the onnxruntime backend's intra-op threads (the node's budget; None: torch's count).
        cache_dir: where the onnxruntime backend keeps its export (None: exported in memory).

    On CUDA its work runs on a stream of its own (:class:`~stn_ros.core.cuda_graphs.CaptureContext`), where its
    graphs are captured, into one memory pool of its own.
    """

    def __init__(
        self,
        stn: SpatialTransformer,
        device: torch.device,
        output_size: tuple[int, int],
        roi_side_m: float | None = None,
        identity_fallback: bool = False,
        sampler: str = 'auto',
        cuda_graphs: bool = True,
        inference_backend: str = 'torch',
        threads: int | None = None,
        cache_dir: Path | None = None,
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f'sampler must be one of {", ".join(SAMPLERS)}, got {sampler!r}')
        self.sampler = ('opencv' if device.type == 'cpu' else 'torch') if sampler == 'auto' else sampler
        self.roi_side_m = roi_side_m
        self.stn = inference_module(stn, device)
        self.localizer = Localizer(self.stn, inference_backend, device, threads, cache_dir)
        self.device = device
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self._fallback = inference_module(identity_model(), device) if identity_fallback and roi_side_m else None
        self.cuda_graphs = cuda_graphs and device.type == 'cuda'
        self.graph_context = CaptureContext.for_device(device)
        self.frames_op_by_op = 0  # frames (on CUDA, graphs on) with a step run op by op for want of a graph
        self._upload = PinnedUpload(device)
        self._uploaded: tuple[Frame, torch.Tensor] | None = None  # the frame in hand and its pixels on the device
        self._graphs: dict[tuple, GraphedFunction] = {}
        self._frames: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def frame_on_device(self, frame: Frame) -> torch.Tensor:
        """``frame.pixels`` on the device, uploaded once per frame: depth proposals on the device
        (:func:`~stn_ros.perception.stn.proposals.depth_proposals`) and then :meth:`process` share the one copy."""
        if self._uploaded is None or self._uploaded[0] is not frame:
            self._uploaded = (frame, self._upload(frame.pixels))
        return self._uploaded[1]

    def process(
        self,
        frame: Frame,
        rois: np.ndarray,
        camera: PinholeCamera | None = None,
        output_size: tuple[int, int] | None = None,
        hypotheses: int = 1,
        views: ObjectViews | None = None,
    ) -> CanonicalCrops:
        """Canonical crops of ``rois`` ``(N, 4)`` (x, y, w, h in source pixels) from ``frame``.

        ``views``: each ROI's object in the view along the table's normal (the depth proposals'); with a depth frame
        and ``camera`` its crops are canonicalized to the view (see the module docstring), the record's normal is the
        table's and its ``x, y, z`` the point seen at the crop centre (the grasp point when the centre is on the top);
        otherwise (None, no ``camera``, an intensity frame) today's crops.

        ``output_size`` ``(h, w)`` overrides the canonicalizer's for this frame; the crops, their ``H`` and
        the record are all made for the one size, read once. ``hypotheses`` is the crops per ROI: its
        best-scored STN hypotheses in descending score (clamped to the model's K; the identity fallback has
        one), object-major, so N x that many crops; with 1, one crop per ROI, the best-scored hypothesis.
        ``timings_ms`` of the result holds ``localization`` (grey view, small crops, the net) and
        ``sampling`` (the canonical crops from the source).
        """
        op_by_op = self._op_by_op_calls()
        with self.graph_context.running():
            result = self._process(frame, rois, camera, output_size, hypotheses, views)
        if self._op_by_op_calls() > op_by_op:
            self.frames_op_by_op += 1
        return result

    def _process(
        self,
        frame: Frame,
        rois: np.ndarray,
        camera: PinholeCamera | None,
        output_size: tuple[int, int] | None,
        hypotheses: int,
        views: ObjectViews | None = None,
    ) -> CanonicalCrops:
        clock = StageClock(self.device)
        size = self.output_size if output_size is None else (int(output_size[0]), int(output_size[1]))
        stn, fallback, view = self.stn, None, None
        if views is not None and camera is not None and frame.is_depth and len(rois):
            source_rois = np.asarray(rois, np.float32).reshape(-1, 4)
            if len(views) != len(source_rois):
                raise ValueError(f'views must be one per ROI ({len(source_rois)}), got {len(views)}')
            scaled = camera.for_image(*frame.size)
            view = FrameView.of(scaled, views.plane)
            views = _complete_views(views, view, source_rois, frame.pixels, scaled)
            rois = view.view_rois(views, scaled, self.roi_side_m)
        elif self.roi_side_m is not None and len(rois):
            if not frame.is_depth or camera is None:
                fallback = 'not a depth image' if not frame.is_depth else 'no camera_info for this image'
                if self._fallback is None:
                    raise MissingCameraInfo(
                        f'this STN looks at {self.roi_side_m * 100:.0f} cm crops: it needs a '
                        f'depth image and camera_info ({fallback})'
                    )
                stn = self._fallback
            else:
                scaled = camera.for_image(*frame.size)
                rois = metric_rois(rois, frame.pixels, scaled.fx, scaled.fy, self.roi_side_m)
        rois = np.asarray(rois, np.float32).reshape(-1, 4)
        check_roi_sizes(rois)  # here, on the host: on a device the check would wait for it
        uploaded = self._uploaded is not None and self._uploaded[0] is frame
        pixels = self.frame_on_device(frame) if self.sampler == 'torch' or uploaded else None
        self._uploaded = None  # held for this frame only
        if pixels is not None and frame.is_depth:
            grey = torch.fmax(pixels, pixels.new_zeros(()))[None]  # frame.grey() on the device: no second copy
        else:
            grey = self._upload(frame.grey())[None]
        view_maps = None
        if view is not None:  # one upload: the view's map to the source (rows 0-2) and its depth factor (row 3)
            view_maps = self._upload(np.vstack((view.view_to_source_normalized, view.factor_normalized)))
        with torch.no_grad():
            transforms, grids = self._transforms(stn, grey, rois, size, hypotheses, view, view_maps)
        depth_field = None if view_maps is None else view_maps[3]
        clock.lap('localization')
        on_device = [transforms.homographies, transforms.params, transforms.probabilities]
        if self.sampler == 'opencv':
            crops = sample_crops_opencv(frame.pixels, transforms, size, frame.border_value)
            if view is not None and not transforms.exact:  # TPS: at the spline's own grids, not at H
                scaled_crops = scale_by_field(
                    torch.from_numpy(crops)[:, None], transforms.grids.detach().cpu(), depth_field
                )
                crops = scaled_crops[:, 0].numpy()
        else:
            on_device.append(self._torch_crops(frame, transforms, size, pixels, grids, depth_field))
        clock.lap('sampling')
        homographies, params, probabilities, *sampled = to_host(on_device)  # the frame's one download
        if sampled:
            crops = sampled[0].astype(frame.pixels.dtype)
        elif view is not None and transforms.exact:
            crops *= normal_depth_factors(homographies, size, view.factor)
        per_object = transforms.hypotheses_per_roi
        xyz = None
        if camera is not None and frame.is_depth and len(rois):
            uv = crop_centres(homographies, size)
            scaled = camera.for_image(*frame.size)
            xyz = scaled.back_project(uv, depth_at(frame.pixels, uv))
            if view is not None:  # no reading at the centre: the ray at the object's top
                missing = ~np.isfinite(xyz[:, 2])
                tops = np.repeat(views.depths, per_object)[missing]
                xyz[missing] = points_at_normal_depth(scaled, uv[missing], tops, view.plane.normal)
        record = build_record(
            homographies,
            params,
            stn.family.code,
            np.repeat(rois, per_object, axis=0),
            size,
            xyz,
            object_ids=np.arange(len(homographies)) // per_object,
            hypotheses=np.arange(len(homographies)) % per_object,
            scores=probabilities,
            normal=None if view is None else view.plane.normal,
        )
        timings = clock.durations_ms()
        return CanonicalCrops(crops, size, transforms, homographies, record, timings, fallback, per_object)

    @property
    def graph_failures(self) -> list[str]:
        """Why a CUDA graph could not be captured (that work then runs op by op); empty when all were."""
        return [graphed.failure for graphed in self._graphs.values() if graphed.failure]

    @property
    def graphs_captured(self) -> int:
        """How many CUDA graphs are held."""
        return sum(graphed.captured for graphed in self._graphs.values())

    def _op_by_op_calls(self) -> int:
        return sum(graphed.op_by_op for graphed in self._graphs.values())

    def prepare_graphs(self, max_objects: int, output_size: tuple[int, int] | None = None, hypotheses: int = 1) -> int:
        """Capture the CUDA graphs of frames of up to ``max_objects`` ROIs (every batch bucket up to
        ``bucket_size(max_objects)``), crops of ``output_size`` (the canonicalizer's by default) and ``hypotheses`` per
        ROI, for the STN and its identity fallback: the graphs do not depend on the frame size, so this needs no
        frame. A frame of another signature later runs op by op (counted in ``frames_op_by_op``), never captures.
        Returns the number of graphs held (0 off CUDA or with ``cuda_graphs`` off)."""
        if not self.cuda_graphs:
            return 0
        size = self.output_size if output_size is None else (int(output_size[0]), int(output_size[1]))
        frames = self._pixel_frames(size, size)  # any source size: the graphs take its matrices as inputs
        with self.graph_context.running(), torch.no_grad():
            for stn in (self.stn, self._fallback):
                if stn is None or not stn.family.is_linear:
                    continue
                grids, transforms = self._graphed_steps(stn, size, hypotheses)
                for bucket in buckets_up_to(max_objects):
                    to_source = torch.eye(3, device=self.device).expand(bucket, 3, 3).contiguous()
                    grids.prepare(to_source)
                    small = torch.zeros(bucket, stn.in_channels, *stn.localization_size, device=self.device)
                    transforms.prepare(small, to_source, *frames)
        self.graph_context.mark_prepared()
        return self.graphs_captured

    def _pixel_frames(
        self, source_size: tuple[int, int], output_size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~stn_ros.core.families.pixel_frames` on the device, made once per pair of sizes."""
        key = (source_size, output_size)
        if key not in self._frames:
            self._frames[key] = pixel_frames(source_size, output_size, dtype=torch.float64, device=self.device)
        return self._frames[key]

    def _localize(self, stn: SpatialTransformer):
        """What runs ``stn``'s localization net: the backend's for the node's STN, the module for the fallback."""
        return self.localizer.localize_ranked if stn is self.stn else stn.localize_ranked

    def _graphed_steps(
        self, stn: SpatialTransformer, size: tuple[int, int], hypotheses: int
    ) -> tuple[GraphedFunction, GraphedFunction]:
        """The two graphed steps of a linear family's localization: the ROIs' grids for the net's small crops, and
        (from those crops) the net, the matrices and the canonical crops' grids. Neither reads the frame."""
        per_roi = min(int(hypotheses), stn.localization.hypotheses)
        grids_key = ('localization grids', stn.localization_size)
        if grids_key not in self._graphs:
            self._graphs[grids_key] = GraphedFunction(
                partial(_localization_grids, stn.localization_size), self.cuda_graphs, (0,), context=self.graph_context
            )
        key = ('transforms', id(stn), size, per_roi)
        if key not in self._graphs:
            self._graphs[key] = GraphedFunction(
                partial(_linear_transforms, stn, size, per_roi, self._localize(stn)),
                self.cuda_graphs,
                (0, 1),
                context=self.graph_context,
            )
        return self._graphs[grids_key], self._graphs[key]

    def _transforms(
        self,
        stn: SpatialTransformer,
        grey: torch.Tensor,
        rois: np.ndarray,
        size: tuple[int, int],
        hypotheses: int,
        view: FrameView | None = None,
        view_maps: torch.Tensor | None = None,
    ) -> tuple[CropTransforms, torch.Tensor | None]:
        """:func:`crop_transforms`, and the canonical crops' grids when they were made with it. With CUDA graphs (a
        linear family) the ROIs are padded to a bucket and the graphs of :meth:`_graphed_steps` replayed around the one
        launch that reads the frame (:class:`~stn_ros.core.cuda_graphs.GraphedFunction`). ``view``: the ROIs are in
        its pixels (view canonicalization); the graphs take its map in their ``to_source`` input; ``view_maps``: on the
        device, ``(4, 3)``, its normalized map to the source (rows 0-2) and depth factor (row 3)."""
        depth_field = None if view_maps is None else view_maps[3]
        if not (self.cuda_graphs and stn.family.is_linear and len(rois)):
            # ROI sizes were checked on the host; the ROIs go up through the pinned buffers (an asynchronous copy).
            upload = self._upload(rois)
            view_map = None if view_maps is None else view_maps[:3]
            localize = self._localize(stn)
            found = crop_transforms(stn, grey, upload, size, hypotheses, False, localize, view_map, depth_field)
            return found, None
        grids_of, transforms_of = self._graphed_steps(stn, size, hypotheses)
        source_size = tuple(grey.shape[-2:])
        # The ROIs' matrices on the host, where the ROIs are: one small asynchronous upload, no frame size in a graph.
        to_source = roi_matrix(torch.from_numpy(rois), source_size, check_sizes=False).numpy()
        if view is not None:
            to_source = (view.view_to_source_normalized @ to_source).astype(np.float32)
        to_source = self._upload(to_source)
        (localization_grids,) = grids_of(to_source)
        small = sample_localization_crops(grey, localization_grids)
        if depth_field is not None:
            small = scale_by_field(small, localization_grids, depth_field)
        frames = self._pixel_frames(source_size, size)  # host data: made outside the graphs
        params, matrices, homographies, probabilities, grids = transforms_of(small, to_source, *frames)
        per_roi = len(params) // len(rois)  # object-major: the padding's crops were last
        return CropTransforms(params, matrices, homographies, None, True, probabilities, per_roi), grids

    @torch.no_grad()
    def _torch_crops(
        self,
        frame: Frame,
        transforms: CropTransforms,
        size: tuple[int, int],
        pixels: torch.Tensor | None = None,
        grids: torch.Tensor | None = None,
        depth_field: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The torch sampling path (CUDA's by default) from the frame's ``pixels`` on the device (uploaded here when
        not given) at ``grids`` (the transforms' when not given): float crops on the device, channels last, rounded
        and clamped to the frame's integer range (the host casts them to its dtype). ``depth_field``: the view's
        depth factor (:func:`~stn_ros.core.crops.scale_by_field`), None: none."""
        pixels = (self._upload(frame.pixels) if pixels is None else pixels).float()
        source = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)
        grids = transforms.source_grids(size) if grids is None else grids
        crops = sample_grids(source, grids, frame.border_value)
        if depth_field is not None:
            crops = scale_by_field(crops, grids, depth_field)
        crops = crops.permute(0, 2, 3, 1)
        crops = crops[..., 0] if frame.pixels.ndim == 2 else crops
        dtype = frame.pixels.dtype
        if dtype.kind == 'u':
            info = np.iinfo(dtype)
            crops = crops.round().clamp(info.min, info.max)
        return crops


def _complete_views(
    views: ObjectViews, view: FrameView, rois: np.ndarray, depth: np.ndarray, camera: PinholeCamera
) -> ObjectViews:
    """``views`` with each object that has no grasp point (no valid pixel) put at its ROI's centre: the point read
    there (else the table under it) and, for :attr:`ObjectViews.sides`, the ROI's size at that depth."""
    bad = ~(np.isfinite(views.centres).all(axis=1) & (views.depths > 0) & np.isfinite(views.sides))
    if not bad.any():
        return views
    centres_uv = rois[bad, :2] + (rois[bad, 2:] - 1) / 2
    z = depth_at(depth, centres_uv, radius=3).astype(np.float64)
    on_ray = np.isfinite(z)
    along = np.where(on_ray, z, 1.0) * (np.column_stack((centres_uv, np.ones(len(z)))) @ view.factor)
    along = np.where(on_ray & (along > 0), along, view.plane.distance)
    back = np.linalg.inv(view.view_to_source) @ np.column_stack((centres_uv, np.ones(len(z)))).T
    centres, depths, sides = views.centres.copy(), views.depths.copy(), views.sides.copy()
    centres[bad], depths[bad] = (back[:2] / back[2]).T, along
    sides[bad] = rois[bad, 2:].max(axis=1) * along / (0.5 * (camera.fx + camera.fy))
    return ObjectViews(views.plane, centres, depths, sides)


def _localization_grids(localization_size: tuple[int, int], to_source: torch.Tensor) -> tuple[torch.Tensor]:
    """Captured: the grids of the localization net's small crops, from the ROIs' :func:`roi_matrix`."""
    return (homography_grid(to_source, *localization_size),)


def _linear_transforms(
    stn: SpatialTransformer,
    size: tuple[int, int],
    hypotheses: int,
    localize,
    small: torch.Tensor,
    to_source: torch.Tensor,
    to_pixels: torch.Tensor,
    from_pixels: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Captured: the localization net on the small crops, the crops' matrices and ``H``, and their grids in the
    source (:func:`~stn_ros.core.crops.linear_crop_transforms`)."""
    found = linear_crop_transforms(stn, small, to_source, hypotheses, (to_pixels, from_pixels), localize)
    grids = homography_grid(found.matrices, *size)
    return found.params, found.matrices, found.homographies, found.probabilities, grids
