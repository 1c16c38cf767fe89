"""Each object as a camera looking straight down at the table would see it: its grasp point in the frame's *view*.

The view (:mod:`stn_ros.perception.geometry.table_view`) is the camera turned about its centre until it looks along
the table's normal ``n``; its image axes are the view frame's ``x, y``, its depth is metres along ``n``. Projecting
an object's points along ``n`` onto the table (its *footprint*) keeps their view ``x, y``, so the footprint in the
view's axes is the object's points' view ``x, y`` (metres), whatever part of the object the oblique camera saw: side
faces land inside the footprint, not beside the top.

An object's *grasp point* is the centre of its footprint's bounding box in the view's axes, lifted to its *top*:
the ``TOP_PERCENTILE`` percentile of its heights above the table (a robust top: the highest readings are noise). A
top-down camera centres its crop there. Conventions: pixel centres at integer ``(col, row)``; view pixels are
``K (x / z, y / z, 1)`` of view-frame points. No rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core.coords import normalized_to_pixel, pixel_to_normalized
from stn_ros.perception.geometry.table_view import (
    TablePlane,
    intrinsic_matrix,
    points_at_normal_depth,
    rays,
    view_rotation,
    view_to_source,
)

TOP_PERCENTILE = 90.0
"""An object's top: this percentile of its heights above the table (chosen on tilted synthetic frames:
``benchmarks/view_canonicalization.py``)."""
TOP_SAMPLES = 256
"""At most this many of an object's pixels (evenly strided) give its top percentile: a sort per frame stays small."""


@dataclass(frozen=True)
class ObjectViews:
    """Where each object (ROI) of a frame sits in the frame's view, in the ROIs' order.

    Attributes:
        plane: the table in the camera frame (:class:`~stn_ros.perception.geometry.table_view.TablePlane`).
        centres: ``(N, 2)`` float64 view pixels ``(col, row)`` of each object's grasp point.
        depths: ``(N,)`` float64 metres along the normal of each object's top (the grasp point's view depth).
        sides: ``(N,)`` float64 metres: the side of a square around the footprint (its larger extent with the
            proposals' margin), what a crop of an STN without a metric ROI spans; NaN: unknown.
    """

    plane: TablePlane
    centres: np.ndarray
    depths: np.ndarray
    sides: np.ndarray

    def __len__(self) -> int:
        return len(self.depths)

    def take(self, index: np.ndarray) -> ObjectViews:
        """The views of the objects ``index`` (an index array or a bool mask), in that order."""
        return ObjectViews(self.plane, self.centres[index], self.depths[index], self.sides[index])

    def grasp_points(self, camera: PinholeCamera) -> np.ndarray:
        """``(N, 3)`` camera-frame metres of the grasp points (``camera``: the frame's intrinsics)."""
        source = _apply(view_to_source(camera, view_rotation(self.plane.normal)), self.centres)
        return points_at_normal_depth(camera, source, self.depths, self.plane.normal)


def object_views(
    depth: np.ndarray,
    components: np.ndarray,
    ids: np.ndarray,
    boxes: np.ndarray,
    step: int,
    camera: PinholeCamera,
    plane: TablePlane,
    margin: float = 0.0,
) -> ObjectViews:
    """The :class:`ObjectViews` of connected components (see the module docstring).

    Args:
        depth: ``(h, w)`` float32 metres along the optical axis, the image ``components`` was labelled in.
        components: ``(h, w)`` int component ids.
        ids: ``(N,)`` the objects' component ids, in the order wanted.
        boxes: ``(N, 4)`` int ``(x, y, w, h)`` bounding boxes of those components in ``components``' pixels.
        step: ``components``' pixel ``(c, r)`` is the frame's pixel ``(step c, step r)`` (decimation).
        camera: the frame's intrinsics; plane: its table.
        margin: of the square side (:attr:`ObjectViews.sides`), as the proposals' ROIs.

    An object without a single valid pixel gets NaN.
    """
    count = len(ids)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    x, y, w, h = boxes.T
    sizes = w * h
    owner = np.repeat(np.arange(count), sizes)
    starts = np.cumsum(sizes) - sizes
    local = np.arange(int(sizes.sum())) - np.repeat(starts, sizes)
    rows = y[owner] + local // w[owner]
    cols = x[owner] + local % w[owner]
    z = depth[rows, cols]
    mine = (components[rows, cols] == np.asarray(ids)[owner]) & (z > 0) & (z < np.inf)
    owner, z = owner[mine], z[mine].astype(np.float64)
    pixels = np.stack((cols[mine], rows[mine]), axis=1) * step
    rotation = view_rotation(plane.normal)
    points = (rays(camera, pixels) * z[:, None]) @ rotation  # view-frame points R^T X, one a row
    counts = np.bincount(owner, minlength=count)
    found = np.flatnonzero(counts)
    first = np.cumsum(counts) - counts
    centres, depths, sides = np.full((count, 2), np.nan), np.full(count, np.nan), np.full(count, np.nan)
    if found.size:
        low = np.minimum.reduceat(points[:, :2], first[found], axis=0)
        high = np.maximum.reduceat(points[:, :2], first[found], axis=0)
        top = _low_percentile(points[:, 2], first[found], counts[found], 100.0 - TOP_PERCENTILE)
        middle = (low + high) / 2
        k = intrinsic_matrix(camera)
        centres[found] = middle * np.array([k[0, 0], k[1, 1]]) / top[:, None] + k[:2, 2]
        depths[found] = top
        sides[found] = (high - low).max(axis=1) * (1.0 + 2.0 * margin)
    return ObjectViews(plane, centres, depths, sides)


