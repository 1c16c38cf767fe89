"""Synthetic depth scenes: prisms standing on a table, seen by a pinhole camera from above.

Frames. The *table frame* has its origin on the table, ``z`` up, metres; the table is ``z = 0``. The
camera centre is at ``(0, 0, camera_height)``; with no tilt it looks straight down with image ``+x``
along table ``+x`` and image ``+y`` along table ``-y`` (a proper rotation, so the image is the table
seen from above, mirrored in ``y`` only through the frame change). A tilt rotates the camera about an
axis in its image plane (``max_tilt_deg``: up to a few degrees, the camera still above the origin); a *view*
(``view_tilt_deg``, :func:`view_pose`) is a camera tilted that far from vertical, at any azimuth and roll about its
optical axis, ``camera_height`` metres from the table origin along its optical axis, as a robot's head camera sees
a table. Camera frame: OpenCV's (``x`` right, ``y`` down, ``z`` forward); depth is the
camera ``z`` coordinate in metres, pixel centres at integer coordinates (:mod:`stn_ros.core.coords`).

Objects are right prisms: a footprint polygon (counter-clockwise in the table frame) extruded to a
height. Kinds: ``box``, ``cylinder`` (a regular polygon of ``cylinder_sides`` vertices), ``convex``
(convex hull of random points around a circle), ``l_shape`` and ``nonconvex`` (a star-shaped polygon
with random radii). They rest on the table at a random position and yaw, never closer to each other
than ``min_gap`` and entirely in view.

Rendering is exact ray casting at pixel centres: each face (the top polygon and the side quads that
face the camera) is projected to the image, rasterized by the pixel-centre crossing rule (a planar
polygon in front of the camera projects to the polygon of its projected vertices), and its depth is the
ray-plane intersection at each pixel; the depth image is the minimum over the table and every face (a
z-buffer). Looking straight down a top face is at the constant depth ``camera_height - height``; side
faces are seen wherever the object is off the optical axis, as with a real camera.

Sensor model, on top of the clean depth: Gaussian noise of ``depth_noise`` (std, metres), random
dropouts (NaN) with probability ``dropout_prob`` per pixel, and dropouts with probability
``edge_dropout_prob`` in a 3x3 band around depth discontinuities (a jump above ``edge_jump`` between
4-neighbours), where real structured-light and stereo sensors lose readings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera

KINDS = ('box', 'cylinder', 'convex', 'l_shape', 'nonconvex')
"""Object kinds, in the order of ``SceneConfig.kind_weights``."""

_PLACEMENT_ATTEMPTS = 60

MAX_VIEW_TILT_DEG = 65.0
"""Largest tilt of a view from vertical: at a 640x480, f = 525 camera's 24.6 deg half field of view (vertical) the
image's top row still sees the table (below the horizon) up to 65.4 deg."""


