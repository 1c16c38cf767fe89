"""Crop sources for the canonicalizer: fixed ROIs, or proposals from a depth or an intensity frame.

ROIs are ``(x, y, w, h)`` float32 in source pixels, as ``cv::Rect`` (see :mod:`stn_ros.core.crops`):
the ROI covers columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``, pixel centres are at integer
coordinates, so the ROI's centre is ``(x + (w - 1) / 2, y + (h - 1) / 2)``.

A proposal is one connected component (8-connectivity) of a foreground mask, kept when
``min_area <= area <= max_area``. Its ROI is a square centred on the component's bounding-box centre
with side ``max(bw, bh) * (1 + 2 * margin)``, where ``bw, bh`` are the bounding box's width and height
in pixels: ``margin * max(bw, bh)`` is added on each side of the larger extent. Proposal ROIs may
extend beyond the image (objects touching the border); the sampler reads outside pixels as padding.

Tile order (the order of ``Proposals.rois``, and of the crops built from them): largest component
area first; equal areas by the ROI's ``y``, then its ``x`` (top to bottom, left to right). ``max_crops``
keeps the first ``max_crops`` of that order, i.e. the largest components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import torch
from scipy import ndimage

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.geometry.table_view import TablePlane
from stn_ros.perception.stn.device_proposals import object_masks
from stn_ros.perception.stn.frame import bt601_grey
from stn_ros.perception.stn.object_views import ObjectViews, object_views

RANSAC_SAMPLES = 2000
"""Valid pixels the table-plane fit samples from a frame."""
MIN_PLANE_PIXELS = 100
"""Fewer valid depth pixels than this: no plane (and no depth proposals)."""

_OPENING_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class ProposalConfig:
    """Parameters of depth and intensity proposals.

    Attributes:
        min_area: smallest kept component, pixels, inclusive.
        max_area: largest kept component, pixels, inclusive.
        margin: fraction of the component's larger bounding-box side added on each side of the
            square ROI: ``side = max(bw, bh) * (1 + 2 * margin)``.
        table_threshold: metres; object pixels are valid depth pixels more than this above the fitted table plane:
            along its normal when the camera's intrinsics are known (:func:`depth_proposals`), else closer to the
            camera along the pixel's ray. RANSAC inliers are within half of it of the plane (in depth).
        ransac_iterations: 3-point plane hypotheses evaluated (all at once).
        seed: seed of the RANSAC sampling; the fit is deterministic for a given seed and frame.
        split_jump: metres; depth proposals are cut where neighbouring object pixels differ in depth by
            more than this (in height above the table when the intrinsics are known), so objects that touch but
            stand at different heights become separate proposals (0: no cut).
        occlusion_jump: metres; with the intrinsics known and ``split_jump`` > 0, depth proposals are also cut
            where neighbouring object pixels differ in depth along their rays by more than this: where a nearer
            object hides part of a farther one at about the same height, as an oblique view sees a pile (0: no such
            cut). Looking straight down, depth along the ray is height, so there it is the height cut at this jump.
        decimation: depth proposals look at every ``decimation``-th pixel of every ``decimation``-th row
            (large frames: 1280x720 at 2 costs what 640x360 does). Areas, ROIs and labels are still in the
            frame's own pixels; the opening and the depth cuts then act on ``decimation``-pixel steps.
    """

    min_area: int = 60
    max_area: int = 60000
    margin: float = 0.15
    table_threshold: float = 0.005
    ransac_iterations: int = 64
    seed: int = 0
    split_jump: float = 0.01
    occlusion_jump: float = 0.005
    decimation: int = 1

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        for name in ('min_area', 'max_area', 'ransac_iterations', 'decimation'):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f'ProposalConfig.{name} must be a positive integer, got {value!r}')
        if self.max_area < self.min_area:
            raise ValueError(f'ProposalConfig.max_area must be >= min_area ({self.min_area}), got {self.max_area!r}')
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f'ProposalConfig.seed must be a non-negative integer, got {self.seed!r}')
        if not _is_real(self.margin) or not 0.0 <= self.margin < np.inf:
            raise ValueError(f'ProposalConfig.margin must be a finite number >= 0, got {self.margin!r}')
        for name in ('split_jump', 'occlusion_jump'):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value < np.inf:
                raise ValueError(f'ProposalConfig.{name} must be a finite number >= 0 (metres), got {value!r}')
        if not _is_real(self.table_threshold) or not 0.0 < self.table_threshold < np.inf:
            raise ValueError(
                f'ProposalConfig.table_threshold must be a finite number > 0 (metres), got {self.table_threshold!r}'
            )


@dataclass
class Proposals:
    """Proposals of one frame, in tile order.

    Attributes:
        rois: ``(N, 4)`` float32 square ROIs ``(x, y, w, h)``, source pixels.
        areas: ``(N,)`` int64 component pixel counts.
        components: ``(h, w)`` int32 component ids of the mask the proposals were found in (the frame decimated by
            ``step``); with ``relabel`` None they are :attr:`labels`' numbers already.
        relabel: ``(count,)`` int32, component id -> its proposal's number (0: none), or None.
        step: the decimation of ``components`` (1: the frame's own pixels).
        shape: the frame's ``(H, W)``; None: ``components``' shape.
        plane: the frame's table in the camera frame; None when unknown (no intrinsics, no plane, or a plane the
            camera does not look at).
        views: each proposal's grasp point in the view that looks along the table's normal
            (:class:`~stn_ros.perception.stn.object_views.ObjectViews`), in tile order; None with ``plane``.
    """

    rois: np.ndarray
    areas: np.ndarray
    components: np.ndarray
    relabel: np.ndarray | None = None
    step: int = 1
    shape: tuple[int, int] | None = None
    plane: TablePlane | None = None
    views: ObjectViews | None = None

    @cached_property
    def labels(self) -> np.ndarray:
        """``(H, W)`` int32; ``k > 0`` marks the pixels of the component of ``rois[k - 1]``, 0 everything else
        (background, and components filtered out or beyond ``max_crops``). Made when first asked for: the node
        uses only the ROIs, and this full-frame image costs about a millisecond at 1280x720."""
        labels = self.components if self.relabel is None else np.take(self.relabel, self.components)
        if self.step > 1:  # each decimated pixel stands for the step x step block it starts
            height, width = self.shape
            labels = np.repeat(np.repeat(labels, self.step, axis=0), self.step, axis=1)[:height, :width]
        return labels


def auto_decimation(width: int) -> int:
    """Depth proposals' decimation for a frame ``width`` pixels wide: about 640 pixels a row (1 up to 959,
    2 for 1280, 3 for 1920)."""
    return max(1, round(width / 640))


def full_frame_roi(height: int, width: int) -> np.ndarray:
    """The whole image as one ROI, ``(1, 4)`` float32 ``[[0, 0, width, height]]``."""
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got height={height}, width={width}')
    return np.array([[0.0, 0.0, width, height]], dtype=np.float32)


def parse_rois(flat: Sequence[float] | np.ndarray) -> np.ndarray:
    """Flat ``[x0, y0, w0, h0, x1, ...]`` (e.g. a ROS parameter) -> ``(N, 4)`` float32 ROIs.

    Raises ``ValueError`` when the length is not a multiple of 4, or naming the first ROI with a
    non-finite value or a non-positive width or height. An empty list gives ``(0, 4)``.
    """
    try:
        values = np.asarray(flat, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f'ROIs must be a flat list of numbers [x, y, w, h, ...]: {error}') from None
    if values.ndim != 1:
        raise ValueError(f'ROIs must be a flat list [x, y, w, h, ...], got shape {values.shape}')
    if values.size % 4:
        raise ValueError(f'flat ROI list length {values.size} is not a multiple of 4 (x, y, w, h)')
    rois = values.reshape(-1, 4)
    for index, roi in enumerate(rois):
        if not np.isfinite(roi).all():
            raise ValueError(f'ROI {index} (x, y, w, h) = {_fmt(roi)} has a non-finite value')
        if roi[2] <= 0 or roi[3] <= 0:
            raise ValueError(f'ROI {index} (x, y, w, h) = {_fmt(roi)}: width and height must be positive')
    return rois.astype(np.float32)


def rois_inside(rois: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(N,)`` bool: which ROIs are fully inside a ``height x width`` image.

    Inside means ``x >= 0``, ``y >= 0``, ``x + w <= width`` and ``y + h <= height``.
    """
    x, y, w, h = _check_rois(rois).T
    return (x >= 0) & (y >= 0) & (x + w <= width) & (y + h <= height)