def _low_percentile(values: np.ndarray, first: np.ndarray, counts: np.ndarray, percentile: float) -> np.ndarray:
    """``percentile`` (lower nearest rank) of each group ``values[first[g] : first[g] + counts[g]]`` (all
    non-empty), from at most :data:`TOP_SAMPLES` evenly strided values of each."""
    taken = np.minimum(counts, TOP_SAMPLES)
    group = np.repeat(np.arange(len(counts)), taken)
    rank = np.arange(int(taken.sum())) - np.repeat(np.cumsum(taken) - taken, taken)
    sample = values[first[group] + rank * counts[group] // taken[group]]
    order = np.lexsort((sample, group))
    pick = np.cumsum(taken) - taken + np.floor(percentile / 100.0 * (taken - 1)).astype(np.int64)
    return sample[order[pick]]


def _apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = np.column_stack((points, np.ones(len(points)))) @ homography.T
    return mapped[:, :2] / mapped[:, 2:]


@dataclass(frozen=True)
class FrameView:
    """What the canonicalizer needs of a frame's view: maps and the depth factor, in pixels and normalized.

    Attributes:
        plane: the table; rotation: ``R`` of the view (:func:`~stn_ros.perception.geometry.table_view.view_rotation`).
        view_to_source: ``(3, 3)`` float64 view pixel -> source pixel (``K R K^-1``).
        view_to_source_normalized: ``(3, 3)`` float64 the same between normalized coordinates of the frame's size.
        factor: ``(3,)`` float64 ``f`` with ``f . (u, v, 1) = n . K^-1 (u, v, 1)`` at source pixel ``(u, v)``: the
            depth along the normal of a reading is the reading (optical-axis metres) times it (``K^-T n``).
        factor_normalized: ``(3,)`` float64, the same at normalized source coordinates ``(x_n, y_n, 1)``.
    """

    plane: TablePlane
    rotation: np.ndarray
    view_to_source: np.ndarray
    view_to_source_normalized: np.ndarray
    factor: np.ndarray
    factor_normalized: np.ndarray

    @classmethod
    def of(cls, camera: PinholeCamera, plane: TablePlane) -> FrameView:
        """The view of a frame of ``camera``'s size whose table is ``plane``."""
        rotation = view_rotation(plane.normal)
        homography = view_to_source(camera, rotation)
        to_pixel = normalized_to_pixel(camera.height, camera.width, dtype=torch.float64).numpy()
        to_normalized = pixel_to_normalized(camera.height, camera.width, dtype=torch.float64).numpy()
        factor = np.linalg.solve(intrinsic_matrix(camera).T, plane.normal)  # K^-T n
        return cls(plane, rotation, homography, to_normalized @ homography @ to_pixel, factor, factor @ to_pixel)

    def view_rois(self, views: ObjectViews, camera: PinholeCamera, side_m: float | None) -> np.ndarray:
        """``(N, 4)`` float32 square ROIs ``(x, y, w, h)`` in view pixels centred on each object's grasp point,
        ``side_m`` metres wide at its top's depth (None: each object's own :attr:`ObjectViews.sides`)."""
        sides = views.sides if side_m is None else np.full(len(views), side_m)
        side_px = sides * 0.5 * (camera.fx + camera.fy) / views.depths
        corner = views.centres - (side_px[:, None] - 1) / 2
        return np.column_stack((corner, side_px, side_px)).astype(np.float32)

    def source_boxes(self, rois: np.ndarray) -> np.ndarray:
        """``(N, 4)`` float32 ``(x, y, w, h)`` source-pixel bounding boxes of view-pixel ROIs ``(N, 4)`` (the
        quadrilaterals their corner pixels map to)."""
        x, y, w, h = np.asarray(rois, np.float64).reshape(-1, 4).T
        corners = np.stack((np.stack((x, y), 1), np.stack((x + w - 1, y), 1), np.stack((x, y + h - 1), 1)), 1)
        corners = np.concatenate((corners, (corners[:, 1:2] + corners[:, 2:3] - corners[:, 0:1])), axis=1)
        mapped = _apply(self.view_to_source, corners.reshape(-1, 2)).reshape(-1, 4, 2)
        low, high = mapped.min(axis=1), mapped.max(axis=1)
        return np.column_stack((low, high - low + 1)).astype(np.float32)


def normal_depth_factors(homographies: np.ndarray, output_size: tuple[int, int], factor: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` float32: at each crop pixel ``p`` the factor ``f . (H p) / (H p)_z`` (:attr:`FrameView.factor`)
    that turns the source reading sampled there into metres along the normal (``homographies`` ``(N, 3, 3)``: crop
    pixel -> source pixel)."""
    height, width = output_size
    rows, cols = np.mgrid[0:height, 0:width]
    grid = np.stack((cols, rows, np.ones_like(cols)), axis=-1).reshape(-1, 3).astype(np.float64)
    mapped = np.asarray(homographies, np.float64).reshape(-1, 3, 3) @ grid.T  # (N, 3, h w)
    values = (np.asarray(factor, np.float64) @ mapped) / mapped[:, 2]
    return values.reshape(-1, height, width).astype(np.float32)