@dataclass(frozen=True)
class SceneConfig:
    """Camera, objects and sensor model of the synthetic scenes (metres, pixels, degrees).

    Attributes:
        height, width: image size in pixels.
        fx, fy, cx, cy: pinhole intrinsics in pixels.
        camera_height: metres from the camera centre down to the table.
        max_tilt_deg: each scene's camera is tilted by an angle uniform in ``[0, max_tilt_deg]`` about
            a random axis in the image plane; 0 looks straight down.
        view_tilt_deg: 0 (default): the camera above the origin as ``max_tilt_deg`` says. Above 0 (at most
            :data:`MAX_VIEW_TILT_DEG`): every scene is seen by a camera tilted this far from vertical, at a random
            azimuth and roll (:func:`view_pose`), ``camera_height`` metres from the table origin along its optical
            axis; objects are placed within ``view_radius`` of the origin. ``max_tilt_deg`` is then unused.
        view_radius: metres around the table origin that objects of a tilted view are placed in.
        num_objects: inclusive range of objects per scene (fewer when placement fails).
        footprint_range: metres, range of the footprint's extent (box sides, cylinder diameter, ...).
        height_range: metres, range of object heights.
        kind_weights: relative frequencies of :data:`KINDS`.
        min_gap: metres, smallest distance between two objects' footprints.
        cluster_prob: probability that an object is placed next to an already placed one (gap up to
            about ``cluster_gap``) rather than anywhere in view: neighbours a jaw can hit.
        cluster_gap: metres, largest extra gap of a clustered placement.
        border_px: every vertex of every object projects at least this far inside the image.
        cylinder_sides: vertices of a cylinder's circular footprint.
        depth_noise: metres, std of the Gaussian depth noise.
        dropout_prob: probability of a random missing reading (NaN) per pixel.
        edge_dropout_prob: probability of a missing reading near a depth discontinuity.
        edge_jump: metres, depth jump between 4-neighbours that counts as a discontinuity.
        seed: default seed of :func:`generate_scene`.
    """

    height: int = 480
    width: int = 640
    fx: float = 525.0
    fy: float = 525.0
    cx: float = 319.5
    cy: float = 239.5
    camera_height: float = 0.70
    max_tilt_deg: float = 0.0
    view_tilt_deg: float = 0.0
    view_radius: float = 0.25
    num_objects: tuple[int, int] = (1, 5)
    footprint_range: tuple[float, float] = (0.03, 0.12)
    height_range: tuple[float, float] = (0.02, 0.10)
    kind_weights: tuple[float, ...] = (0.3, 0.2, 0.2, 0.15, 0.15)
    min_gap: float = 0.01
    cluster_prob: float = 0.7
    cluster_gap: float = 0.03
    border_px: float = 8.0
    cylinder_sides: int = 40
    depth_noise: float = 0.001
    dropout_prob: float = 0.01
    edge_dropout_prob: float = 0.5
    edge_jump: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.view_tilt_deg <= MAX_VIEW_TILT_DEG:
            raise ValueError(f'view_tilt_deg must be in [0, {MAX_VIEW_TILT_DEG}] degrees, got {self.view_tilt_deg}')

    def camera(self) -> PinholeCamera:
        """The intrinsics as a :class:`~stn_ros.bridge.camera_info.PinholeCamera`."""
        return PinholeCamera(self.fx, self.fy, self.cx, self.cy, self.width, self.height)


