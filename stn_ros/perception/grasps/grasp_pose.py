"""The gripper frame of a grasp, from its canonical crop's ``H``, its depth and the approach direction. No rclpy.

The frame every consumer codes against (``~/grasps``' ``x, y, z, qx, qy, qz, qw`` and ``~/best_grasp``):

* origin: the fingertips' centre at the grasp depth;
* z: the approach, from the gripper into the object: the table's normal the crops were canonicalized to
  (``stn_node``'s ``nx, ny, nz``), or the camera's optical axis when there is none (a camera looking straight down,
  intensity input, no table found);
* x: the closing axis, the direction the fingers move along: the crop's ``+x`` where the grasp is, in 3-D;
* y = z x x.

The crop is what a camera looking along z sees (:mod:`~stn_ros.perception.geometry.table_view`), and its depth is
metres along z. The grasp point is the surface seen at the crop's centre (its depth along z, ``surface_along``); the
gripper descends along z through it, so the origin is that point moved along z to the grasp depth ``z_along`` (not
along the camera's ray, which an oblique camera sees at an angle). The closing axis is the line through the crop's
centre row on the plane ``z . X = surface_along``: the two points of the row at the crop's edges, mapped through
``H`` to source pixels, meet that plane on their rays. It is exact for a projective ``H``, and x is perpendicular to z
by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.geometry.rigid_transforms import matrix_quaternion
from stn_ros.perception.geometry.table_view import OPTICAL_AXIS, intrinsic_matrix, points_at_normal_depth
from stn_ros.perception.grasps.grasp_image import highest_per_pixel


@dataclass
class GraspFrames:
    """The gripper frames of N crops before their grasp depths are known: where each grasp point is and how the
    gripper is turned (camera frame; NaN where a crop has no metric frame)."""

    surface_points: np.ndarray  # (N, 3) metres: the surface seen at each crop's centre
    rotations: np.ndarray  # (N, 3, 3): columns x (closing), y, z (approach)
    metres_per_crop_pixel: np.ndarray  # (N,) along the closing axis, at the surface
    surface_along: np.ndarray  # (N,) metres along z of the surface points

    @classmethod
    def unknown(cls, count: int) -> GraspFrames:
        """``count`` crops without a metric frame (no camera_info)."""
        nan = np.full(count, np.nan)
        return cls(np.full((count, 3), np.nan), np.full((count, 3, 3), np.nan), nan, nan.copy())

    def subset(self, rows: np.ndarray) -> GraspFrames:
        """The frames of ``rows`` (a boolean mask or indices)."""
        return GraspFrames(
            self.surface_points[rows], self.rotations[rows], self.metres_per_crop_pixel[rows], self.surface_along[rows]
        )

    def poses(self, z_along: np.ndarray) -> GraspPoses:
        """The poses at grasp depths ``z_along`` ``(N,)`` (metres along z): each surface point moved along z."""
        depth = np.asarray(z_along, dtype=np.float64).reshape(-1) - self.surface_along
        positions = self.surface_points + depth[:, None] * self.rotations[:, :, 2]
        rotations = np.where(np.isfinite(positions).all(axis=1)[:, None, None], self.rotations, np.nan)
        return GraspPoses(positions, rotations, self.metres_per_crop_pixel)

    def columns(self, crops: np.ndarray, homographies: np.ndarray, camera: PinholeCamera) -> np.ndarray:
        """``(N, h, w, 2)`` metres: where the reading of each pixel of ``crops`` ``(N, h, w)`` (metres along z) lies
        across the gripper, along its closing axis (x) and across it (y) from the line the gripper descends along;
        NaN where a pixel has no reading (:func:`top_down_images`)."""
        crops = np.asarray(crops, dtype=np.float32)
        count, height, width = crops.shape
        cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        grid = np.stack((cols.ravel(), rows.ravel(), np.ones(height * width)))  # (3, h w)
        # A reading v at crop pixel p is the point v M p / (n . M p), M = K^-1 H (the scale of H p cancels): across
        # the gripper, v (A p) / (b . p) - c with A = R[:, :2]^T M, b = M^T n, c = R[:, :2]^T (surface point).
        to_rays = np.linalg.inv(intrinsic_matrix(camera)) @ np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3)
        axes = self.rotations[:, :, :2]
        across = (axes.transpose(0, 2, 1) @ to_rays) @ grid  # (N, 2, h w)
        along = (to_rays.transpose(0, 2, 1) @ self.rotations[:, :, 2:])[:, :, 0] @ grid  # (N, h w)
        offset = np.einsum('nkj,nk->nj', axes, self.surface_points)  # (N, 2)
        with np.errstate(divide='ignore', invalid='ignore'):
            scale = crops.reshape(count, 1, -1) / np.where(along > 0.0, along, np.nan)[:, None]
        columns = (across * scale - offset[:, :, None]).astype(np.float32)
        return columns.transpose(0, 2, 1).reshape(count, height, width, 2)


@dataclass
class GraspPoses:
    """Gripper frames of N grasps in the camera frame (NaN where a grasp has no metric pose)."""

    positions: np.ndarray  # (N, 3) metres: the fingertips' centre
    rotations: np.ndarray  # (N, 3, 3): columns x (closing), y, z (approach)
    metres_per_crop_pixel: np.ndarray  # (N,) along the closing axis, at the surface

    @property
    def quaternions(self) -> np.ndarray:
        """``(N, 4)`` ``(x, y, z, w)`` of :attr:`rotations` (NaN rows stay NaN)."""
        out = np.full((len(self.rotations), 4), np.nan)
        finite = np.isfinite(self.rotations).all(axis=(1, 2))
        if finite.any():
            out[finite] = matrix_quaternion(self.rotations[finite])
        return out


def approach_directions(normals: np.ndarray | None, count: int) -> np.ndarray:
    """``(count, 3)`` unit approach directions: the rows of ``normals`` ``(count, 3)``, the optical axis where a row
    is not finite (no table normal) or ``normals`` is None."""
    out = np.tile(OPTICAL_AXIS, (count, 1))
    if normals is None:
        return out
    normals = np.asarray(normals, dtype=np.float64).reshape(count, 3)
    length = np.linalg.norm(normals, axis=1)
    known = np.isfinite(length) & (length > 0)
    out[known] = normals[known] / length[known, None]
    return out


def grasp_frames(
    homographies: np.ndarray,
    crop_size: tuple[int, int],
    surface_along: np.ndarray,
    camera: PinholeCamera,
    normals: np.ndarray | None = None,
) -> GraspFrames:
    """The gripper frames (module doc) of crops ``(h, w)`` = ``crop_size`` with ``H`` ``(N, 3, 3)`` (crop pixel ->
    source pixel), the surface at each crop's centre ``surface_along`` ``(N,)`` (metres along the approach; NaN: no
    frame) and approach directions ``normals`` ``(N, 3)`` (see :func:`approach_directions`), for a source image of
    ``camera``'s intrinsics."""
    H = np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3)
    count = len(H)
    surface_along = np.asarray(surface_along, dtype=np.float64).reshape(count)
    approach = approach_directions(normals, count)
    height, width = crop_size
    row, middle = (height - 1) / 2.0, (width - 1) / 2.0
    crop_points = np.array([[middle, row, 1.0], [0.0, row, 1.0], [width - 1.0, row, 1.0]])  # centre, left, right
    mapped = crop_points @ H.transpose(0, 2, 1)  # (N, 3, 3)
    with np.errstate(divide='ignore', invalid='ignore'):
        pixels = mapped[..., :2] / mapped[..., 2:]
    points = points_at_normal_depth(
        camera, pixels.reshape(-1, 2), np.repeat(surface_along, 3), np.repeat(approach, 3, axis=0)
    ).reshape(count, 3, 3)
    across = points[:, 2] - points[:, 1]
    span = np.linalg.norm(across, axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        closing = across / span[:, None]
    rotations = np.stack((closing, np.cross(approach, closing), approach), axis=2)
    unknown = ~(np.isfinite(points).all(axis=(1, 2)) & (span > 0))
    rotations[unknown] = np.nan
    surface_points = np.where(unknown[:, None], np.nan, points[:, 0])
    per_pixel = np.where(unknown, np.nan, span / (width - 1.0))
    return GraspFrames(surface_points, rotations, per_pixel, np.where(unknown, np.nan, surface_along))


def top_down_images(crops: np.ndarray, columns: np.ndarray, metres_per_crop_pixel: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` float32: crops ``(N, h, w)`` (metres along the approach) as a camera straight above each grasp
    would see them: every reading moved to the pixel over where it lies across the gripper (``columns``, from
    :meth:`GraspFrames.columns`; ``metres_per_crop_pixel`` ``(N,)`` the crops' scale), the highest where several land
    on one pixel, NaN (no reading) where none does: what an oblique view could not see from above. A crop of a camera
    looking straight down comes back nearly unchanged."""
    crops = np.asarray(crops, dtype=np.float32)
    count, height, width = crops.shape
    scale = np.asarray(metres_per_crop_pixel, dtype=np.float32).reshape(count, 1, 1)
    with np.errstate(invalid='ignore'):
        cols = np.rint(columns[..., 0] / scale + (width - 1) / 2.0)
        rows = np.rint(columns[..., 1] / scale + (height - 1) / 2.0)
    seen = np.isfinite(crops) & np.isfinite(cols) & np.isfinite(rows)
    images = np.broadcast_to(np.arange(count)[:, None, None], crops.shape)
    # the highest is the nearest the gripper: the smallest depth along the approach
    return -highest_per_pixel(count, (height, width), images[seen], rows[seen], cols[seen], -crops[seen])