def check_rois_inside(rois: np.ndarray, height: int, width: int) -> None:
    """Raise ``ValueError`` naming the first ROI not fully inside a ``height x width`` image (:func:`rois_inside`)."""
    rois = _check_rois(rois)
    outside = np.flatnonzero(~rois_inside(rois, height, width))
    if outside.size:
        index = int(outside[0])
        raise ValueError(
            f'ROI {index} (x, y, w, h) = {_fmt(rois[index])} is not inside the {width}x{height} (width x height) image'
        )


def order_and_limit(rois: np.ndarray, areas: np.ndarray, max_crops: int) -> np.ndarray:
    """Indices ``(K,)`` int64 of the tile order, ``K <= max_crops``.

    Area descending, then ROI ``y``, then ROI ``x`` (ascending), truncated to the first ``max_crops``.
    ``areas`` ``(N,)`` may be pixel counts or float ROI areas ``w * h``.
    """
    rois = _check_rois(rois)
    areas = np.asarray(areas)
    if areas.shape != (len(rois),):
        raise ValueError(f'areas must be ({len(rois)},), got {areas.shape}')
    if not _is_int(max_crops) or max_crops < 0:
        raise ValueError(f'max_crops must be a non-negative integer, got {max_crops!r}')
    order = np.lexsort((rois[:, 0], rois[:, 1], -areas.astype(np.float64)))  # int or float areas
    return order[:max_crops].astype(np.int64)