@dataclass
class SceneObject:
    """One prism on the table.

    Attributes:
        kind: one of :data:`KINDS`.
        footprint: ``(K, 2)`` float64 table-frame polygon in metres, counter-clockwise (posed).
        height: metres above the table of the top face.
        x, y, yaw: pose of the object frame in the table frame (metres, radians about table ``+z``).
        mask: ``(H, W)`` bool, the pixels where this object is the visible surface (set by rendering).
    """

    kind: str
    footprint: np.ndarray
    height: float
    x: float
    y: float
    yaw: float
    mask: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        depth: ``(H, W)`` float32 metres with noise and dropouts; NaN = no reading.
        clean_depth: ``(H, W)`` float32 metres, noise-free and complete.
        labels: ``(H, W)`` int32, 0 = table, ``k`` = ``objects[k - 1]`` (the visible surface).
        objects: the objects, in label order.
        camera: the intrinsics.
        table_from_camera: ``(4, 4)`` float64 pose of the camera: camera-frame point -> table frame.
        table_depth: ``(H, W)`` float32 metres, the clean depth of the bare table.
        table_plane: ``(4,)`` float64 ``(n, d)``: camera-frame points ``X`` on the table satisfy
            ``n . X = d``, ``n`` the unit table normal pointing up (towards the camera), so
            ``d = -camera_height``.
        seed: the seed the scene was generated from (``None`` for hand-made scenes).
    """

    depth: np.ndarray
    clean_depth: np.ndarray
    labels: np.ndarray
    objects: list[SceneObject]
    camera: PinholeCamera
    table_from_camera: np.ndarray
    table_depth: np.ndarray
    table_plane: np.ndarray
    seed: int | None = None

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Table-frame points ``(N, 3)`` -> camera frame ``(N, 3)``, metres."""
        rotation, centre = self.table_from_camera[:3, :3], self.table_from_camera[:3, 3]
        return (np.asarray(points, dtype=np.float64).reshape(-1, 3) - centre) @ rotation

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table-frame points ``(N, 3)`` -> pixels ``(N, 2)`` ``(u, v)`` and depths ``(N,)`` metres."""
        return _project(self.to_camera(points), self.camera)


def camera_pose(camera_height: float, tilt_deg: float = 0.0, tilt_direction: float = 0.0) -> np.ndarray:
    """``(4, 4)`` table_from_camera of a camera at ``(0, 0, camera_height)`` looking down.

    The camera is tilted by ``tilt_deg`` degrees about the image-plane axis at angle ``tilt_direction``
    (radians from the image ``+x`` axis).
    """
    down = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # columns: camera axes
    axis = np.array([math.cos(tilt_direction), math.sin(tilt_direction), 0.0])
    tilt, _ = cv2.Rodrigues(axis * math.radians(tilt_deg))
    pose = np.eye(4)
    pose[:3, :3] = down @ tilt
    pose[:3, 3] = (0.0, 0.0, camera_height)
    return pose


def view_pose(distance: float, tilt_deg: float, azimuth: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """``(4, 4)`` table_from_camera of a camera looking at the table origin from ``distance`` metres along its
    optical axis, tilted ``tilt_deg`` degrees from looking straight down.

    ``azimuth`` (radians, from table ``+y`` towards ``-x``: the direction of table ``+y`` turned about ``+z``) is
    where the optical axis leans to, ``roll`` (radians) turns the camera about its optical axis. At ``roll = 0`` the
    image rows are level (image ``+x`` horizontal) and image ``-y`` points away from the camera, as a head camera
    sees a table; at ``tilt_deg = azimuth = roll = 0`` it is :func:`camera_pose` looking straight down.

    >>> pose = view_pose(0.7, 45.0)
    >>> bool(np.allclose(pose[:3, 3] + 0.7 * pose[:3, 2], 0.0)), round(float(np.degrees(np.arccos(-pose[2, 2]))), 6)
    (True, 45.0)
    """
    down = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # columns: camera axes, looking down
    tilt, _ = cv2.Rodrigues(np.array([math.radians(tilt_deg), 0.0, 0.0]))  # about the camera's x
    turn, _ = cv2.Rodrigues(np.array([0.0, 0.0, roll]))  # about the optical axis
    heading, _ = cv2.Rodrigues(np.array([0.0, 0.0, azimuth]))  # about the table's z
    pose = np.eye(4)
    pose[:3, :3] = heading @ down @ tilt @ turn
    pose[:3, 3] = -distance * pose[:3, 2]  # the optical axis meets the table at the origin
    return pose


def tilt_of(table_from_camera: np.ndarray) -> float:
    """Degrees between a camera's optical axis and straight down (table ``-z``)."""
    return float(np.degrees(np.arccos(np.clip(-np.asarray(table_from_camera)[2, 2], -1.0, 1.0))))


def make_object(kind: str, local_footprint: np.ndarray, height: float, x: float, y: float, yaw: float) -> SceneObject:
    """A prism with the ``(K, 2)`` object-frame footprint (metres) posed at ``(x, y, yaw)``."""
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    local = np.asarray(local_footprint, dtype=np.float64).reshape(-1, 2)
    if _signed_area(local) < 0:
        local = local[::-1]
    c, s = math.cos(yaw), math.sin(yaw)
    footprint = local @ np.array([[c, s], [-s, c]]) + (x, y)
    return SceneObject(kind, footprint, float(height), float(x), float(y), float(yaw))


