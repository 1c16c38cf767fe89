"""Rigid transforms between coordinate frames: the grasps of the camera frame in a robot's frame. No rclpy.

Quaternions are ``(x, y, z, w)`` (``geometry_msgs/Quaternion``'s order, as tf2 has them), Hamilton convention:
``q1 ⊗ q2`` rotates by ``q2`` first, then by ``q1``, as the matrices ``R(q1) @ R(q2)`` do.

A :class:`RigidTransform` is named by its direction, as tf2's ``lookup_transform(target, source)`` is: it maps
points given in the *source* frame into the *target* frame, ``p_target = R p_source + t``. Equivalently it is the
pose of the source frame in the target frame (the source's origin is at ``t``, its axes are ``R``'s columns).
``grasp_quality_node``'s ``camera_to_target`` parameter is one, with the camera frame as the source.

>>> quarter_turn = RigidTransform((1.0, 0.0, 0.0), (0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)))
>>> quarter_turn.apply_points([[1.0, 0.0, 0.0]]).round(12)  # the source's x axis is the target's y axis
array([[1., 1., 0.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

UNIT_TOLERANCE = 1e-3
"""A parameter's quaternion whose norm is within this of 1 is normalised; one further away is refused (it is
a typo, or the components are in another order), never silently rescaled."""


def _quaternions(q: Any, name: str = 'q') -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ValueError(f'{name} must be quaternions (..., 4) as (x, y, z, w); got shape {q.shape}')
    return q


def quaternion_multiply(q1: Any, q2: Any) -> np.ndarray:
    """Hamilton product ``q1 ⊗ q2`` of quaternions ``(..., 4)`` as ``(x, y, z, w)`` (broadcast): the rotation
    ``q2`` followed by ``q1``, so that ``quaternion_matrix(q1 ⊗ q2) == quaternion_matrix(q1) @ quaternion_matrix(q2)``.

    >>> quaternion_multiply([0.0, 0.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.9]).tolist()  # the identity changes nothing
    [0.1, 0.2, 0.3, 0.9]
    """
    x1, y1, z1, w1 = np.moveaxis(_quaternions(q1, 'q1'), -1, 0)
    x2, y2, z2, w2 = np.moveaxis(_quaternions(q2, 'q2'), -1, 0)
    return np.stack(
        (
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ),
        axis=-1,
    )


def quaternion_matrix(q: Any) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of unit quaternions ``(..., 4)`` as ``(x, y, z, w)``.

    >>> quaternion_matrix([0.0, 0.0, 1.0, 0.0]).round(12)  # half a turn about z
    array([[-1.,  0.,  0.],
           [ 0., -1.,  0.],
           [ 0.,  0.,  1.]])
    """
    x, y, z, w = np.moveaxis(_quaternions(q), -1, 0)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
        (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
        (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)),
    )
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_quaternion(rotation: Any) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` as ``(x, y, z, w)`` with ``w >= 0`` of rotation matrices ``(..., 3, 3)``: the
    inverse of :func:`quaternion_matrix` (Shepperd's method: each from its largest diagonal term, so it stays exact
    near half turns).

    >>> matrix_quaternion(np.diag([-1.0, -1.0, 1.0])).round(12).tolist()  # half a turn about z
    [0.0, 0.0, 1.0, 0.0]
    """
    m = np.asarray(rotation, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f'rotation must be matrices (..., 3, 3), got shape {m.shape}')
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 x^2, 4 y^2, 4 z^2, 4 w^2 each from the diagonal; the largest gives a well-conditioned divisor.
    candidates = np.stack(
        (
            np.stack(
                (
                    1 + m00 - m11 - m22,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 2, 1] - m[..., 1, 2],
                ),
                -1,
            ),
            np.stack(
                (
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m00 + m11 - m22,
                    m[..., 1, 2] + m[..., 2, 1],
                    m[..., 0, 2] - m[..., 2, 0],
                ),
                -1,
            ),
            np.stack(
                (
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m00 - m11 + m22,
                    m[..., 1, 0] - m[..., 0, 1],
                ),
                -1,
            ),
            np.stack(
                (
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                    1 + m00 + m11 + m22,
                ),
                -1,
            ),
        ),
        axis=-2,
    )  # (..., 4, 4): row k is 4 q_k q
    largest = np.argmax(np.stack((m00 - m11 - m22, m11 - m00 - m22, m22 - m00 - m11, m00 + m11 + m22), -1), axis=-1)
    q = np.take_along_axis(candidates, largest[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


@dataclass(frozen=True)
class RigidTransform:
    """A rotation and translation mapping points of a source frame into a target frame: ``R p + t`` (module doc).

    Attributes:
        translation: ``(tx, ty, tz)`` metres: the source frame's origin in the target frame.
        rotation: unit quaternion ``(x, y, z, w)``: the source frame's orientation in the target frame.
    """

    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]

    @classmethod
    def identity(cls) -> RigidTransform:
        """The transform that changes nothing."""
        return cls((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))

    def matrix(self) -> np.ndarray:
        """The ``4 x 4`` homogeneous matrix ``[[R, t], [0, 1]]``."""
        out = np.eye(4)
        out[:3, :3] = quaternion_matrix(self.rotation)
        out[:3, 3] = self.translation
        return out

    def apply_points(self, points: Any) -> np.ndarray:
        """``(N, 3)`` float64 points of the source frame in the target frame; a NaN point stays NaN (no position
        in one frame is none in the other)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f'points must be (N, 3); got shape {points.shape}')
        return points @ quaternion_matrix(self.rotation).T + np.asarray(self.translation)

    def apply_orientations(self, orientations: Any) -> np.ndarray:
        """Orientations ``(..., 4)`` (x, y, z, w) given in the source frame, expressed in the target frame:
        ``rotation ⊗ q``."""
        return quaternion_multiply(self.rotation, orientations)


def parse_camera_to_target(value: Sequence[float] | None) -> RigidTransform | None:
    """``camera_to_target`` ``[tx, ty, tz, qx, qy, qz, qw]`` (a ROS double or integer array) -> the transform
    mapping camera-frame points into the target frame (:class:`RigidTransform`); None for None or ``[]`` (not
    given).

    Raises ValueError, naming what is wrong, for a length other than 7, a value that is not a finite number, or
    a quaternion whose norm is not within :data:`UNIT_TOLERANCE` of 1 (one within it is normalised).

    >>> parse_camera_to_target([0.1, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0])
    RigidTransform(translation=(0.1, 0.0, 0.5), rotation=(0.0, 0.0, 0.0, 1.0))
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, '__len__'):
        raise ValueError(f'must be a list [tx, ty, tz, qx, qy, qz, qw]; got {value!r}')
    values = list(value)
    if not values:
        return None
    if len(values) != 7:
        raise ValueError(f'must be 7 numbers [tx, ty, tz, qx, qy, qz, qw] (metres, unit quaternion); got {len(values)}')
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise ValueError(f'must be numbers [tx, ty, tz, qx, qy, qz, qw]; got {values!r}')
    numbers = np.asarray(values, dtype=np.float64)
    if not np.isfinite(numbers).all():
        raise ValueError(f'must be finite numbers; got {values!r}')
    q = numbers[3:]
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > UNIT_TOLERANCE:
        raise ValueError(
            f'the quaternion (qx, qy, qz, qw) = ({", ".join(f"{v:g}" for v in q)}) has norm {norm:.6g}, not 1 '
            f'(within {UNIT_TOLERANCE:g}): give a unit quaternion in the order x, y, z, w'
        )
    return RigidTransform(tuple(float(v) for v in numbers[:3]), tuple(float(v) for v in q / norm))
