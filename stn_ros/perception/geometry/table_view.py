"""The table seen from an oblique camera, and the *view* that looks straight down at it. No rclpy.

The proposals fit the table as a plane linear in inverse depth over the pixel grid, ``1 / z = a u + b v + c``
(:func:`~stn_ros.perception.stn.proposals.fit_table_plane`). With the camera's intrinsics ``K`` that plane is
``n . X = d`` in the camera frame: ``n`` the unit normal pointing from the camera towards the table (the direction a
gripper approaches the table in), ``d > 0`` the camera's distance to the plane, and ``(a, b, c) = K^-T n / d``.

The *view* is the camera turned about its own centre until its optical axis is ``n``: the smallest rotation that
takes the optical axis ``(0, 0, 1)`` to ``n`` (:func:`view_rotation`), the same intrinsics ``K``. A pure rotation maps
rays to rays, so one homography takes view pixels to source pixels exactly, whatever the scene's depth
(:func:`view_to_source`), and a crop sampled through it is still one resampling of the source. Depth in the view is
metres along ``n`` (:func:`depth_along_normal`): a point's height above the table is ``d`` minus it.

Conventions: pixel centres at integer ``(col, row)``; rotations are ``(3, 3)`` matrices whose columns are the view's
axes in the camera frame, so ``X_camera = R @ X_view`` and ``source ~ K R K^-1 view``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera

OPTICAL_AXIS = np.array([0.0, 0.0, 1.0])


def intrinsic_matrix(camera: PinholeCamera) -> np.ndarray:
    """``(3, 3)`` float64 ``K`` of ``camera``."""
    return np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class TablePlane:
    """The table in the camera frame: ``normal . X = distance`` (metres), ``normal`` a unit vector pointing from the
    camera towards the table."""

    normal: np.ndarray  # (3,) float64
    distance: float

    @classmethod
    def from_inverse_depth(cls, plane: np.ndarray, camera: PinholeCamera) -> TablePlane | None:
        """The plane ``1 / z = a u + b v + c`` of a frame of ``camera``'s size in the camera frame; None when it is no
        plane in front of the camera (all zero, not finite, or the camera on its far side)."""
        coefficients = np.asarray(plane, dtype=np.float64).reshape(3)
        scaled = intrinsic_matrix(camera).T @ coefficients  # = n / d
        length = float(np.linalg.norm(scaled))
        if not np.isfinite(length) or length == 0.0:
            return None
        normal = scaled / length
        if normal[2] <= 0.0:  # the table's side faces away from the camera: not a table it looks at
            return None
        return cls(normal, 1.0 / length)

    def heights(self, points: np.ndarray) -> np.ndarray:
        """Metres of camera-frame points ``(..., 3)`` above the plane (towards the camera: positive)."""
        return self.distance - np.asarray(points, dtype=np.float64) @ self.normal


def view_rotation(normal: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation ``R`` of the view looking along ``normal`` (unit, camera frame): the smallest rotation that
    takes the optical axis to it, so ``R @ (0, 0, 1) = normal`` and the view's image axes stay as close to the
    camera's as they can. ``normal`` along the optical axis gives the identity."""
    n = np.asarray(normal, dtype=np.float64).reshape(3)
    n = n / np.linalg.norm(n)
    axis = np.cross(OPTICAL_AXIS, n)  # |axis| = sin(angle)
    cosine = float(n[2])
    if cosine <= -1.0 + 1e-12:
        raise ValueError(f'normal {normal!r} points back at the camera: no view looks along it')
    skew = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + skew + skew @ skew / (1.0 + cosine)  # Rodrigues with (1 - cos) / sin^2 = 1 / (1 + cos)


def view_to_source(camera: PinholeCamera, rotation: np.ndarray) -> np.ndarray:
    """``(3, 3)`` homography from view pixels to source pixels, ``K R K^-1``: exact for every point (a pure
    rotation)."""
    k = intrinsic_matrix(camera)
    return k @ np.asarray(rotation, dtype=np.float64) @ np.linalg.inv(k)


def rays(camera: PinholeCamera, pixels: np.ndarray) -> np.ndarray:
    """``(N, 3)`` camera-frame rays ``K^-1 (u, v, 1)`` of source pixels ``(N, 2)`` (unit depth, not unit length)."""
    uv = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    return np.stack(((uv[:, 0] - camera.cx) / camera.fx, (uv[:, 1] - camera.cy) / camera.fy, np.ones(len(uv))), axis=1)


def depth_along_normal(
    camera: PinholeCamera, pixels: np.ndarray, depth_z: np.ndarray, normal: np.ndarray
) -> np.ndarray:
    """Metres along ``normal`` (``(3,)``, or ``(N, 3)``: one per point) of the points seen at source ``pixels``
    ``(N, 2)`` with optical-axis depths ``depth_z`` ``(N,)``: ``n . X``, the view's depth. NaN stays NaN (no
    reading)."""
    directions = rays(camera, pixels)
    return np.asarray(depth_z, dtype=np.float64).reshape(-1) * _along(directions, normal)


def points_at_normal_depth(
    camera: PinholeCamera, pixels: np.ndarray, depth_along: np.ndarray, normal: np.ndarray
) -> np.ndarray:
    """Camera-frame points ``(N, 3)`` on the rays of source ``pixels`` ``(N, 2)`` at ``depth_along`` ``(N,)`` metres
    along ``normal`` (``(3,)`` or ``(N, 3)``; ``n . X = depth_along``): the inverse of :func:`depth_along_normal`.
    ``normal`` along the optical axis gives :meth:`PinholeCamera.back_project`."""
    directions = rays(camera, pixels)
    along = _along(directions, normal)
    with np.errstate(divide='ignore', invalid='ignore'):
        scale = np.asarray(depth_along, dtype=np.float64).reshape(-1) / along
    return directions * np.where(along > 0.0, scale, np.nan)[:, None]


def _along(directions: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """``(N,)`` dot products of rays ``(N, 3)`` with one normal ``(3,)`` or one each ``(N, 3)``."""
    normal = np.asarray(normal, dtype=np.float64)
    if normal.shape == (3,):
        return directions @ normal
    return np.einsum('ij,ij->i', directions, normal.reshape(len(directions), 3))