def box_footprint(length: float, width: float) -> np.ndarray:
    """``(4, 2)`` counter-clockwise rectangle centred on the origin, ``length`` along ``x``."""
    a, b = length / 2.0, width / 2.0
    return np.array([[-a, -b], [a, -b], [a, b], [-a, b]])


def random_footprint(kind: str, config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """A random ``(K, 2)`` object-frame footprint of ``kind``, roughly centred, extent in range."""
    low, high = config.footprint_range
    size = rng.uniform(low, high)
    if kind == 'box':
        return box_footprint(size, rng.uniform(low, high))
    if kind == 'cylinder':
        angles = np.arange(config.cylinder_sides) * (2.0 * np.pi / config.cylinder_sides)
        return 0.5 * size * np.stack((np.cos(angles), np.sin(angles)), axis=1)
    if kind == 'convex':
        angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, rng.integers(5, 10)))
        radii = 0.5 * size * rng.uniform(0.6, 1.0, len(angles))
        points = np.stack((radii * np.cos(angles), radii * np.sin(angles)), axis=1)
        hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        return hull - hull.mean(axis=0)
    if kind == 'l_shape':
        length, width = size, rng.uniform(low, high)
        arm_a, arm_b = rng.uniform(0.3, 0.6, 2) * min(length, width)
        shape = np.array([[0, 0], [length, 0], [length, arm_a], [arm_b, arm_a], [arm_b, width], [0, width]])
        return shape - (length / 2.0, width / 2.0)
    if kind == 'nonconvex':
        count = int(rng.integers(6, 11))
        angles = (np.arange(count) + rng.uniform(-0.3, 0.3, count)) * (2.0 * np.pi / count)
        radii = (
            0.5
            * size
            * np.where(np.arange(count) % 2 == 0, rng.uniform(0.8, 1.0, count), rng.uniform(0.4, 0.65, count))
        )
        return np.stack((radii * np.cos(angles), radii * np.sin(angles)), axis=1)
    raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')


def generate_scene(config: SceneConfig, seed: int | None = None) -> Scene:
    """A random scene of ``config`` (see the module docstring), reproducible from ``seed``.

    ``seed`` defaults to ``config.seed``. The same config and seed give the same scene, bit for bit.
    """
    seed = config.seed if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    if config.view_tilt_deg > 0:
        pose = view_pose(config.camera_height, config.view_tilt_deg, *rng.uniform(0.0, 2.0 * np.pi, 2))
    else:  # today's camera, drawn as it always was (the same seed gives the same scene)
        tilt = rng.uniform(0.0, config.max_tilt_deg) if config.max_tilt_deg > 0 else 0.0
        pose = camera_pose(config.camera_height, tilt, rng.uniform(0.0, 2.0 * np.pi))
    scene = render_scene(config, _place_objects(config, pose, rng), pose, rng)
    scene.seed = seed
    return scene