def fit_table_plane(depth_m: np.ndarray, config: ProposalConfig) -> np.ndarray | None:
    """Robust fit of the dominant plane of a depth frame, ``(3,)`` float64 ``(a, b, c)`` or ``None``.

    The plane is ``1 / z = a * u + b * v + c`` with ``z`` the depth in metres and ``(u, v) = (col, row)``
    pixel coordinates. For a pinhole camera every 3-D plane is exactly linear in inverse depth over
    the pixel grid, so no intrinsics (camera_info) are needed. RANSAC over ``RANSAC_SAMPLES`` valid
    pixels (depth residuals, inliers within ``table_threshold / 2``), then weighted least squares on
    the inliers. ``None`` when the frame has fewer than ``MIN_PLANE_PIXELS`` valid pixels.

    Args:
        depth_m: ``(H, W)`` float depth in metres; NaN, 0 and inf mean no reading.
        config: ``table_threshold``, ``ransac_iterations`` and ``seed`` are used.
    """
    config.validate()
    depth = _as_depth(depth_m)
    draws = ransac_draws(depth, config)
    if draws is None:
        return None
    index, samples = draws
    rows, cols = np.divmod(index, depth.shape[1])
    design = np.stack((cols, rows, np.ones_like(cols)), axis=1).astype(np.float64)  # (n, 3)
    z = depth.reshape(-1)[index].astype(np.float64)
    return _ransac_plane(design, z, samples, tolerance=0.5 * config.table_threshold)


