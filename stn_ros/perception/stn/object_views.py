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

import functools
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
GRID_SIDE = 15
"""An object's pixels are read on a grid of at most ``GRID_SIDE x GRID_SIDE`` over its bounding box (every ``s``-th
row and column, the last row and column too): the per-pixel work per frame stays small; the footprint's extent moves
by less than a stride (measured: ``benchmarks/view_canonicalization.py``)."""


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
    if not count:
        return ObjectViews(plane, np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    x, y, w, h = np.asarray(boxes, np.int64).reshape(-1, 4).T
    stride = np.maximum(-(-(np.maximum(w, h) - 1) // (GRID_SIDE - 1)), 1)  # ceil: at most GRID_SIDE rows and columns
    ticks = np.arange(GRID_SIDE) * stride[:, None]  # (N, G)
    rows = (y[:, None] + np.minimum(ticks, h[:, None] - 1))[:, :, None]  # (N, G, 1)
    cols = (x[:, None] + np.minimum(ticks, w[:, None] - 1))[:, None, :]  # (N, 1, G)
    # A tick past the last row (column) repeats it: only the first that reaches it counts.
    first_rows = ticks - stride[:, None] < h[:, None] - 1
    first_cols = ticks - stride[:, None] < w[:, None] - 1
    first_rows[:, 0] = first_cols[:, 0] = True
    z = depth[rows, cols]  # (N, G, G)
    mine = (components[rows, cols] == np.asarray(ids)[:, None, None]) & (z > 0) & (z < np.inf)
    mine &= first_rows[:, :, None] & first_cols[:, None, :]
    owner, row, col = np.nonzero(mine)  # object by object
    pixels = np.stack((cols[owner, 0, col], rows[owner, row, 0]), axis=1) * step
    rotation = view_rotation(plane.normal)
    points = (rays(camera, pixels) * z[owner, row, col][:, None]) @ rotation  # view-frame points R^T X, a row each
    counts = np.bincount(owner, minlength=count)
    found = counts > 0
    first = (np.cumsum(counts) - counts)[found]
    low, high = np.full((count, 2), np.nan), np.full((count, 2), np.nan)
    if len(first):
        low[found] = np.minimum.reduceat(points[:, :2], first, axis=0)
        high[found] = np.maximum.reduceat(points[:, :2], first, axis=0)
    depths = np.full(mine.shape, np.inf)
    depths[owner, row, col] = points[:, 2]
    ordered = np.sort(depths.reshape(count, -1), axis=1)  # the view's depths, the object's first
    rank = np.floor((100.0 - TOP_PERCENTILE) / 100.0 * np.maximum(counts - 1, 0)).astype(np.int64)
    top = np.where(found, ordered[np.arange(count), rank], np.nan)
    k = intrinsic_matrix(camera)
    centres = np.where(
        found[:, None], (low + high) / 2 * np.array([k[0, 0], k[1, 1]]) / top[:, None] + k[:2, 2], np.nan
    )
    sides = np.where(found, (high - low).max(axis=1) * (1.0 + 2.0 * margin), np.nan)
    return ObjectViews(plane, centres, top, sides)


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
        to_pixel, to_normalized = _normalized_frames(camera.height, camera.width)
        factor = np.linalg.inv(intrinsic_matrix(camera)).T @ plane.normal  # K^-T n
        return cls(plane, rotation, homography, to_normalized @ homography @ to_pixel, factor, factor @ to_pixel)

    def view_rois(self, views: ObjectViews, camera: PinholeCamera, side_m: float | None) -> np.ndarray:
        """``(N, 4)`` float32 square ROIs ``(x, y, w, h)`` in view pixels centred on each object's grasp point,
        ``side_m`` metres wide at its top's depth (None: each object's own :attr:`ObjectViews.sides`)."""
        sides = views.sides if side_m is None else np.full(len(views), side_m)
        side_px = sides * 0.5 * (camera.fx + camera.fy) / views.depths
        corner = views.centres - (side_px[:, None] - 1) / 2
        return np.column_stack((corner, side_px, side_px)).astype(np.float32)


def normal_depth_factors(homographies: np.ndarray, output_size: tuple[int, int], factor: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` float32: at each crop pixel ``p`` the factor ``f . (H p) / (H p)_z`` (:attr:`FrameView.factor`)
    that turns the source reading sampled there into metres along the normal (``homographies`` ``(N, 3, 3)``: crop
    pixel -> source pixel)."""
    height, width = output_size
    homographies = np.asarray(homographies, np.float64).reshape(-1, 3, 3)
    # Numerator and denominator are both affine in the crop pixel (col, row): rows of f^T H and of H's last row.
    coefficients = np.stack((np.asarray(factor, np.float64) @ homographies, homographies[:, 2]), 1).astype(np.float32)
    cols, rows = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    affine = (
        coefficients[..., 0, None, None] * cols
        + (coefficients[..., 1, None] * rows + coefficients[..., 2, None])[..., None]
    )  # (N, 2, h, w)
    return affine[:, 0] / affine[:, 1]


@functools.lru_cache(maxsize=8)
def _normalized_frames(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized -> pixel and pixel -> normalized ``(3, 3)`` float64 of an image of ``height x width``
    (:mod:`stn_ros.core.coords`), made once per size."""
    to_pixel = normalized_to_pixel(height, width, dtype=torch.float64).numpy()
    to_normalized = pixel_to_normalized(height, width, dtype=torch.float64).numpy()
    to_pixel.flags.writeable = to_normalized.flags.writeable = False
    return to_pixel, to_normalized
