"""Dex-Net 2.0 canonical grasp images (the analytic oracle the STN learns) and the gripper they are made for.

A canonical grasp image is ``CANONICAL_SIZE x CANONICAL_SIZE`` depth, centred on the grasp centre
(crop pixel ``((32 - 1) / 2, (32 - 1) / 2)``), with the grasp axis along the crop's ``+x`` (columns),
at a fixed metric scale: the gripper's ``max_opening`` spans ``OPENING_FRACTION`` = 1/2 of the width,
so with the default 8 cm opening one crop pixel is 5 mm (200 px/m, 16 cm across) and both jaws of
any feasible grasp (at most ``max_opening / 2 + jaw_thickness`` = 6 cm from the centre) are in view.

As in Dex-Net, the crop is a similarity of the depth image: the grasp plane is taken as
fronto-parallel at the gripper depth ``z``, so one crop pixel is ``f / (z * scale)`` source pixels
(``fx`` across columns, ``fy`` across rows). This is exact for a camera looking straight down; for a
tilted camera it is Dex-Net's approximation. ``H`` maps crop pixel ``(col, row, 1)`` to source pixel,
the package's published convention: ``cv2.warpPerspective(depth, H, (32, 32), flags=cv2.INTER_LINEAR |
cv2.WARP_INVERSE_MAP)`` gives the crop (:func:`stn_ros.core.sampler.warp_perspective_opencv`).

Normalisation (:func:`normalize_grasp_images`): the gripper depth ``z`` is subtracted, so a pixel is
metres *behind* the fingertips' plane (the object's top reads about ``-finger_depth``, the table is
positive); missing readings (dropouts, or outside the source image) take the value of the nearest
valid pixel, a cheap inpainting like Dex-Net's that neither invents holes nor phantom obstacles. A
crop with no valid pixel reads 0.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.core.sampler import warp_perspective_opencv
from stn_ros.perception.grasps.gripper import GripperConfig

CANONICAL_SIZE = 32
OPENING_FRACTION = 0.5
"""Fraction of the canonical image's width spanned by the gripper's ``max_opening``."""


def canonical_scale(gripper: GripperConfig) -> float:
    """Canonical image pixels per metre: ``OPENING_FRACTION * CANONICAL_SIZE / max_opening``."""
    return OPENING_FRACTION * CANONICAL_SIZE / gripper.max_opening


def canonical_homographies(
    centres: np.ndarray, angles: np.ndarray, z: np.ndarray, camera: PinholeCamera, gripper: GripperConfig
) -> np.ndarray:
    """``(N, 3, 3)`` float64 crop pixel -> source pixel of grasps at pixels ``(N, 2)``, angles ``(N,)``
    (radians, normalized image coordinates) and gripper depths ``(N,)`` metres."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    angles = np.asarray(angles, dtype=np.float64).reshape(-1)
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    per_pixel = 1.0 / (canonical_scale(gripper) * z)  # normalized image units per crop pixel
    cos, sin = np.cos(angles) * per_pixel, np.sin(angles) * per_pixel
    middle = (CANONICAL_SIZE - 1) / 2.0
    homographies = np.zeros((len(z), 3, 3))
    homographies[:, 0, 0], homographies[:, 0, 1] = camera.fx * cos, -camera.fx * sin
    homographies[:, 1, 0], homographies[:, 1, 1] = camera.fy * sin, camera.fy * cos
    homographies[:, 0, 2] = centres[:, 0] - camera.fx * (cos - sin) * middle
    homographies[:, 1, 2] = centres[:, 1] - camera.fy * (sin + cos) * middle
    homographies[:, 2, 2] = 1.0
    return homographies


def crop_axis(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grasp centres ``(N, 2)`` (source pixels) and axis angles ``(N,)`` (radians in ``[-pi/2, pi/2)``) of
    canonical crops ``H`` ``(N, 3, 3)`` or ``(3, 3)``: where the crop centre lands and where its ``+x`` points."""
    H = np.asarray(H, dtype=np.float64).reshape(-1, 3, 3)
    middle = (CANONICAL_SIZE - 1) / 2.0
    points = np.array([[middle, middle, 1.0], [middle + 1.0, middle, 1.0]]) @ H.transpose(0, 2, 1)
    points = points[..., :2] / points[..., 2:]
    direction = points[:, 1] - points[:, 0]
    angle = (np.arctan2(direction[:, 1], direction[:, 0]) + np.pi / 2) % np.pi - np.pi / 2
    return points[:, 0], angle


def highest_per_pixel(
    count: int, size: tuple[int, int], images: np.ndarray, rows: np.ndarray, cols: np.ndarray, heights: np.ndarray
) -> np.ndarray:
    """``(count, h, w)`` images (``heights``' dtype) of points: point ``k`` lands in image ``images[k]`` at pixel
    ``(rows[k], cols[k])`` (integers; points outside the images are dropped); each pixel keeps the highest of the
    ``heights`` that land on it, NaN (no reading) where none does. A height map of scattered points, as a camera
    straight above them sees it."""
    height, width = size
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    cells = (np.asarray(images, dtype=np.int64)[inside] * height + rows[inside]) * width + cols[inside]
    values = torch.from_numpy(np.ascontiguousarray(np.asarray(heights)[inside]))
    out = torch.full((count * height * width,), -float('inf'), dtype=values.dtype)
    out.scatter_reduce_(0, torch.from_numpy(cells), values, reduce='amax')  # one pass; numpy's maximum.at is slow
    image = out.numpy().reshape(count, height, width)
    image[np.isneginf(image)] = np.nan
    return image


def fill_missing(images: np.ndarray) -> np.ndarray:
    """Copy of ``(h, w)`` or ``(B, h, w)`` float32 images with each NaN set to its nearest valid pixel."""
    out = np.array(images, dtype=np.float32)
    for image in out.reshape(-1, *out.shape[-2:]):
        valid = np.isfinite(image)
        if valid.all():
            continue
        if not valid.any():
            image[:] = 0.0
            continue
        # DIST_LABEL_PIXEL numbers the valid pixels in raster order and labels every pixel with its
        # nearest one, so the label indexes the valid values directly.
        _, nearest = cv2.distanceTransformWithLabels(
            (~valid).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        image[:] = image[valid][nearest - 1]
    return out


def normalize_grasp_images(crops: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Depth crops ``(B, h, w)`` metres (NaN = no reading) -> relative depth ``crop - z``, NaN filled."""
    crops = np.asarray(crops, dtype=np.float32)
    z = np.asarray(z, dtype=np.float32).reshape(-1, *([1] * (crops.ndim - 1)))
    return fill_missing(crops - z)


def grasp_image(depth_m: np.ndarray, H: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Canonical grasp image(s) of a depth frame ``(H, W)`` float32 metres (NaN = no reading).

    ``H`` ``(3, 3)`` or ``(B, 3, 3)`` (crop pixel -> source pixel) and the gripper depth(s) ``z``
    metres; returns ``(32, 32)`` or ``(B, 32, 32)`` float32 depth relative to the gripper, NaN-free.
    """
    H = np.asarray(H, dtype=np.float64)
    crops = warp_perspective_opencv(
        np.asarray(depth_m, dtype=np.float32),
        H.reshape(-1, 3, 3),
        (CANONICAL_SIZE, CANONICAL_SIZE),
        border_value=float('nan'),
    )
    images = normalize_grasp_images(crops, z)
    return images[0] if H.ndim == 2 else images