def ransac_draws(depth_m: np.ndarray, config: ProposalConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """The table-plane fit's random draws for a frame ``(H, W)`` float32 metres, made on the host with the numpy
    generator seeded by ``config.seed`` whichever device fits the plane, so every device picks the same: flat indices
    ``(n,)`` of up to ``RANSAC_SAMPLES`` valid pixels, and the hypotheses ``(ransac_iterations, 3)``, indices into
    them. None when fewer than ``MIN_PLANE_PIXELS`` pixels are valid."""
    rng = np.random.default_rng(config.seed)
    index = _sample_valid(depth_m, rng)
    if index.size < MIN_PLANE_PIXELS:
        return None
    return index, rng.integers(0, index.size, size=(config.ransac_iterations, 3))


def depth_proposals(
    depth_m: np.ndarray,
    config: ProposalConfig,
    max_crops: int | None = None,
    on_device: torch.Tensor | None = None,
    camera: PinholeCamera | None = None,
) -> Proposals:
    """Objects standing on a table, from a depth frame ``(H, W)`` float32 metres (NaN, 0, inf: no reading).

    The table is the fitted plane (see :func:`fit_table_plane`). With the frame's intrinsics ``camera`` (its size)
    and a plane it looks at (:meth:`TablePlane.from_inverse_depth`), object pixels are valid pixels higher above the
    plane than ``table_threshold`` along its normal, ``h = d (1 - z w_p)`` (``d`` the camera's distance to the
    plane, ``w_p`` the plane's inverse depth at the pixel), and the cut between touching objects is a jump in height
    (:func:`split_at_depth_edges` of the depths along the normal), and also a jump in depth along the rays
    (``occlusion_jump``: a nearer object's edge over a farther one): right at any camera angle. Without ``camera``,
    object pixels are closer to the camera along their ray than the plane by more than ``table_threshold`` and the
    cut is a jump in depth: the same where the camera looks straight down. Then opening, components and square
    ROIs in tile order (see the module docstring), at most ``max_crops`` of them (``None``: all). No plane (too few
    valid pixels): no proposals.

    The proposals carry the :class:`TablePlane` and each one's grasp point in the view that looks along its normal
    (:func:`~stn_ros.perception.stn.object_views.object_views`), both None without ``camera`` or plane.

    ``on_device``: the same frame as a tensor on a device (the canonicalizer's copy, on CUDA): the plane fit, the
    threshold and the depth cuts then run there in torch (:mod:`~stn_ros.perception.stn.device_proposals`) and the host
    reads back only the masks and the plane, once; the host's ``depth_m`` gives the RANSAC draws. The same proposals
    as without it, but for pixels within float32 rounding of the threshold.
    """
    config.validate()
    depth = _as_depth(depth_m)
    step = config.decimation
    if camera is not None and (camera.height, camera.width) != depth.shape:
        raise ValueError(f'camera is for {camera.width}x{camera.height} frames, the depth is {depth.shape[::-1]}')
    if on_device is not None:
        if tuple(on_device.shape) != depth.shape:
            raise ValueError(f'on_device must be the frame, {depth.shape}, got shape {tuple(on_device.shape)}')
        draws = ransac_draws(depth[::step, ::step], config)
        if draws is None:
            return _empty(depth.shape)
        small_camera = None if camera is None else _intrinsic_rows(camera, step)
        masks = object_masks(
            on_device[::step, ::step],
            *draws,
            config.table_threshold,
            config.split_jump,
            small_camera,
            config.occlusion_jump,
        )
        if masks is None:
            return _empty(depth.shape)
        mask, cut, plane = masks
        table = _table(plane, step, camera)
    else:
        small = np.ascontiguousarray(depth[::step, ::step]) if step > 1 else depth
        plane = fit_table_plane(small, config)
        if plane is None:
            return _empty(depth.shape)
        table = _table(plane, step, camera)
        if table is None:
            mask = _object_mask(small, plane, config.table_threshold)
            edges = small
        else:
            edges = depth_along_normal_image(small, plane, table.distance)
            mask = _higher_mask(small, edges, table.distance, config.table_threshold)
        cut = split_at_depth_edges(mask, edges, config.split_jump) if config.split_jump > 0 else None
        if cut is not None and table is not None and config.occlusion_jump > 0:
            cut &= split_at_depth_edges(mask, small, config.occlusion_jump)
    unread = ~_has_reading(depth[::step, ::step])
    found, ids, boxes = _proposals_from_mask(mask, config, max_crops, cut, step, unread)
    found.shape = depth.shape
    if table is not None:
        found.plane = table
        small = depth[::step, ::step]
        found.views = object_views(small, found.components, ids, boxes, step, camera, table, config.margin)
    return found


def depth_along_normal_image(depth: np.ndarray, plane: np.ndarray, distance: float) -> np.ndarray:
    """``(H, W)`` float32 metres along the table's normal of each reading of ``depth`` (optical-axis metres):
    ``z d w_p`` for the inverse-depth ``plane`` ``(a, b, c)`` of ``depth``'s pixels and the camera's ``distance`` to
    it; the table is at ``distance``, a point ``h`` above it at ``distance - h``. NaN stays NaN."""
    height, width = depth.shape
    a, b, c = (np.asarray(plane, np.float64) * distance).astype(np.float32)
    columns, rows = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    scaled_plane = a * columns + (b * rows + c)[:, None]
    return depth * scaled_plane


def split_at_depth_edges(mask: np.ndarray, depth: np.ndarray, jump: float) -> np.ndarray:
    """``(H, W)`` uint8: ``mask`` without the object pixels that sit more than ``jump`` metres behind a
    4-neighbouring object pixel: the edge of a lower object where a higher one touches it."""
    inside = mask.astype(bool)
    behind = np.zeros_like(inside)
    with np.errstate(invalid='ignore'):
        down = (depth[1:] - depth[:-1]) * (inside[1:] & inside[:-1])  # 0 where either is not an object
        right = (depth[:, 1:] - depth[:, :-1]) * (inside[:, 1:] & inside[:, :-1])
    behind[1:] |= down > jump
    behind[:-1] |= down < -jump
    behind[:, 1:] |= right > jump
    behind[:, :-1] |= right < -jump
    return (inside & ~behind).view(np.uint8)


def intensity_proposals(image: np.ndarray, config: ProposalConfig, max_crops: int | None = None) -> Proposals:
    """Objects that differ from the background, in an image ``(H, W)`` or ``(H, W, C)``, C in 1, 3, 4.

    Colour (BGR(A) order) is converted to grey by :func:`~stn_ros.perception.stn.frame.bt601_grey`, the grey
    the node's frames have (it passes :meth:`Frame.grey() <stn_ros.perception.stn.frame.Frame.grey>`).
    The background level is the median of the border pixels; foreground is where the blurred
    ``|grey - background|`` is above a triangle threshold; then opening, components and square ROIs
    in tile order, at most ``max_crops``, as for depth (the blur adds a 1-2 pixel halo to each
    component). A uniform image gives no proposals.
    """
    config.validate()
    grey = bt601_grey(image).astype(np.float32, copy=False)
    border = np.concatenate((grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]))
    border = border[np.isfinite(border)]
    if not border.size:
        return _empty(grey.shape)
    background = np.median(border)
    difference = np.abs(grey - np.float32(background))
    if not np.isfinite(difference.max()):
        difference[~np.isfinite(difference)] = 0.0  # non-finite pixels (float images) are background
    difference = cv2.GaussianBlur(difference, (5, 5), 1.0)
    peak = float(difference.max())
    if not peak > 0.0:
        return _empty(grey.shape)
    scaled = cv2.convertScaleAbs(difference, alpha=255.0 / peak)
    # The background is the dominant mode at zero difference: the triangle method thresholds at the
    # foot of that mode, so faint and strong objects are both kept (Otsu splits between their
    # contrasts when they differ a lot, dropping the faint ones).
    _, mask = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_TRIANGLE)
    return _proposals_from_mask(mask, config, max_crops)[0]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _fmt(roi: np.ndarray) -> str:
    return '(' + ', '.join(f'{float(value):g}' for value in roi) + ')'


