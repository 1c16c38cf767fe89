"""Physics scenes: 1-6 objects dropped on a table in pybullet, settled, and seen by a depth camera.

Objects are ``random_urdfs`` meshes of one split (:data:`~stn_ros.sim.physics.world.MESH_SPLITS`) and, with
``procedural_prob``, our own boxes, cylinders and spheres. Each is scaled to fit the gripper: its middle
extent (the one a grasp across its narrower side closes on, once it lies on its largest face) is drawn in
``graspable_range`` and its largest extent capped at ``max_extent``. A mass follows from a density.

Layouts: ``singulated`` objects fall apart from each other (at least ``singulated_gap`` between their
bounding circles); ``cluttered`` objects are dropped one above the other over a small patch, so they
land touching and on top of each other, as in a bin. Each starts in a random orientation, so it comes to
rest in one of its stable poses; objects that roll out of view are taken out and the rest settle again.

The camera is ``distance_range`` metres above the table, tilted up to ``max_tilt_deg`` about a random
axis of its image plane, looking at the patch where the objects fall. With ``tilt_range_deg`` set the camera pose
is a distribution over views instead: tilted from vertical by an angle uniform in that range, at a uniform azimuth
and a uniform roll about its optical axis, looking at the table origin from ``view_distance_range`` metres along
its optical axis (:func:`~stn_ros.sim.prisms.scenes.view_pose`), as a robot's head or shoulder camera sees a
table; the objects fall around that point. Every scene records its tilt (:attr:`PhysicsScene.tilt_deg`).
Depth is rendered by pybullet's CPU renderer and converted with the near/far formula
(:func:`~stn_ros.sim.physics.world.render_depth`); the intrinsics returned with it match the rendering exactly.

Sensor model on the clean depth: Gaussian noise whose std grows with depth as a stereo or structured-light
camera's does (``noise_base + noise_quadratic * z**2``), random and edge dropouts
(:func:`~stn_ros.sim.prisms.scenes.sensor_model`), and the *shadow* of a projector ``shadow_baseline`` metres to
the camera's left: behind a near edge, the far surface the projector cannot light reads nothing for
``fx * baseline * (1 / z_near - 1 / z_far)`` pixels, the band RealSense-class cameras lose beside objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.sim.physics import world
from stn_ros.sim.prisms.scenes import MAX_VIEW_TILT_DEG, camera_pose, sensor_model, tilt_of, view_pose

LAYOUTS = ('singulated', 'cluttered')
PROCEDURAL_SHAPES = ('box', 'cylinder', 'sphere')

_PLACEMENT_ATTEMPTS = 100


@dataclass(frozen=True)
class PhysicsSceneConfig:
    """Objects, layout, camera and sensor of the physics scenes (metres, pixels, degrees).

    Attributes:
        height, width: image size in pixels; the focal length scales with the width (``fx = fy =
            focal_640 * width / 640``), the principal point is the image centre.
        focal_640: focal length in pixels at 640 columns (525: a Kinect/PrimeSense-class camera).
        distance_range: metres from the camera down to the table, along the table normal (unused with
            ``tilt_range_deg``).
        max_tilt_deg: largest tilt of the camera away from looking straight down (unused with ``tilt_range_deg``).
        tilt_range_deg: None (default): the camera above, as ``distance_range`` and ``max_tilt_deg`` say. A range
            ``(low, high)`` degrees within ``[0, 65]``: each scene's camera is a view tilted from vertical by an angle
            uniform in it, at a uniform azimuth and roll (the module docstring); ``low == high`` fixes the tilt.
        view_distance_range: metres from the camera to the point it looks at, along its optical axis (with
            ``tilt_range_deg`` only).
        num_objects: inclusive range of objects per scene (fewer when some roll out of view).
        meshes: which mesh split the objects come from: ``train`` or ``validation``.
        procedural_prob: probability that an object is one of our boxes, cylinders or spheres.
        cluttered_prob: probability that a scene is ``cluttered`` rather than ``singulated``.
        graspable_range: metres, range of each object's middle extent.
        max_extent: metres, cap of each object's largest extent.
        density_range: kg/m^3 of the object (over its bounding box, halved for meshes).
        singulated_gap: metres between the bounding circles of singulated objects.
        clutter_radius: metres, the patch cluttered objects are dropped over.
        noise_base, noise_quadratic: depth noise std ``noise_base + noise_quadratic * z**2`` (metres).
        dropout_prob, edge_dropout_prob, edge_jump: see :func:`~stn_ros.sim.prisms.scenes.sensor_model`.
        shadow_baseline: metres from the camera to its projector (along image ``-x``); 0 = no shadows.
        border_px: every object stays this far inside the image.
        seed: default seed of :func:`generate_physics_scene`.
    """

    height: int = 480
    width: int = 640
    focal_640: float = 525.0
    distance_range: tuple[float, float] = (0.5, 0.9)
    max_tilt_deg: float = 10.0
    tilt_range_deg: tuple[float, float] | None = None
    view_distance_range: tuple[float, float] = (0.6, 0.8)
    num_objects: tuple[int, int] = (1, 6)
    meshes: str = 'train'
    procedural_prob: float = 0.3
    cluttered_prob: float = 0.5
    graspable_range: tuple[float, float] = (0.025, 0.065)
    max_extent: float = 0.14
    density_range: tuple[float, float] = (300.0, 900.0)
    singulated_gap: float = 0.03
    clutter_radius: float = 0.04
    noise_base: float = 0.0005
    noise_quadratic: float = 0.0015
    dropout_prob: float = 0.005
    edge_dropout_prob: float = 0.3
    edge_jump: float = 0.01
    shadow_baseline: float = 0.05
    border_px: float = 8.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.meshes not in world.MESH_SPLITS:
            raise ValueError(f'meshes must be one of {sorted(world.MESH_SPLITS)}, got {self.meshes!r}')
        if not 1 <= self.num_objects[0] <= self.num_objects[1]:
            raise ValueError(f'num_objects must be an increasing range from 1, got {self.num_objects}')
        if self.tilt_range_deg is not None:
            low, high = (float(x) for x in self.tilt_range_deg)
            if not 0.0 <= low <= high <= MAX_VIEW_TILT_DEG:
                raise ValueError(
                    f'tilt_range_deg must be (low, high) with 0 <= low <= high <= {MAX_VIEW_TILT_DEG} degrees, '
                    f'got {self.tilt_range_deg}'
                )
        if not 0.0 < self.view_distance_range[0] <= self.view_distance_range[1]:
            raise ValueError(f'view_distance_range must be an increasing range above 0, got {self.view_distance_range}')

    def camera(self) -> PinholeCamera:
        """The intrinsics of this image size."""
        focal = self.focal_640 * self.width / 640.0
        return PinholeCamera(focal, focal, (self.width - 1) / 2.0, (self.height - 1) / 2.0, self.width, self.height)


@dataclass
class PhysicsScene:
    """A settled, rendered physics scene.

    Attributes:
        depth: ``(H, W)`` float32 metres with the sensor model; NaN = no reading.
        clean_depth: ``(H, W)`` float32 metres as rendered (NaN beyond the far plane).
        labels: ``(H, W)`` int32, 0 = table, ``k`` = ``snapshot.bodies[k - 1]`` (the visible surface).
        snapshot: the bodies at rest; :func:`~stn_ros.sim.physics.world.load_world` rebuilds the world.
        kinds: per body, ``mesh NNN`` or the procedural shape's name.
        layout: one of :data:`LAYOUTS` (or, in a clutter-removal round,
            :data:`~stn_ros.sim.physics.clutter.CLUTTER_LAYOUTS`).
        camera: the intrinsics.
        table_from_camera: ``(4, 4)`` camera pose (OpenCV axes) in the table frame.
        table_plane: ``(4,)`` ``(n, d)``: camera-frame points ``X`` on the table satisfy ``n . X = d``.
        seed: the seed the scene was generated from.
    """

    depth: np.ndarray
    clean_depth: np.ndarray
    labels: np.ndarray
    snapshot: world.WorldSnapshot
    kinds: list[str]
    layout: str
    camera: PinholeCamera
    table_from_camera: np.ndarray
    table_plane: np.ndarray
    seed: int

    @property
    def tilt_deg(self) -> float:
        """Degrees between the camera's optical axis and straight down: what a report bands scenes by."""
        return tilt_of(self.table_from_camera)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table-frame points ``(N, 3)`` -> pixels ``(N, 2)`` and camera depths ``(N,)`` metres."""
        return project(points, self.camera, self.table_from_camera)


def project(points: np.ndarray, camera: PinholeCamera, table_from_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Table-frame points ``(N, 3)`` -> pixels ``(N, 2)`` ``(u, v)`` and camera depths ``(N,)`` metres."""
    rotation, centre = table_from_camera[:3, :3], table_from_camera[:3, 3]
    local = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - centre) @ rotation
    z = local[:, 2]
    uv = np.stack((camera.fx * local[:, 0] / z + camera.cx, camera.fy * local[:, 1] / z + camera.cy), axis=1)
    return uv, z


