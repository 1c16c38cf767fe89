"""The fair rule for a tilted camera: ``minAreaRect`` of each object's footprint on the table, not of its mask in
the image. No pybullet, no rclpy, no torch.

An oblique camera sees an object's side faces as well as its top, and its mask in the image is the object's shape
under perspective: ``minAreaRect`` of that mask (today's rule) closes across the wrong side and centres the grasp off
the top. What a camera looking straight down would see is the footprint: each mask pixel back-projected with its
depth, then projected along the table's normal onto the table plane. This rule is that:

1. the table plane from the depth frame: the proposals' fit (:func:`~stn_ros.perception.stn.proposals.fit_table_plane`)
   in the camera frame (:class:`~stn_ros.perception.geometry.table_view.TablePlane`, normal ``n`` from the camera
   towards the table);
2. per proposal, its pixels' points in the table plane's coordinates (the axes ``e1, e2`` of the view that looks
   along ``n``, :func:`~stn_ros.perception.geometry.table_view.view_rotation`), in millimetres;
   :func:`~stn_ros.evaluation.min_area_rect.min_area_rect_axis` of them gives the centre and the closing axis
   (across the short side), both in 3-D;
3. the approach is ``n``; the grasp depth is the node's rule (:func:`~stn_ros.perception.grasps.gripper_depth.
   gripper_depths`) on the canonical crop a camera straight above the grasp sees (:func:`height_map_crops`): the
   frame's points projected along ``n`` into the crop's 5 mm cells (its axis along the closing axis), each cell the
   depth along ``n`` of its highest point; a cell the oblique camera saw no point in reads "no reading" (the table
   behind a box, hidden from an oblique camera, is not replaced by the box's side).

The same crops are what the pipeline's GQ-CNN ranks this rule's grasps on. Looking straight down, ``n`` is the
optical axis, the footprint is the mask, and the crops are today's up to the perspective within a crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.evaluation.min_area_rect import min_area_rect_axis
from stn_ros.perception.geometry.table_view import TablePlane, rays, view_rotation
from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE, canonical_scale, highest_per_pixel
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import gripper_depths
from stn_ros.perception.stn.proposals import ProposalConfig, fit_table_plane


@dataclass
class FootprintGrasps:
    """One rule grasp per proposal with a footprint, in the camera frame.

    Attributes:
        frames: ``(N, 4, 4)`` gripper frames (columns ``x`` closing axis, ``y = z x x``, ``z`` approach = the table
            normal; origin the fingertips' centre at the grasp depth); NaN origin where no gripper depth was found.
        along: ``(N,)`` metres along the normal of each origin (the top-down view's gripper depth), NaN as above.
        crops: ``(N, 32, 32)`` float32 canonical crops of the top-down view (:func:`height_map_crops`), metres along
            the normal, NaN = no reading.
        proposals: ``(N,)`` the proposal label (1-based) each grasp came from.
    """

    frames: np.ndarray
    along: np.ndarray
    crops: np.ndarray
    proposals: np.ndarray

    def __len__(self) -> int:
        return len(self.along)


def table_plane(depth_m: np.ndarray, camera: PinholeCamera, config: ProposalConfig | None = None) -> TablePlane | None:
    """The table in the camera frame from a depth frame ``(H, W)`` (metres, NaN = no reading): the proposals' fit,
    None without one."""
    plane = fit_table_plane(depth_m, config or ProposalConfig())
    return None if plane is None else TablePlane.from_inverse_depth(plane, camera)


def table_coordinates(points: np.ndarray, table: TablePlane) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points ``(N, 3)`` -> their footprint ``(N, 2)`` (metres along the axes ``e1, e2`` of the view
    looking along the normal, :func:`~stn_ros.perception.geometry.table_view.view_rotation`) and heights ``(N,)``
    above the table."""
    rotation = view_rotation(table.normal)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return points @ rotation[:, :2], table.heights(points)


def height_map_crops(
    footprint: np.ndarray, heights: np.ndarray, centres: np.ndarray, angles: np.ndarray, gripper: GripperConfig
) -> np.ndarray:
    """``(N, 32, 32)`` float32: the highest of ``heights`` ``(M,)`` of the points at ``footprint`` ``(M, 2)`` (table
    coordinates, metres) in each cell of the canonical crop centred at ``centres`` ``(N, 2)`` with its ``+x`` at
    ``angles`` ``(N,)`` (radians from ``e1`` towards ``e2``), at the canonical scale
    (:func:`~stn_ros.perception.grasps.grasp_image.canonical_scale`: 5 mm cells for the 8 cm opening); NaN where no
    point falls. Crop ``+y`` is ``+x`` turned a quarter towards ``e2``, as :func:`canonical_homographies` turns image
    axes."""
    per_metre = canonical_scale(gripper)
    middle = (CANONICAL_SIZE - 1) / 2.0
    reach = 0.75 * CANONICAL_SIZE / per_metre  # beyond the crop's half diagonal
    images, rows, cols, values = [], [], [], []
    for i, (centre, angle) in enumerate(zip(np.asarray(centres).reshape(-1, 2), np.asarray(angles), strict=True)):
        offsets = footprint - centre
        near = np.abs(offsets).max(axis=1) < reach
        offsets = offsets[near]
        cos, sin = np.cos(angle), np.sin(angle)
        cols.append(np.rint((offsets[:, 0] * cos + offsets[:, 1] * sin) * per_metre + middle))
        rows.append(np.rint((offsets[:, 1] * cos - offsets[:, 0] * sin) * per_metre + middle))
        images.append(np.full(len(offsets), i))
        values.append(heights[near])
    size = (CANONICAL_SIZE, CANONICAL_SIZE)
    if not images:
        return np.full((0, *size), np.nan, np.float32)
    crops = highest_per_pixel(len(images), size, *map(np.concatenate, (images, rows, cols, values)))
    return crops.astype(np.float32)


def footprint_axis(footprint: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The rule on one object's footprint ``(N, 2)`` (table coordinates, metres): its ``minAreaRect`` centre ``(2,)``
    and closing angle (radians from ``e1`` towards ``e2``, across the short side); None without a point."""
    if not len(footprint):
        return None
    # minAreaRect in millimetres: OpenCV's hull and calipers are made for pixel-sized coordinates
    centre, angle = min_area_rect_axis((1000.0 * np.asarray(footprint)).astype(np.float32))
    return centre / 1000.0, angle


def footprint_grasps(
    depth_m: np.ndarray,
    proposal_labels: np.ndarray,
    camera: PinholeCamera,
    table: TablePlane,
    gripper: GripperConfig,
) -> FootprintGrasps:
    """One grasp per proposal (labels ``1..K`` of ``proposal_labels`` ``(H, W)``) of a depth frame ``(H, W)``
    (metres, NaN = no reading): the module docstring's rule."""
    rows, cols = np.nonzero(np.isfinite(depth_m))
    points = rays(camera, np.stack((cols, rows), axis=1)) * depth_m[rows, cols, None].astype(np.float64)
    footprint, heights = table_coordinates(points, table)
    labels_seen = proposal_labels[rows, cols]
    centres, angles, labels = [], [], []
    for label in range(1, int(proposal_labels.max(initial=0)) + 1):
        fitted = footprint_axis(footprint[labels_seen == label])
        if fitted is not None:
            centres.append(fitted[0])
            angles.append(fitted[1])
            labels.append(label)
    if not labels:
        return FootprintGrasps(np.zeros((0, 4, 4)), np.zeros(0), np.zeros((0, 32, 32), np.float32), np.zeros(0, int))
    centres, angles = np.asarray(centres), np.asarray(angles)
    crops = table.distance - height_map_crops(footprint, heights, centres, angles, gripper)  # depth along n
    along = gripper_depths(crops, gripper)
    rotation = view_rotation(table.normal)
    e1, e2, n = rotation[:, 0], rotation[:, 1], table.normal
    frames = np.tile(np.eye(4), (len(labels), 1, 1))
    frames[:, :3, 0] = np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2
    frames[:, :3, 2] = n
    frames[:, :3, 1] = np.cross(n, frames[:, :3, 0])
    frames[:, :3, 3] = centres[:, :1] * e1 + centres[:, 1:] * e2 + along[:, None] * n  # n . origin = along
    return FootprintGrasps(frames, along, crops, np.asarray(labels, np.int64))