def render_scene(
    config: SceneConfig,
    objects: Sequence[SceneObject],
    table_from_camera: np.ndarray | None = None,
    rng: np.random.Generator | int = 0,
) -> Scene:
    """Render hand-made or sampled ``objects`` (see the module docstring); sets each object's mask.

    ``table_from_camera`` defaults to a camera looking straight down from ``config.camera_height``.
    ``rng`` (or its seed) draws the sensor noise and dropouts. The scene's ``seed`` is ``None``.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if table_from_camera is None:
        table_from_camera = camera_pose(config.camera_height)
    pose = np.asarray(table_from_camera, dtype=np.float64)
    camera = config.camera()
    rotation, centre = pose[:3, :3], pose[:3, 3]
    cols = (np.arange(config.width) - config.cx) / config.fx
    rows = (np.arange(config.height) - config.cy) / config.fy
    down = rotation[2, 0] * cols + (rotation[2, 1] * rows + rotation[2, 2])[:, None]  # table-z of the rays
    with np.errstate(divide='ignore'):
        table_depth = np.where(down < 0, -centre[2] / down, np.inf)
    depth = table_depth.copy()
    labels = np.zeros((config.height, config.width), np.int32)
    objects = list(objects)
    for label, obj in enumerate(objects, start=1):
        _render_object(obj, label, pose, camera, (cols, rows), depth, labels)
    for label, obj in enumerate(objects, start=1):
        obj.mask = labels == label
    clean = depth.astype(np.float32)
    normal = rotation[2]  # table +z in the camera frame
    plane = np.concatenate((normal, [-centre[2]]))  # e_z . (R X + C) = 0
    return Scene(
        _sensor(clean, config, rng), clean, labels, objects, camera, pose, table_depth.astype(np.float32), plane
    )


def rasterize_polygon(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(height, width)`` bool: pixels whose centre is inside the image polygon ``(K, 2)`` ``(u, v)``.

    Crossing-number (even-odd) rule at pixel centres, so the area is unbiased (``cv2.fillPoly`` also
    fills the pixels its outline touches, which grows small shapes by several percent).
    """
    polygon = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    u0, v0 = polygon[:, 0], polygon[:, 1]
    u1, v1 = np.roll(u0, -1), np.roll(v0, -1)
    rows = np.arange(height, dtype=np.float64)[:, None]
    crosses = (v0 <= rows) != (v1 <= rows)  # half-open: a vertex on a row counts once
    with np.errstate(divide='ignore', invalid='ignore'):
        u = np.where(crosses, u0 + (rows - v0) * (u1 - u0) / (v1 - v0), np.inf)
    u = np.sort(u, axis=1)  # the inf of non-crossing edges sort last
    real = np.arange(u.shape[1])[None, :] < crosses.sum(axis=1)[:, None]
    # Inside between the 2i-th and (2i+1)-th crossings: +1 at the first column >= entry, -1 at exit.
    columns = np.clip(np.ceil(np.where(real, u, width)), 0, width).astype(np.int64)
    sign = np.broadcast_to(np.where(np.arange(u.shape[1]) % 2 == 0, 1, -1), u.shape)
    row_index = np.broadcast_to(np.arange(height)[:, None], u.shape)
    steps = np.zeros((height, width + 1), np.int32)
    np.add.at(steps, (row_index[real], columns[real]), sign[real])
    return np.cumsum(steps[:, :width], axis=1) > 0