def generate_physics_scene(config: PhysicsSceneConfig, seed: int | None = None, world_handle=None) -> PhysicsScene:
    """A new scene drawn from ``seed`` (``config.seed`` when None); deterministic for a seed.

    ``world_handle``: an optional ``(pybullet, client)`` from :func:`~stn_ros.sim.physics.world.connect`
    to reuse; otherwise one is made and closed.
    """
    seed = config.seed if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    pybullet, client = world_handle or world.connect()
    try:
        camera = config.camera()
        pose = draw_camera_pose(config, rng)
        look_at = _look_at(pose)
        layout = 'cluttered' if rng.random() < config.cluttered_prob else 'singulated'
        count = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
        snapshot = world.WorldSnapshot(())
        while not snapshot.bodies:  # all rolled out of view (rare): drop new ones
            bodies = [random_body(config, rng) for _ in range(count)]
            dropped = drop_bodies(bodies, layout, look_at, config, rng)
            snapshot = _settle_in_view(pybullet, client, dropped, layout, look_at, camera, pose, config)
        return observe_scene(pybullet, client, snapshot, camera, pose, config, rng, layout, seed)
    finally:
        if world_handle is None:
            pybullet.disconnect(client)


def observe_scene(
    pybullet,
    client: int,
    snapshot: world.WorldSnapshot,
    camera: PinholeCamera,
    table_from_camera: np.ndarray,
    config: PhysicsSceneConfig,
    rng: np.random.Generator,
    layout: str,
    seed: int,
    friction: float = 0.6,
) -> PhysicsScene:
    """The :class:`PhysicsScene` of ``snapshot`` (bodies at rest) seen by ``camera`` at ``table_from_camera``:
    the world rebuilt in ``client`` (body ``friction``, :func:`~stn_ros.sim.physics.world.load_world`), its clean
    depth rendered, the sensor model drawn from ``rng`` (:func:`sensor_readings`). The world stays loaded."""
    pose = np.asarray(table_from_camera, dtype=np.float64)
    ids = world.load_world(pybullet, client, snapshot, friction)
    clean, seen = world.render_depth(pybullet, client, camera, pose)
    labels = np.zeros(seen.shape, np.int32)
    for k, uid in enumerate(ids):
        labels[seen == uid] = k + 1
    kinds = [f'mesh {b.mesh_index:03d}' if b.shape == 'mesh' else b.shape for b in snapshot.bodies]
    normal = pose[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    plane = np.concatenate((normal, [-float(normal @ (pose[:3, :3].T @ pose[:3, 3]))]))
    depth = sensor_readings(clean, camera, config, rng)
    return PhysicsScene(depth, clean, labels, snapshot, kinds, layout, camera, pose, plane, seed)


def draw_camera_pose(config: PhysicsSceneConfig, rng: np.random.Generator) -> np.ndarray:
    """``(4, 4)`` table_from_camera of a scene, the first draws of its generator (the module docstring).

    Without ``tilt_range_deg`` it draws exactly what it always drew (distance, tilt, tilt direction), so a seed's
    scene is the same as before views existed."""
    if config.tilt_range_deg is None:
        distance = rng.uniform(*config.distance_range)
        return camera_pose(distance, rng.uniform(0.0, config.max_tilt_deg), rng.uniform(0.0, 2.0 * np.pi))
    distance = rng.uniform(*config.view_distance_range)
    tilt = rng.uniform(*config.tilt_range_deg)
    azimuth, roll = rng.uniform(0.0, 2.0 * np.pi, 2)
    return view_pose(distance, tilt, azimuth, roll)


def sensor_readings(
    clean: np.ndarray, camera: PinholeCamera, config: PhysicsSceneConfig, rng: np.random.Generator
) -> np.ndarray:
    """The sensor model of the module docstring on a clean depth ``(H, W)`` float32 metres."""
    finite = np.nan_to_num(clean, nan=float(config.distance_range[1]) * 3.0)
    std = config.noise_base + config.noise_quadratic * finite**2
    depth = sensor_model(finite, std, config.dropout_prob, config.edge_dropout_prob, config.edge_jump, rng)
    depth[np.isnan(clean) | projector_shadow(finite, camera.fx, config.shadow_baseline)] = np.nan
    return depth


def projector_shadow(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """``(H, W)`` bool: pixels a projector ``baseline`` metres left of the camera cannot light.

    Pixel ``u`` is in the shadow of a nearer pixel ``u - k`` when ``fx * baseline * (1 / z[u - k] - 1 / z[u])``
    is at least ``k``: the near edge hides it from the projector.
    """
    shadow = np.zeros(depth.shape, bool)
    if baseline <= 0:
        return shadow
    inverse = 1.0 / np.maximum(depth, 1e-3)
    reach = int(math.ceil(fx * baseline * float(inverse.max() - inverse.min())))
    for k in range(1, min(reach, depth.shape[1] - 1) + 1):
        shadow[:, k:] |= fx * baseline * (inverse[:, :-k] - inverse[:, k:]) >= k
    return shadow


def _look_at(pose: np.ndarray) -> np.ndarray:
    """``(2,)`` table point where the camera's optical axis meets the table."""
    axis, centre = pose[:3, 2], pose[:3, 3]
    return (centre - centre[2] / axis[2] * axis)[:2]


def random_body(config: PhysicsSceneConfig, rng: np.random.Generator) -> world.BodySpec:
    """A random object (unposed), scaled to fit the gripper."""
    graspable = rng.uniform(*config.graspable_range)
    density = rng.uniform(*config.density_range)
    if rng.random() < config.procedural_prob:
        shape = PROCEDURAL_SHAPES[int(rng.integers(len(PROCEDURAL_SHAPES)))]
        if shape == 'box':
            sides = [graspable, rng.uniform(graspable, config.max_extent), rng.uniform(0.5 * graspable, graspable)]
            dims = tuple(s / 2.0 for s in rng.permutation(sides))
            volume = float(np.prod(sides))
        elif shape == 'cylinder':
            length = rng.uniform(0.03, config.max_extent)
            dims = (graspable / 2.0, length)
            volume = math.pi * dims[0] ** 2 * length
        else:
            dims = (graspable / 2.0,)
            volume = 4.0 / 3.0 * math.pi * dims[0] ** 3
        return world.BodySpec(shape, dims, mass=_mass(density * volume))
    split = world.usable_meshes(config.meshes)
    index = int(split[int(rng.integers(len(split)))])
    extents = np.sort(np.ptp(world.mesh_vertices(index), axis=0))
    scale = min(graspable / extents[1], config.max_extent / extents[2])
    volume = 0.5 * float(np.prod(extents * scale))  # a blob fills about half its bounding box
    return world.BodySpec('mesh', (float(scale),), mesh_index=index, mass=_mass(density * volume))


def _mass(mass: float) -> float:
    return float(np.clip(mass, 0.02, 0.5))


def _random_orientation(rng: np.random.Generator) -> tuple[float, float, float, float]:
    q = rng.standard_normal(4)
    return tuple(float(x) for x in q / np.linalg.norm(q))


def drop_bodies(
    bodies: list[world.BodySpec],
    layout: str,
    look_at: np.ndarray,
    config: PhysicsSceneConfig,
    rng: np.random.Generator,
) -> list[world.BodySpec]:
    """The bodies posed above the table, ready to fall."""
    radii = [_bounding_radius(b) for b in bodies]
    posed: list[world.BodySpec] = []
    if layout == 'cluttered':
        half = _bin_half_width(radii, config)
        height = 0.0
        for body, radius in zip(bodies, radii, strict=True):
            xy = look_at + rng.uniform(-half + radius / 2, half - radius / 2, 2)
            height += radius + 0.005
            posed.append(body.posed((*xy, height), _random_orientation(rng)))
            height += radius
        return posed
    centres: list[np.ndarray] = []
    spread = 0.08 + 0.03 * len(bodies)
    for body, radius in zip(bodies, radii, strict=True):
        for _ in range(_PLACEMENT_ATTEMPTS):
            xy = look_at + rng.uniform(-spread, spread, 2)
            if all(
                np.linalg.norm(xy - c) >= radius + r + config.singulated_gap
                for c, r in zip(centres, radii, strict=False)
            ):
                break
        else:
            continue  # no room: leave it out
        centres.append(xy)
        posed.append(body.posed((*xy, radius + 0.005), _random_orientation(rng)))
    return posed


def _settle_in_view(
    pybullet,
    client: int,
    bodies: list[world.BodySpec],
    layout: str,
    look_at: np.ndarray,
    camera: PinholeCamera,
    pose: np.ndarray,
    config: PhysicsSceneConfig,
) -> world.WorldSnapshot:
    """Let the bodies fall and come to rest (cluttered ones first inside a bin that is then taken away);
    take out the ones that end out of view, and settle again."""
    if layout == 'cluttered':
        bodies = settle_bodies(pybullet, client, bodies, bin_around=(look_at, config))
    while True:
        rested = settle_bodies(pybullet, client, bodies)
        keep = [b for b in rested if _in_view(b, camera, pose, config.border_px)]
        if len(keep) == len(rested) or not keep:
            return world.WorldSnapshot(tuple(keep))
        bodies = keep


def settle_bodies(
    pybullet,
    client: int,
    bodies: list[world.BodySpec],
    friction: float = 0.6,
    bin_around: tuple[np.ndarray, PhysicsSceneConfig] | None = None,
) -> list[world.BodySpec]:
    """The bodies rebuilt from their poses in ``client`` (body ``friction``), left to come to rest, posed where they
    rest. ``bin_around``: ``(centre, config)``: first a bin snug around ``centre`` (:func:`_add_bin`, sized by
    :func:`_bin_half_width`) holds them; it is gone from the world the next one loads."""
    ids = world.load_world(pybullet, client, world.WorldSnapshot(tuple(bodies)), friction)
    if bin_around is not None:
        centre, config = bin_around
        _add_bin(pybullet, client, centre, _bin_half_width([_bounding_radius(b) for b in bodies], config))
    world.settle(pybullet, client, ids)
    return [b.posed(p, q) for b, (p, q) in zip(bodies, world.body_poses(pybullet, client, ids), strict=True)]


def _bounding_radius(body: world.BodySpec) -> float:
    """Metres: a circle around the body's footprint in any orientation (half its largest extent, times sqrt 2)."""
    return 0.5 * float(np.ptp(body.local_vertices(), axis=0).max()) * math.sqrt(2.0)


def _bin_half_width(radii: list[float], config: PhysicsSceneConfig) -> float:
    """Half the inner width of the bin cluttered objects are dropped into: snug for their footprints."""
    footprint = sum(2.0 * r * r for r in radii)  # (2r)^2 / 2: a bounding square about half filled
    return max(config.clutter_radius, 0.5 * math.sqrt(footprint), max(radii))


def _add_bin(pybullet, client: int, centre: np.ndarray, half: float) -> None:
    """Four static walls around ``centre`` (metres), ``half`` from it, 0.3 m tall."""
    thickness, height = 0.01, 0.3
    for axis in (0, 1):
        for sign in (-1.0, 1.0):
            extents = [half + thickness, half + thickness, height / 2]
            extents[axis] = thickness
            position = [float(centre[0]), float(centre[1]), height / 2]
            position[axis] += sign * (half + thickness)
            shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=extents, physicsClientId=client)
            pybullet.createMultiBody(0.0, shape, basePosition=position, physicsClientId=client)


def _in_view(body: world.BodySpec, camera: PinholeCamera, pose: np.ndarray, border: float) -> bool:
    """Every point of the body's hull projects at least ``border`` pixels inside the image, on the table."""
    vertices = body.world_vertices()
    uv, z = project(vertices, camera, pose)
    inside = (
        (uv[:, 0] >= border)
        & (uv[:, 0] <= camera.width - 1 - border)
        & (uv[:, 1] >= border)
        & (uv[:, 1] <= camera.height - 1 - border)
    )
    return bool(inside.all() and (z > 0).all() and vertices[:, 2].min() > -0.01)
