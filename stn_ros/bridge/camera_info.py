"""Convert between ``sensor_msgs/CameraInfo`` and :class:`PinholeCamera` (both ways). No rclpy.

Messages are duck-typed (``k``, ``width``, ``height`` are read); ``sensor_msgs`` is imported lazily only when
making a message without an explicit message class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FOCAL_RANGE_PX = (1.0, 1e6)
"""Focal lengths outside this range (pixels) are no real camera's: such a ``camera_info`` is refused."""


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of the (rectified) image: focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_camera_info(cls, msg: Any) -> PinholeCamera:
        """From a ``CameraInfo`` (uses ``k``, the 3x3 intrinsic matrix, row-major, and the image size).

        Raises ValueError, naming what is wrong, for an uncalibrated camera (``k`` all zero), a size of 0,
        focal lengths that are not finite or outside :data:`FOCAL_RANGE_PX`, or a principal point that is
        not finite or outside the image: no metric output is made from such intrinsics.
        """
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        width, height = int(msg.width), int(msg.height)
        fx, fy, cx, cy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
        low, high = FOCAL_RANGE_PX
        if not k.any():
            raise ValueError('camera_info is uncalibrated (K is all zeros)')
        if width <= 0 or height <= 0:
            raise ValueError(f'camera_info has no image size ({width}x{height})')
        if not (low <= fx <= high and low <= fy <= high):  # also False for NaN
            raise ValueError(f'camera_info has focal lengths fx={fx}, fy={fy}: not in [{low:g}, {high:g}] pixels')
        if not (0 <= cx <= width and 0 <= cy <= height):
            raise ValueError(f'camera_info has its principal point ({cx}, {cy}) outside the {width}x{height} image')
        return cls(fx, fy, cx, cy, width, height)

    def for_image(self, height: int, width: int) -> PinholeCamera:
        """These intrinsics for an image of ``height x width`` (binned or resized); same aspect only.

        Raises ValueError when the aspect ratio differs: those intrinsics describe another image.
        """
        if (height, width) == (self.height, self.width):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx - sy) > 1e-6:
            raise ValueError(f'camera_info is {self.width}x{self.height} but the image is {width}x{height}')
        # Pixel centres at integers: scaling maps the image edge (-0.5) to the edge.
        return PinholeCamera(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    def back_project(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Camera-frame points ``(N, 3)`` in metres of pixels ``uv`` ``(N, 2)`` at depths ``z`` ``(N,)``."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        return np.stack(((uv[:, 0] - self.cx) * z / self.fx, (uv[:, 1] - self.cy) * z / self.fy, z), axis=1)


def camera_info_message(camera: PinholeCamera, header: Any = None, msg_cls: type | None = None) -> Any:
    """The ``CameraInfo`` (``msg_cls``, default ``sensor_msgs.msg.CameraInfo``) of an ideal (rectified,
    distortion-free) pinhole camera, with ``header``: the inverse of :meth:`PinholeCamera.from_camera_info`."""
    if msg_cls is None:
        from sensor_msgs.msg import CameraInfo as msg_cls
    info = msg_cls(header=header, width=camera.width, height=camera.height, distortion_model='plumb_bob')
    info.k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    info.p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return info
