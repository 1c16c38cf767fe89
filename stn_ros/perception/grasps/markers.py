"""``~/grasp_markers``: a gripper outline per grasp for RViz (``visualization_msgs/MarkerArray``). No rclpy.

The geometry is numpy (:func:`gripper_outline`, :func:`quality_colours`); :func:`grasp_marker_array` builds the
message, importing ``visualization_msgs`` only when called (the rest of the package never needs it).

Each grasp is one ``LINE_LIST`` marker whose pose is the grasp's pose (``~/best_grasp``'s convention: x = the
closing axis, z = the approach direction, the origin where the fingertips go) and whose points are the
outline in that pose's frame, so RViz draws the gripper where and how it would close:

* two jaws, each a box ``jaw_thickness`` (along x) by ``jaw_width`` (along y) by the finger length (along z),
  their inner faces the grasp's ``opening`` apart (the gripper as it approaches, opened as far as clears the
  neighbours; :mod:`~stn_ros.perception.grasps.jaw_clearance`), fingertips at z = 0;
* the palm bar joining the jaws' backs, at z = -finger length (towards the camera: the jaws point along +z);
* a wrist stub behind the middle of the palm, half the opening long.

The finger length drawn is ``2 * finger_depth``: the fingertips go ``finger_depth`` below the object's top
(:mod:`~stn_ros.perception.grasps.gripper_depth`), so the palm is drawn as far above it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from stn_ros.perception.grasps.gripper import GripperConfig

NAMESPACE = 'grasps'
"""The markers' ``ns`` (the DELETEALL that opens every array clears it)."""
LINE_WIDTH_M = 0.002
"""Line width of a grasp's outline (``scale.x``); the best grasp's is :data:`BEST_LINE_WIDTH_M`, opaque."""
BEST_LINE_WIDTH_M = 0.006
ALPHA, BEST_ALPHA = 0.6, 1.0


def box_edges(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(12, 2, 3)``: the 12 edges of the axis-aligned box from corner ``low`` to ``high``."""
    corners = np.array([[high[i] if (k >> i) & 1 else low[i] for i in range(3)] for k in range(8)])
    pairs = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count('1') == 1]
    return np.stack([corners[[a, b]] for a, b in pairs])


def gripper_outline(gripper: GripperConfig | None = None) -> np.ndarray:
    """``(K, 3)`` float64 points, in pairs (a ``LINE_LIST``), of the open gripper's outline in the grasp's frame
    (module doc): both jaws' boxes, the palm bar and the wrist stub; metres, ``K = 2 * 26``.

    >>> points = gripper_outline(GripperConfig(max_opening=0.08, jaw_thickness=0.02))
    >>> points.shape, float(points[:, 0].min()), float(points[:, 2].max())  # outer jaw face; the fingertips
    ((52, 3), -0.06, 0.0)
    """
    gripper = gripper or GripperConfig()
    inner, outer = gripper.max_opening / 2, gripper.max_opening / 2 + gripper.jaw_thickness
    half_width, length = gripper.jaw_width / 2, 2 * gripper.finger_depth
    segments = [
        box_edges(np.array([sign * inner, -half_width, -length]), np.array([sign * outer, half_width, 0.0]))
        for sign in (-1.0, 1.0)
    ]
    middle = (inner + outer) / 2
    palm = [[-middle, 0.0, -length], [middle, 0.0, -length]]
    wrist = [[0.0, 0.0, -length], [0.0, 0.0, -length - inner]]
    segments.append(np.array([palm, wrist]))
    return np.concatenate(segments).reshape(-1, 3)


def quality_colours(quality: Any) -> np.ndarray:
    """``(N, 3)`` RGB in [0, 1] of grasp qualities ``(N,)``: red (0) through yellow to green (1); NaN is red.

    >>> quality_colours([0.0, 1.0]).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    q = np.clip(np.nan_to_num(np.asarray(quality, dtype=np.float64).reshape(-1), nan=0.0), 0.0, 1.0)
    return np.stack((1.0 - q, q, np.zeros_like(q)), axis=1)


def grasp_marker_array(
    header: Any,
    positions: np.ndarray,
    orientations: np.ndarray,
    quality: np.ndarray,
    best: int | None,
    gripper: GripperConfig | None = None,
    openings: np.ndarray | None = None,
) -> Any:
    """``~/grasp_markers`` of one frame: a ``visualization_msgs/MarkerArray`` (rclpy message).

    First a ``DELETEALL`` of :data:`NAMESPACE` (a frame without grasps clears the display, and markers of an
    earlier frame never linger), then one ``LINE_LIST`` :func:`gripper_outline` per grasp with a metric
    position: id = its index in ``~/grasps``, pose = ``positions[i]`` ``(N, 3)`` and ``orientations[i]``
    ``(N, 4)`` (x, y, z, w), colour = :func:`quality_colours`; the grasp ``best`` (an index, None: none) thicker
    and opaque; its jaws ``openings[i]`` apart (``(N,)`` metres; NaN or None: fully open). A grasp whose position is
    not finite (no depth or camera_info, no transform) gets no marker.
    Every marker has ``header`` (the frame of ``~/grasps``) and lives until the next array replaces it.
    """
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    orientations = np.asarray(orientations, dtype=np.float64).reshape(-1, 4)
    colours = quality_colours(quality)
    if not len(positions) == len(orientations) == len(colours):
        raise ValueError(
            f'positions, orientations and quality differ in length: {len(positions)}, {len(orientations)}, '
            f'{len(colours)}'
        )
    gripper = gripper or GripperConfig()
    outlines: dict[float, list] = {}

    def outline(opening: float) -> list:
        """The outline's points with the jaws ``opening`` apart (NaN: fully open), made once per opening."""
        opening = gripper.max_opening if not np.isfinite(opening) else min(float(opening), gripper.max_opening)
        if opening not in outlines:
            points = gripper_outline(replace(gripper, max_opening=opening))
            outlines[opening] = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
        return outlines[opening]

    openings = np.full(len(positions), np.nan) if openings is None else np.asarray(openings, np.float64).reshape(-1)
    markers = [Marker(header=header, ns=NAMESPACE, action=Marker.DELETEALL)]
    for index in np.flatnonzero(np.isfinite(positions).all(axis=1) & np.isfinite(orientations).all(axis=1)):
        is_best = best is not None and int(index) == best
        marker = Marker(header=header, ns=NAMESPACE, id=int(index), type=Marker.LINE_LIST, action=Marker.ADD)
        marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = map(float, positions[index])
        o = marker.pose.orientation
        o.x, o.y, o.z, o.w = map(float, orientations[index])
        marker.scale.x = BEST_LINE_WIDTH_M if is_best else LINE_WIDTH_M
        r, g, b = map(float, colours[index])
        marker.color = ColorRGBA(r=r, g=g, b=b, a=BEST_ALPHA if is_best else ALPHA)
        marker.points = outline(openings[index])
        markers.append(marker)
    return MarkerArray(markers=markers)
