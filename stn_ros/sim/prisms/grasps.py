"""Analytic parallel-jaw grasp labels for the prisms of a synthetic scene (Dex-Net 2.0 style).

A grasp approaches straight down the table normal, jaws open, and closes horizontally along its axis.
It is evaluated in metric table coordinates on the object's footprint polygon (the prisms' walls are
vertical, so the planar contact analysis is exact), then projected into the image.

Candidate: a closing line in the table plane, a point ``p`` and a unit axis ``a``. The jaws come from
outside, so the contacts ``c1``, ``c2`` are the first and last crossings of the line with the footprint
boundary; the grasp centre is their midpoint (the gripper centres itself on the contacts) and the width
is ``|c2 - c1|``. The fingertips go ``finger_depth`` below the object's top, but stay
``table_clearance`` above the table: grasp height ``h_g = max(height - finger_depth, table_clearance)``.
The rules, checked in this order (``Grasp.failure`` is the first that fails, '' for a good grasp):

1. ``no_contact``: the line misses the object (or only grazes a vertex: width below 1 mm).
2. ``opening``: ``width + clearance > max_opening``.
3. ``friction``: either contact is outside its friction cone: the angle between the jaw's closing
   direction (``+a`` at ``c1``, ``-a`` at ``c2``) and the inward wall normal exceeds ``atan(mu)``.
4. ``collision``: a jaw footprint overlaps an object (this one or another) that rises above ``h_g``.
   Each jaw is a ``jaw_thickness`` (along ``a``) x ``jaw_width`` (across) rectangle whose inner face is
   ``clearance / 2`` outside its contact (the pre-grasp opening ``width + clearance``); the jaws descend
   there, so anything above the fingertips inside those rectangles is hit.

With the defaults a jaw's half-width times ``mu`` (5 mm x 0.5 = 2.5 mm) is less than its clearance
(3 mm): a jaw never clips a flat or convex wall it grasps when the friction rule holds, so rules 3 and 4
stay distinct there.

Candidates per object: a share (``antipodal_fraction``) starts at a random point of the boundary and
closes along the inward normal turned by an angle uniform in +-30 degrees (mostly good, some outside
the friction cone, some too wide, some blocked); the rest are lines through a random point of a disc
1.2x the object's circumradius around it at a uniform random angle (all kinds of failures, including
misses). Image quantities: ``centre`` is the projection of the 3-D grasp centre ``(centre, h_g)``, ``z``
its camera depth, ``angle`` the direction of the projected axis in normalized image coordinates
(``(u - cx) / fx``, ``(v - cy) / fy``; the pixel angle when ``fx == fy``) wrapped to ``[-pi/2, pi/2)``,
``width_px`` the distance between the projected contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.prisms.scenes import Scene, points_in_polygon

FAILURES = ('no_contact', 'opening', 'friction', 'collision')
"""The rules, in the order they are checked (a grasp's ``failure`` is the first that fails)."""

_MIN_WIDTH = 1e-3
_ANTIPODAL_SPREAD = math.radians(30.0)


@dataclass(frozen=True)
class Grasp:
    """One labelled grasp (see the module docstring for the conventions).

    Attributes:
        centre: ``(u, v)`` pixels, projection of the 3-D grasp centre.
        angle: radians, direction of the grasp axis in the image, in ``[-pi/2, pi/2)`` (mod pi).
        width_m: metres between the contacts (0 without contact).
        width_px: pixels between the projected contacts (0 without contact).
        z: metres, camera depth of the 3-D grasp centre (the gripper depth).
        object_index: index into ``scene.objects``.
        good: all rules hold.
        failure: the first rule that fails (one of :data:`FAILURES`), '' when good.
        contacts: ``(2, 2)`` table-frame contact points in metres (NaN without contact).
        centre_table: ``(3,)`` table-frame grasp centre ``(x, y, h_g)`` in metres.
        axis_yaw: radians, direction of the grasp axis in the table frame.
    """

    centre: tuple[float, float]
    angle: float
    width_m: float
    width_px: float
    z: float
    object_index: int
    good: bool
    failure: str
    contacts: np.ndarray
    centre_table: np.ndarray
    axis_yaw: float


def grasp_height(height: float, gripper: GripperConfig) -> float:
    """Table-frame height in metres of the fingertips grasping an object ``height`` tall."""
    return max(height - gripper.finger_depth, gripper.table_clearance)


def evaluate_grasps(
    scene: Scene, object_index: int, points: np.ndarray, yaws: np.ndarray, gripper: GripperConfig
) -> list[Grasp]:
    """Label the closing lines through table points ``(M, 2)`` at table yaws ``(M,)`` on one object."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    yaws = np.asarray(yaws, dtype=np.float64).reshape(-1)
    obj = scene.objects[object_index]
    axis = np.stack((np.cos(yaws), np.sin(yaws)), axis=1)
    s1, s2, normal1, normal2 = _contacts(obj.footprint, points, axis)
    contact = np.isfinite(s1) & (s2 - s1 >= _MIN_WIDTH)
    width = np.where(contact, s2 - s1, 0.0)
    centre = np.where(contact[:, None], points + 0.5 * (s1 + s2)[:, None] * axis, points)
    limit = 1.0 / math.sqrt(1.0 + gripper.mu**2)  # cos(atan(mu))
    friction = (-(axis * normal1).sum(1) >= limit - 1e-12) & ((axis * normal2).sum(1) >= limit - 1e-12)
    opening = width + gripper.clearance <= gripper.max_opening
    height = grasp_height(obj.height, gripper)
    collision = _jaw_collisions(scene, height, centre, axis, width, gripper)
    failure = np.select([~contact, ~opening, ~friction, collision], [1, 2, 3, 4], 0)
    return _to_grasps(scene, object_index, centre, axis, width, s1, s2, points, height, failure)


ROBUSTNESS_YAWS = np.radians([-10.0, -5.0, 5.0, 10.0])
ROBUSTNESS_SHIFTS = np.array([-0.004, -0.002, 0.002, 0.004])


def grasp_robustness(scene: Scene, grasps: list[Grasp], gripper: GripperConfig) -> np.ndarray:
    """``(N,)`` share of small perturbations of each grasp that are still good, in ``[0, 1]``.

    The perturbations are what a canonicalizer's error does to a grasp: the axis turned by +-5 and
    +-10 degrees about the grasp centre, and the closing line shifted across the axis by +-2 and +-4 mm
    (a shift along the axis changes nothing: the jaws centre themselves on the contacts). Like Dex-Net's
    robust grasp quality, it prefers grasps in the middle of a good region over ones at its edge.
    """
    out = np.zeros(len(grasps))
    for index in {g.object_index for g in grasps}:
        rows = [i for i, g in enumerate(grasps) if g.object_index == index]
        centres = np.array([grasps[i].centre_table[:2] for i in rows])
        yaws = np.array([grasps[i].axis_yaw for i in rows])
        across = np.stack((-np.sin(yaws), np.cos(yaws)), axis=1)
        points = np.concatenate(
            [
                np.repeat(centres[:, None], len(ROBUSTNESS_YAWS), 1),
                centres[:, None] + ROBUSTNESS_SHIFTS[None, :, None] * across[:, None],
            ],
            axis=1,
        )
        turned = np.concatenate(
            [yaws[:, None] + ROBUSTNESS_YAWS[None], np.repeat(yaws[:, None], len(ROBUSTNESS_SHIFTS), 1)], axis=1
        )
        good = np.array(
            [g.good for g in evaluate_grasps(scene, index, points.reshape(-1, 2), turned.reshape(-1), gripper)]
        )
        out[rows] = good.reshape(len(rows), -1).mean(axis=1)
    return out


def sample_grasps(
    scene: Scene, gripper: GripperConfig, rng: np.random.Generator, per_object: int, antipodal_fraction: float = 0.7
) -> list[Grasp]:
    """``per_object`` labelled candidates for each object of the scene (see the module docstring)."""
    grasps: list[Grasp] = []
    antipodal = int(round(per_object * antipodal_fraction))
    for index, obj in enumerate(scene.objects):
        poly = obj.footprint
        edges = np.roll(poly, -1, axis=0) - poly
        lengths = np.linalg.norm(edges, axis=1)
        edge = rng.choice(len(poly), size=antipodal, p=lengths / lengths.sum())
        start = poly[edge] + rng.random((antipodal, 1)) * edges[edge]
        inward = np.arctan2(edges[edge, 0], -edges[edge, 1])  # outward normal (ey, -ex), turned by pi
        yaw_a = inward + rng.uniform(-_ANTIPODAL_SPREAD, _ANTIPODAL_SPREAD, antipodal)
        centroid = poly.mean(axis=0)
        radius = 1.2 * float(np.linalg.norm(poly - centroid, axis=1).max())
        count = per_object - antipodal
        offset = radius * np.sqrt(rng.random(count))[:, None]
        phase = rng.uniform(0.0, 2.0 * np.pi, count)
        point_r = centroid + offset * np.stack((np.cos(phase), np.sin(phase)), axis=1)
        yaw_r = rng.uniform(0.0, np.pi, count)
        grasps += evaluate_grasps(
            scene, index, np.concatenate((start, point_r)), np.concatenate((yaw_a, yaw_r)), gripper
        )
    return grasps


def _contacts(poly: np.ndarray, points: np.ndarray, axis: np.ndarray):
    """Line parameters ``s1 <= s2`` ``(M,)`` of the first and last boundary crossings (NaN: none) and
    the outward unit normals ``(M, 2)`` of the edges crossed there."""
    edges = np.roll(poly, -1, axis=0) - poly  # (K, 2)
    normals = np.stack((edges[:, 1], -edges[:, 0]), axis=1) / np.linalg.norm(edges, axis=1)[:, None]
    rel = poly[None] - points[:, None]  # (M, K, 2)
    denom = axis[:, None, 0] * edges[None, :, 1] - axis[:, None, 1] * edges[None, :, 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        s = (rel[..., 0] * edges[None, :, 1] - rel[..., 1] * edges[None, :, 0]) / denom
        t = (rel[..., 0] * axis[:, None, 1] - rel[..., 1] * axis[:, None, 0]) / denom
    valid = (np.abs(denom) > 1e-12) & (t >= 0.0) & (t < 1.0)
    first = np.argmin(np.where(valid, s, np.inf), axis=1)
    last = np.argmax(np.where(valid, s, -np.inf), axis=1)
    rows = np.arange(len(points))
    hit = valid.any(axis=1)
    s1 = np.where(hit, s[rows, first], np.nan)
    s2 = np.where(hit, s[rows, last], np.nan)
    return s1, s2, normals[first], normals[last]


def _jaw_collisions(
    scene: Scene, height: float, centre: np.ndarray, axis: np.ndarray, width: np.ndarray, gripper: GripperConfig
) -> np.ndarray:
    """``(M,)`` bool: a jaw footprint overlaps an object taller than the grasp height ``height``."""
    across = np.stack((-axis[:, 1], axis[:, 0]), axis=1)
    inner = 0.5 * (width + gripper.clearance)
    hit = np.zeros(len(centre), bool)
    for obj in scene.objects:
        if obj.height <= height:
            continue
        rel = obj.footprint[None] - centre[:, None]  # (M, K, 2) in the grasp frame:
        along_k = (rel * axis[:, None]).sum(-1)
        across_k = (rel * across[:, None]).sum(-1)
        for sign in (-1.0, 1.0):
            # The jaw as the box [lo, hi] x [-w/2, w/2] in (along, across); mirrored for the -a jaw.
            along = sign * along_k
            hit |= _polygon_hits_box(along, across_k, inner, inner + gripper.jaw_thickness, 0.5 * gripper.jaw_width)
            box_centre = centre + (sign * (inner + 0.5 * gripper.jaw_thickness))[:, None] * axis
            hit |= points_in_polygon(box_centre, obj.footprint)
    return hit


def _polygon_hits_box(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, half: float) -> np.ndarray:
    """``(M,)`` bool: an edge of the polygon ``(x, y)`` ``(M, K)`` meets the box ``[lo, hi] x [-half, half]``.

    Liang-Barsky clipping of every edge against the box, vectorised over candidates and edges.
    """
    x0, y0 = x, y
    dx, dy = np.roll(x, -1, axis=1) - x0, np.roll(y, -1, axis=1) - y0
    enter, leave = np.zeros_like(x0), np.ones_like(x0)
    inside = np.ones(x0.shape, bool)
    for p, q in ((-dx, x0 - lo[:, None]), (dx, hi[:, None] - x0), (-dy, y0 + half), (dy, half - y0)):
        parallel = p == 0
        inside &= ~(parallel & (q < 0))
        with np.errstate(divide='ignore', invalid='ignore'):
            r = q / p
        enter = np.where(~parallel & (p < 0), np.maximum(enter, r), enter)
        leave = np.where(~parallel & (p > 0), np.minimum(leave, r), leave)
    return (inside & (enter <= leave)).any(axis=1)


def _to_grasps(
    scene: Scene,
    object_index: int,
    centre: np.ndarray,
    axis: np.ndarray,
    width: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    points: np.ndarray,
    height: float,
    failure: np.ndarray,
) -> list[Grasp]:
    """Project the metric grasps into the image and pack them."""
    count = len(centre)
    lift = np.full((count, 1), height)
    contacts = np.stack((points + s1[:, None] * axis, points + s2[:, None] * axis), axis=1)
    contacts[failure == 1] = np.nan
    camera = scene.camera
    centre_3d = np.concatenate((centre, lift), axis=1)
    uv, z = scene.project(centre_3d)
    ahead, _ = scene.project(np.concatenate((centre + 1e-3 * axis, lift), axis=1))
    angle = np.arctan2((ahead[:, 1] - uv[:, 1]) / camera.fy, (ahead[:, 0] - uv[:, 0]) / camera.fx)
    angle = (angle + 0.5 * np.pi) % np.pi - 0.5 * np.pi
    ends, _ = scene.project(np.concatenate((np.nan_to_num(contacts.reshape(-1, 2)), np.repeat(lift, 2, 0)), 1))
    ends = ends.reshape(count, 2, 2)
    width_px = np.where(failure == 1, 0.0, np.linalg.norm(ends[:, 1] - ends[:, 0], axis=1))
    yaws = np.arctan2(axis[:, 1], axis[:, 0])
    return [
        Grasp(
            (float(uv[i, 0]), float(uv[i, 1])),
            float(angle[i]),
            float(width[i]),
            float(width_px[i]),
            float(z[i]),
            object_index,
            bool(failure[i] == 0),
            '' if failure[i] == 0 else FAILURES[failure[i] - 1],
            contacts[i],
            centre_3d[i],
            float(yaws[i]),
        )
        for i in range(count)
    ]