def _render_object(
    obj: SceneObject,
    label: int,
    pose: np.ndarray,
    camera: PinholeCamera,
    grid: tuple[np.ndarray, np.ndarray],
    depth: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Z-buffer the object's top face and its camera-facing side faces into ``depth`` and ``labels``.

    ``grid`` is the normalized image coordinates ``(x_n (W,), y_n (H,))`` of the pixel columns and rows.
    """
    rotation, centre = pose[:3, :3], pose[:3, 3]
    poly, height = obj.footprint, obj.height
    top = np.concatenate((poly, np.full((len(poly), 1), height)), axis=1)
    faces = [(top, None)]
    edges = np.roll(poly, -1, axis=0) - poly
    outward = np.stack((edges[:, 1], -edges[:, 0]), axis=1)  # counter-clockwise footprint
    facing = np.einsum('ij,ij->i', outward, centre[:2] - poly) > 0
    for i in np.flatnonzero(facing):
        j = (i + 1) % len(poly)
        quad = np.array([[*poly[i], 0.0], [*poly[j], 0.0], [*poly[j], height], [*poly[i], height]])
        faces.append((quad, i))
    for vertices, edge in faces:
        uv, z = _project((vertices - centre) @ rotation, camera)
        if (z <= 0).any():
            continue
        left, top_row = np.floor(uv.min(axis=0)).astype(int)
        right, bottom = np.ceil(uv.max(axis=0)).astype(int)
        left, top_row = max(left, 0), max(top_row, 0)
        right, bottom = min(right, camera.width - 1), min(bottom, camera.height - 1)
        if right < left or bottom < top_row:
            continue
        window = (slice(top_row, bottom + 1), slice(left, right + 1))
        inside = rasterize_polygon(uv - (left, top_row), bottom - top_row + 1, right - left + 1)
        if not inside.any():
            continue
        # Rays of the window's pixels in the table frame, scaled so that the ray parameter is the depth.
        ray = (
            grid[0][window[1], None] * rotation[:, 0] + grid[1][window[0], None, None] * rotation[:, 1] + rotation[:, 2]
        )
        with np.errstate(divide='ignore', invalid='ignore'):
            if edge is None:
                face_depth = (height - centre[2]) / ray[..., 2]
            else:
                normal = outward[edge]
                face_depth = (normal @ (poly[edge] - centre[:2])) / (ray[..., :2] @ normal)
                # Pixels on a nearly edge-on face: keep the depth within the face's own range.
                face_depth = np.clip(face_depth, z.min(), z.max())
        closer = inside & (face_depth < depth[window])
        depth[window][closer] = face_depth[closer]
        labels[window][closer] = label


def _project(points_camera: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    z = points_camera[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = np.stack(
            (camera.fx * points_camera[:, 0] / z + camera.cx, camera.fy * points_camera[:, 1] / z + camera.cy), axis=1
        )
    return uv, z


def _sensor(clean: np.ndarray, config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Noise and dropouts (see the module docstring) on the clean depth ``(H, W)`` float32."""
    return sensor_model(clean, config.depth_noise, config.dropout_prob, config.edge_dropout_prob, config.edge_jump, rng)


def sensor_model(
    clean: np.ndarray,
    noise_std: float | np.ndarray,
    dropout_prob: float,
    edge_dropout_prob: float,
    edge_jump: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A depth sensor's reading of the clean depth ``(H, W)`` float32 metres: Gaussian noise of ``noise_std``
    (metres, a scalar or per pixel), missing readings (NaN) with ``dropout_prob`` per pixel and
    ``edge_dropout_prob`` in a 3x3 band around jumps above ``edge_jump`` between 4-neighbours."""
    noise = np.asarray(noise_std, dtype=np.float32)
    depth = clean + noise * rng.standard_normal(clean.shape, dtype=np.float32)
    with np.errstate(invalid='ignore'):  # NaN (nothing seen) is no jump
        vertical = np.abs(np.diff(clean, axis=0)) > edge_jump
        horizontal = np.abs(np.diff(clean, axis=1)) > edge_jump
    jump = np.zeros(clean.shape, bool)
    jump[1:] |= vertical
    jump[:-1] |= vertical
    jump[:, 1:] |= horizontal
    jump[:, :-1] |= horizontal
    band = cv2.dilate(jump.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    threshold = np.where(band, np.float32(edge_dropout_prob), np.float32(dropout_prob))
    depth[rng.random(clean.shape, dtype=np.float32) < threshold] = np.nan
    return depth


def _signed_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _place_objects(config: SceneConfig, pose: np.ndarray, rng: np.random.Generator) -> list[SceneObject]:
    """Random objects on the table, in view and ``min_gap`` apart (rejection sampling)."""
    low, high = config.num_objects
    count = int(rng.integers(low, high + 1))
    weights = np.asarray(config.kind_weights, dtype=np.float64)
    camera = config.camera()
    # The visible table: image corners cast onto the table (a quadrilateral; sample in its bounds).
    corners = np.array(
        [[0, 0], [config.width - 1, 0], [0, config.height - 1], [config.width - 1, config.height - 1]], dtype=np.float64
    )
    rotation, centre = pose[:3, :3], pose[:3, 3]
    rays = (
        np.stack(((corners[:, 0] - config.cx) / config.fx, (corners[:, 1] - config.cy) / config.fy, np.ones(4)), axis=1)
        @ rotation.T
    )
    if config.view_tilt_deg > 0:  # the far corners of a tilted view reach metres away: stay near where it looks
        lower, upper = np.full(2, -config.view_radius), np.full(2, config.view_radius)
    else:
        ground = centre[:2] + (-centre[2] / rays[:, 2])[:, None] * rays[:, :2]
        lower, upper = ground.min(axis=0), ground.max(axis=0)
    placed: list[SceneObject] = []
    for _ in range(count):
        kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
        local = random_footprint(kind, config, rng)
        height = rng.uniform(*config.height_range)
        radius = float(np.linalg.norm(local, axis=1).max())
        for _ in range(_PLACEMENT_ATTEMPTS):
            yaw = rng.uniform(-np.pi, np.pi)
            if placed and rng.random() < config.cluster_prob:
                anchor = placed[int(rng.integers(len(placed)))]
                anchor_radius = float(np.linalg.norm(anchor.footprint - (anchor.x, anchor.y), axis=1).max())
                angle = rng.uniform(0.0, 2.0 * np.pi)
                distance = rng.uniform(0.3, 0.9) * (radius + anchor_radius) + rng.uniform(
                    config.min_gap, config.cluster_gap
                )
                x, y = anchor.x + distance * math.cos(angle), anchor.y + distance * math.sin(angle)
            else:
                x, y = rng.uniform(lower, upper)
            candidate = make_object(kind, local, height, x, y, yaw)
            if _in_view(candidate, pose, camera, config.border_px) and all(
                polygon_distance(candidate.footprint, other.footprint) >= config.min_gap for other in placed
            ):
                placed.append(candidate)
                break
    return placed


def _in_view(obj: SceneObject, pose: np.ndarray, camera: PinholeCamera, border: float) -> bool:
    poly = obj.footprint
    prism = np.concatenate(
        (
            np.concatenate((poly, np.zeros((len(poly), 1))), axis=1),
            np.concatenate((poly, np.full((len(poly), 1), obj.height)), axis=1),
        )
    )
    uv, z = _project((prism - pose[:3, 3]) @ pose[:3, :3], camera)
    return bool(
        (z > 0).all()
        and (uv >= border).all()
        and (uv[:, 0] <= camera.width - 1 - border).all()
        and (uv[:, 1] <= camera.height - 1 - border).all()
    )


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: whether each point ``(N, 2)`` is inside the polygon ``(K, 2)`` (even-odd rule)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    px, py = points[:, :1], points[:, 1:]
    crosses = (y0 <= py) != (y1 <= py)
    with np.errstate(divide='ignore', invalid='ignore'):
        x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (px < x)).sum(axis=1) % 2) == 1


def polygon_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance in metres between two polygons ``(K, 2)`` (0 when they touch or overlap)."""
    if points_in_polygon(a[:1], b)[0] or points_in_polygon(b[:1], a)[0] or _edges_cross(a, b):
        return 0.0
    return min(_point_segment_distance(a, b), _point_segment_distance(b, a))


def _edges_cross(a: np.ndarray, b: np.ndarray) -> bool:
    p, r = a[:, None], (np.roll(a, -1, axis=0) - a)[:, None]
    q, s = b[None], (np.roll(b, -1, axis=0) - b)[None]
    denom = _cross(r, s)
    with np.errstate(divide='ignore', invalid='ignore'):
        t = _cross(q - p, s) / denom
        u = _cross(q - p, r) / denom
    return bool(((t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)).any())


def _point_segment_distance(points: np.ndarray, polygon: np.ndarray) -> float:
    start = polygon[None]
    edge = (np.roll(polygon, -1, axis=0) - polygon)[None]
    rel = points[:, None] - start
    t = np.clip((rel * edge).sum(-1) / np.maximum((edge * edge).sum(-1), 1e-18), 0.0, 1.0)
    return float(np.sqrt(((rel - t[..., None] * edge) ** 2).sum(-1)).min())


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene ``index`` of a build seeded ``seed`` (independent streams, stable over builds)."""
    return int(np.random.SeedSequence((seed, index)).generate_state(1)[0])