def _check_rois(rois: np.ndarray) -> np.ndarray:
    rois = np.asarray(rois)
    if rois.ndim != 2 or rois.shape[1] != 4:
        raise ValueError(f'rois must be an (N, 4) array of (x, y, w, h), got shape {rois.shape}')
    return rois


def _as_depth(depth_m: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ValueError(f'depth must be an (H, W) image, got shape {depth.shape}')
    if depth.dtype.kind != 'f':
        raise ValueError(f'depth must be float metres, got {depth.dtype} (convert e.g. uint16 millimetres)')
    return depth.astype(np.float32, copy=False)


def _sample_valid(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of up to ``RANSAC_SAMPLES`` valid pixels (drawn with replacement on large frames)."""
    if depth.size > 4 * RANSAC_SAMPLES:
        # Drawing candidates over the whole frame avoids scanning it; enough are valid unless the
        # frame is mostly dropouts.
        index = rng.integers(0, depth.size, size=2 * RANSAC_SAMPLES)
        values = depth.flat[index]  # row-major, without copying a strided (decimated) view
        index = index[_has_reading(values)][:RANSAC_SAMPLES]
        if index.size == RANSAC_SAMPLES:
            return index
    flat = depth.reshape(-1)
    index = np.flatnonzero(_has_reading(flat))
    if index.size > RANSAC_SAMPLES:
        index = rng.choice(index, RANSAC_SAMPLES, replace=False)
    return index


def _ransac_plane(design: np.ndarray, z: np.ndarray, samples: np.ndarray, tolerance: float) -> np.ndarray | None:
    """Best of the 3-point hypotheses ``samples`` ``(I, 3)`` refined on its inliers, or ``None``."""
    inverse = 1.0 / z
    # A depth error e is an inverse-depth error of e / z^2 to first order: per-pixel tolerance on 1/z.
    inverse_tolerance = tolerance / (z * z)
    points = np.concatenate((design[:, :2], inverse[:, None]), axis=1)[samples]  # (I, 3, 3) (u, v, 1/z)
    normals = np.cross(points[:, 1] - points[:, 0], points[:, 2] - points[:, 0])  # (I, 3)
    with np.errstate(divide='ignore', invalid='ignore'):
        a = -normals[:, 0] / normals[:, 2]
        b = -normals[:, 1] / normals[:, 2]
        c = points[:, 0, 2] - a * points[:, 0, 0] - b * points[:, 0, 1]
        # Degenerate (collinear) triples give inf/NaN planes, whose NaN residuals are never inliers.
        inliers = _inliers(np.stack((a, b, c), axis=1), design, inverse, inverse_tolerance)  # (I, n)
    counts = inliers.sum(axis=1)
    best = int(np.argmax(counts))
    if counts[best] < 3:
        return None
    mask = inliers[best]
    for _ in range(2):
        plane = _weighted_plane(design[mask], z[mask])
        mask = _inliers(plane[None], design, inverse, inverse_tolerance)[0]
        if mask.sum() < 3:
            break
    return plane


def _inliers(planes: np.ndarray, design: np.ndarray, inverse: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """``(P, n)`` bool: points ``(u, v, 1/z)`` within ``tolerance`` ``(n,)`` of ``(P, 3)`` planes."""
    return np.abs(planes @ design.T - inverse) < tolerance


def _weighted_plane(design: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Least-squares inverse-depth plane of the points, rows weighted by ``z^2`` (depth residuals)."""
    weights = z * z
    return np.linalg.lstsq(design * weights[:, None], z, rcond=None)[0]  # (1/z) * z^2 = z


def _object_mask(depth: np.ndarray, plane: np.ndarray, threshold: float) -> np.ndarray:
    """``(H, W)`` uint8, 1 where a valid pixel is closer than the plane by more than ``threshold``."""
    height, width = depth.shape
    a, b, c = plane.astype(np.float32)
    columns, rows = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    inverse_plane = a * columns + (b * rows + c)[:, None]
    # z < 1 / w_p - threshold, divided through by w_p: also right where the plane is behind the camera
    # or at the horizon (w_p <= 0, plane infinitely far): every valid pixel there is closer.
    with np.errstate(invalid='ignore', over='ignore'):
        closer = (depth + np.float32(threshold)) * inverse_plane < 1.0
    closer &= depth > 0
    closer &= depth < np.inf
    return closer.view(np.uint8)


def _higher_mask(depth: np.ndarray, along: np.ndarray, distance: float, threshold: float) -> np.ndarray:
    """``(H, W)`` uint8, 1 where a valid pixel of ``depth`` is more than ``threshold`` above the table: its depth
    along the normal ``along`` below ``distance - threshold``. A pixel where the plane is at or beyond the horizon
    (``w_p <= 0``) is above the table, as in :func:`_object_mask`."""
    with np.errstate(invalid='ignore'):
        higher = along < np.float32(distance - threshold)
    higher &= depth > 0
    higher &= depth < np.inf
    return higher.view(np.uint8)


def _table(plane: np.ndarray, step: int, camera: PinholeCamera | None) -> TablePlane | None:
    """The :class:`TablePlane` of an inverse-depth ``plane`` fitted on a frame decimated by ``step`` (its pixel
    ``(c, r)`` is the frame's ``(step c, step r)``); None without ``camera`` or for a plane it does not look at."""
    if camera is None:
        return None
    return TablePlane.from_inverse_depth(np.asarray(plane, np.float64) * (1.0 / step, 1.0 / step, 1.0), camera)


def _intrinsic_rows(camera: PinholeCamera, step: int) -> np.ndarray:
    """``(3, 3)`` float64 ``K`` of ``camera`` for the pixels of its frame decimated by ``step``: the device path's
    :class:`TablePlane` (pixel ``(c, r)`` of the decimated frame is ``(step c, step r)``)."""
    return np.array([[camera.fx / step, 0.0, camera.cx / step], [0.0, camera.fy / step, camera.cy / step], [0, 0, 1.0]])


def _components_across_cuts(mask: np.ndarray, cut: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Components of ``cut`` (4-connected), grown back over the rest of ``mask`` (the cut lines are a pixel
    or two wide: two 3x3 dilations of the labels reach them); ``(count, labels, stats)`` as
    ``cv2.connectedComponentsWithStats`` gives them (the background's row zero)."""
    count, labels = cv2.connectedComponents(cut, connectivity=4, ltype=cv2.CV_32S)
    inside = mask > 0
    if 1 < count < 65536:
        labels = labels.astype(np.uint16)
        for _ in range(2):
            rest = inside & (labels == 0)
            if not rest.any():
                break
            labels[rest] = cv2.dilate(labels, _OPENING_KERNEL)[rest]
        areas = cv2.calcHist([labels], [0], None, [count], [0, count]).ravel()  # exact: a frame has < 2^24 pixels
    else:
        areas = np.bincount(labels.ravel(), minlength=count)
    # scipy's find_objects gives the boxes in one pass; OpenCV's own statistics take three times as long.
    stats = np.zeros((count, 5), np.int32)
    for label, box in enumerate(ndimage.find_objects(labels, max_label=count - 1), start=1):
        if box is not None:
            rows, cols = box
            stats[label, :4] = cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start
    stats[1:, 4] = areas[1:]
    return count, labels.astype(np.int32, copy=False), stats


def open_mask(mask: np.ndarray, unread: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` uint8: ``mask`` opened by a 3x3 square (speckle and one-pixel slivers removed), where the pixels
    ``unread`` (no reading; None: none) do not erode it: a small object's dropouts (a fifth of its pixels at its rims
    and creases) would otherwise eat twice their area and break it into pieces below ``min_area``. The result stays
    within ``mask``."""
    if unread is None:
        return cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPENING_KERNEL)
    eroded = cv2.erode(mask | unread.view(np.uint8), _OPENING_KERNEL)
    return cv2.dilate(eroded, _OPENING_KERNEL) & mask


def _has_reading(depth: np.ndarray) -> np.ndarray:
    """Bool, ``depth``'s shape: which depths (metres; NaN, 0 or inf: no reading) are readings."""
    return (depth > 0) & (depth < np.inf)


def _empty(shape: tuple[int, int]) -> Proposals:
    return Proposals(np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros(shape, np.int32))


def _square_rois(boxes: np.ndarray, margin: float) -> np.ndarray:
    """cv::Rect boxes ``(N, 4)`` ``(left, top, bw, bh)`` -> square float32 ROIs ``(N, 4)``, same centres."""
    boxes = boxes.astype(np.float64)
    side = boxes[:, 2:].max(axis=1) * (1.0 + 2.0 * margin)
    # Same centre: left + (bw - 1) / 2 == x + (side - 1) / 2.
    x = boxes[:, 0] + 0.5 * (boxes[:, 2] - side)
    y = boxes[:, 1] + 0.5 * (boxes[:, 3] - side)
    return np.stack((x, y, side, side), axis=1).astype(np.float32)


def _proposals_from_mask(
    mask: np.ndarray,
    config: ProposalConfig,
    max_crops: int | None,
    cut: np.ndarray | None = None,
    step: int = 1,
    unread: np.ndarray | None = None,
) -> tuple[Proposals, np.ndarray, np.ndarray]:
    """Proposals of a ``(H, W)`` uint8 mask: opening, 8-connected components, area filter, tile order; and the kept
    components' ids ``(N,)`` and bounding boxes ``(N, 4)`` ``(x, y, w, h)`` in the mask's pixels, in tile order.

    With ``cut`` (the mask less the pixels along depth edges, :func:`split_at_depth_edges`), components
    are found in the cut mask (4-connected, so a one-pixel cut separates) and the cut pixels go back to
    the nearest component, so a proposal keeps its object's whole area. A mask of a frame decimated by
    ``step`` gives areas and ROIs in the frame's pixels (each mask pixel a ``step x step`` block); its components
    stay the mask's.
    """
    opened = open_mask(mask, unread)
    if cut is None:
        # Grana's block-based labelling: the same components, and with statistics twice as fast as OpenCV's default.
        count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(opened, 8, cv2.CV_32S, cv2.CCL_GRANA)
    else:
        count, labels, stats = _components_across_cuts(opened, cv2.bitwise_and(opened, cut))
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64) * step * step
    keep = np.flatnonzero((areas >= config.min_area) & (areas <= config.max_area))
    rois = _square_rois(stats[1:][keep, :4] * step, config.margin)
    order = order_and_limit(rois, areas[keep], len(keep) if max_crops is None else max_crops)
    kept = keep[order]
    relabel = np.zeros(count, np.int32)
    relabel[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return Proposals(rois[order], areas[kept], labels, relabel, step), kept + 1, stats[1:][kept, :4]
