"""The physics world (pybullet): the objects we may use, a snapshot that rebuilds a world bit for bit, and a
depth camera whose ``CameraInfo`` matches its projection exactly.

Frames. The world frame is the table frame of :mod:`stn_ros.sim.prisms.scenes`: metres, ``z`` up, the table top
is ``z = 0`` (pybullet's ``plane.urdf``). A camera pose is ``table_from_camera`` (OpenCV camera axes: ``x``
right, ``y`` down, ``z`` forward), pixel centres at integer coordinates.

Objects. Meshes come from ``pybullet_data/random_urdfs/000``-``499`` only (:data:`TRAIN_MESHES` for
training and tuning, :data:`VALIDATION_MESHES` for our own held-out evaluation); ``500``-``999`` and every
named object model of pybullet_data are reserved for an external evaluation and :func:`mesh_file` refuses
them. A mesh is loaded from its ``.obj`` as a convex collision shape (what pybullet does for a moving
mesh) with our own mass and inertia: the URDFs' inertia of 1 kg m^2 would make a 5 cm object nearly
impossible to turn. Our procedural shapes (``box``, ``cylinder``, ``sphere``) are pybullet primitives.

Repeatability. pybullet keeps contact caches across ``restoreState``, so a restored world does not repeat
a trial bit for bit; :func:`load_world` rebuilds it from a :class:`WorldSnapshot` in a reset simulation,
which does. ``getBasePositionAndOrientation`` gives the base (centre of mass) pose, which is what a
snapshot stores and what ``createMultiBody`` takes back.

Rendering uses the CPU renderer (``ER_TINY_RENDERER``), which samples pixel ``(u, v)`` half a pixel off
the pinhole model (measured: at ``u - 0.5``, ``v + 0.5`` in OpenCV pixel coordinates); :func:`projection_matrix`
shifts the principal point to cancel that, so the intrinsics returned with a frame are exact.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera

PYBULLET_MISSING = (
    'pybullet is not installed: the physics world needs it. scripts/setup_venv.sh installs it; '
    'elsewhere: pip install pybullet==3.2.7'
)

MESH_INDICES = range(0, 500)
"""``random_urdfs`` meshes this project may load; ``500``-``999`` are reserved for an external evaluation."""
TRAIN_MESHES = range(0, 400)
"""Meshes for training data and tuning."""
VALIDATION_MESHES = range(400, 500)
"""The validation meshes: never in training data; the physics evaluation runs on them (they chose defaults, so
their figures are validation figures, not a test)."""
MESH_SPLITS = {'train': TRAIN_MESHES, 'validation': VALIDATION_MESHES}

SHAPES = ('mesh', 'box', 'cylinder', 'sphere')
"""Body shapes: a ``random_urdfs`` mesh or one of our procedural primitives."""

TIME_STEP = 1.0 / 240.0
GRAVITY = 9.81
SPINNING_FRICTION = 0.002
"""Torsional friction (metres) at each contact, a stand-in for the soft finger pads of a real gripper:
with none, an object held between two point-like box contacts spins freely about the grasp axis."""


def import_pybullet():
    """The ``pybullet`` module, or an ImportError that says how to install it."""
    try:
        import pybullet
    except ImportError as exc:
        raise ImportError(PYBULLET_MISSING) from exc
    return pybullet


def pybullet_data_path() -> Path:
    """Folder of the ``pybullet_data`` files shipped in pybullet's wheel."""
    try:
        import pybullet_data
    except ImportError as exc:
        raise ImportError(PYBULLET_MISSING) from exc
    return Path(pybullet_data.getDataPath())


def mesh_file(index: int) -> Path:
    """The ``.obj`` of ``random_urdfs/<index>``; ValueError outside :data:`MESH_INDICES` (reserved objects)."""
    if int(index) != index or int(index) not in MESH_INDICES:
        raise ValueError(
            f'random_urdfs/{index} is not ours to load: only {MESH_INDICES.start:03d}-{MESH_INDICES.stop - 1:03d} are '
            'used here; the rest, and every named pybullet_data object, is reserved for an external evaluation'
        )
    name = f'{int(index):03d}'
    return pybullet_data_path() / 'random_urdfs' / name / f'{name}.obj'


@functools.lru_cache(maxsize=512)
def mesh_vertices(index: int) -> np.ndarray:
    """``(N, 3)`` float64 vertices of mesh ``index`` in its own units (read from the ``.obj``)."""
    rows = [line.split()[1:4] for line in mesh_file(index).read_text().splitlines() if line.startswith('v ')]
    vertices = np.asarray(rows, dtype=np.float64)
    if vertices.ndim != 2 or len(vertices) < 4 or not np.isfinite(vertices).all():
        raise ValueError(f'{mesh_file(index)} has no usable vertices')
    if (np.sort(np.ptp(vertices, axis=0))[1:] <= 0).any():
        raise ValueError(f'{mesh_file(index)} is flat')
    return vertices


@functools.lru_cache(maxsize=4)
def usable_meshes(split: str) -> tuple[int, ...]:
    """The meshes of a split (:data:`MESH_SPLITS`) whose ``.obj`` loads: ``random_urdfs/168``'s vertices are
    all NaN, for one."""
    usable = []
    for index in MESH_SPLITS[split]:
        try:
            mesh_vertices(index)
        except ValueError:
            continue
        usable.append(index)
    return tuple(usable)


@dataclass(frozen=True)
class BodySpec:
    """One body of a world and its pose.

    Attributes:
        shape: one of :data:`SHAPES`.
        dims: metres. ``box``: half extents ``(x, y, z)``; ``cylinder``: ``(radius, length)`` (axis along the
            body's ``z``); ``sphere``: ``(radius,)``; ``mesh``: ``(scale,)`` applied to the ``.obj`` units.
        mesh_index: ``random_urdfs`` index for a ``mesh`` (-1 otherwise).
        mass: kilograms.
        position: world position of the body's base (its centre of mass), metres.
        orientation: world orientation quaternion ``(x, y, z, w)``.
    """

    shape: str
    dims: tuple[float, ...]
    mesh_index: int = -1
    mass: float = 0.1
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f'shape must be one of {SHAPES}, got {self.shape!r}')
        if self.shape == 'mesh':
            mesh_file(self.mesh_index)  # refuses reserved meshes before anything loads them
        if self.mass <= 0 or not all(d > 0 for d in self.dims):
            raise ValueError(f'a body needs a positive mass and dimensions, got mass={self.mass}, dims={self.dims}')

    def posed(self, position, orientation) -> BodySpec:
        """This body at another pose."""
        return dataclasses.replace(
            self, position=tuple(float(x) for x in position), orientation=tuple(float(x) for x in orientation)
        )

    def local_vertices(self) -> np.ndarray:
        """``(N, 3)`` points of the body's surface hull in its own frame (metres), for extents and views."""
        if self.shape == 'mesh':
            vertices = mesh_vertices(self.mesh_index) * self.dims[0]
            return vertices - _mesh_centre(self.mesh_index) * self.dims[0]
        if self.shape == 'box':
            return np.array(np.meshgrid(*[(-d, d) for d in self.dims], indexing='ij')).reshape(3, -1).T
        angles = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
        ring = np.stack((np.cos(angles), np.sin(angles), np.zeros_like(angles)), axis=1)
        if self.shape == 'cylinder':
            radius, length = self.dims
            return np.concatenate([ring * radius + (0, 0, z) for z in (-length / 2, length / 2)])
        radius = self.dims[0]
        return np.concatenate([ring * radius, radius * np.eye(3), -radius * np.eye(3)])

    def world_vertices(self) -> np.ndarray:
        """:meth:`local_vertices` at the body's pose, world frame."""
        return self.local_vertices() @ quaternion_matrix(self.orientation).T + np.asarray(self.position)


@dataclass(frozen=True)
class WorldSnapshot:
    """Everything needed to rebuild a world: its bodies, in load order, at rest."""

    bodies: tuple[BodySpec, ...]


def quaternion_matrix(quaternion) -> np.ndarray:
    """``(3, 3)`` rotation of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = (float(q) for q in quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def connect():
    """A new headless pybullet client: ``(pybullet module, client id)``."""
    pybullet = import_pybullet()
    return pybullet, pybullet.connect(pybullet.DIRECT)


def load_world(pybullet, client: int, snapshot: WorldSnapshot, friction: float = 0.6) -> list[int]:
    """Reset the simulation of ``client`` and build the table and the snapshot's bodies, at rest.

    pybullet multiplies two bodies' friction coefficients at a contact; the table keeps 1.0 and each body
    gets ``friction``, so body-table contacts (and body-finger contacts, fingers at 1.0) have ``friction``;
    body-body contacts have ``friction**2``. Returns the bodies' pybullet ids, in the snapshot's order.
    """
    pybullet.resetSimulation(physicsClientId=client)
    pybullet.setGravity(0.0, 0.0, -GRAVITY, physicsClientId=client)
    pybullet.setTimeStep(TIME_STEP, physicsClientId=client)
    table = pybullet.loadURDF(str(pybullet_data_path() / 'plane.urdf'), physicsClientId=client)
    pybullet.changeDynamics(table, -1, lateralFriction=1.0, physicsClientId=client)
    ids = []
    for body in snapshot.bodies:
        collision, visual = _shapes(pybullet, client, body)
        uid = pybullet.createMultiBody(
            body.mass,
            collision,
            visual,
            basePosition=body.position,
            baseOrientation=body.orientation,
            physicsClientId=client,
        )
        pybullet.changeDynamics(
            uid,
            -1,
            lateralFriction=friction,
            spinningFriction=SPINNING_FRICTION,
            rollingFriction=0.0,
            physicsClientId=client,
        )
        ids.append(uid)
    return ids


def body_poses(pybullet, client: int, ids: list[int]) -> list[tuple[tuple, tuple]]:
    """``(position, orientation)`` of each body (base = centre of mass)."""
    return [pybullet.getBasePositionAndOrientation(uid, physicsClientId=client) for uid in ids]


def settle(pybullet, client: int, ids: list[int], max_seconds: float = 3.0, speed: float = 2e-3) -> None:
    """Step until every body moves slower than ``speed`` (m/s and rad/s) or ``max_seconds`` pass."""
    for step in range(int(max_seconds / TIME_STEP)):
        pybullet.stepSimulation(physicsClientId=client)
        if step % 24 == 23:
            velocities = [pybullet.getBaseVelocity(uid, physicsClientId=client) for uid in ids]
            if all(max(np.abs(v).max(), np.abs(w).max()) < speed for v, w in velocities):
                return


def projection_matrix(camera: PinholeCamera, near: float, far: float) -> list[float]:
    """OpenGL projection (column-major, as pybullet takes it) of ``camera``'s intrinsics for the CPU renderer.

    Pixel centres at integers; the principal point is shifted by (-0.5, +0.5) pixels to cancel the
    renderer's half-pixel sampling offset (see the module docstring).
    """
    width, height = camera.width, camera.height
    cx, cy = camera.cx - 0.5, camera.cy + 0.5
    matrix = np.zeros((4, 4))
    matrix[0, 0], matrix[0, 2] = 2.0 * camera.fx / width, 1.0 - 2.0 * (cx + 0.5) / width
    matrix[1, 1], matrix[1, 2] = 2.0 * camera.fy / height, 2.0 * (cy + 0.5) / height - 1.0
    matrix[2, 2], matrix[2, 3] = -(far + near) / (far - near), -2.0 * far * near / (far - near)
    matrix[3, 2] = -1.0
    return matrix.T.reshape(-1).tolist()


def view_matrix(table_from_camera: np.ndarray) -> list[float]:
    """OpenGL view matrix (column-major) of an OpenCV camera pose ``table_from_camera`` ``(4, 4)``."""
    table_from_gl = np.asarray(table_from_camera, dtype=np.float64) @ np.diag([1.0, -1.0, -1.0, 1.0])
    return np.linalg.inv(table_from_gl).T.reshape(-1).tolist()


def depth_from_buffer(buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Camera ``z`` in metres (float32) of OpenGL depth-buffer values in ``[0, 1]`` (the near/far formula)."""
    buffer = np.asarray(buffer, dtype=np.float64)
    return (far * near / (far - (far - near) * buffer)).astype(np.float32)


def render_depth(
    pybullet, client: int, camera: PinholeCamera, table_from_camera: np.ndarray, near: float = 0.05, far: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Clean depth ``(H, W)`` float32 metres and the pybullet body id seen at each pixel ``(H, W)`` int32
    (-1 where nothing is: beyond ``far``)."""
    _, _, _, buffer, seen = pybullet.getCameraImage(
        camera.width,
        camera.height,
        viewMatrix=view_matrix(table_from_camera),
        projectionMatrix=projection_matrix(camera, near, far),
        renderer=pybullet.ER_TINY_RENDERER,
        physicsClientId=client,
    )
    shape = (camera.height, camera.width)
    depth = depth_from_buffer(np.asarray(buffer).reshape(shape), near, far)
    seen = np.asarray(seen, dtype=np.int32).reshape(shape)
    depth[seen < 0] = np.nan
    return depth, seen


@functools.lru_cache(maxsize=512)
def _mesh_centre(index: int) -> np.ndarray:
    """Centre of the mesh's bounding box (its units): the body origin and centre of mass we give it."""
    vertices = mesh_vertices(index)
    return 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))


def _shapes(pybullet, client: int, body: BodySpec) -> tuple[int, int]:
    """Collision and visual shape ids of ``body``."""
    if body.shape == 'mesh':
        scale = [body.dims[0]] * 3
        offset = (-_mesh_centre(body.mesh_index) * body.dims[0]).tolist()
        path = str(mesh_file(body.mesh_index))
        collision = pybullet.createCollisionShape(
            pybullet.GEOM_MESH, fileName=path, meshScale=scale, collisionFramePosition=offset, physicsClientId=client
        )
        visual = pybullet.createVisualShape(
            pybullet.GEOM_MESH, fileName=path, meshScale=scale, visualFramePosition=offset, physicsClientId=client
        )
        return collision, visual
    if body.shape == 'box':
        kwargs = {'halfExtents': list(body.dims)}
        return (
            pybullet.createCollisionShape(pybullet.GEOM_BOX, physicsClientId=client, **kwargs),
            pybullet.createVisualShape(pybullet.GEOM_BOX, physicsClientId=client, **kwargs),
        )
    if body.shape == 'cylinder':
        radius, length = body.dims
        return (
            pybullet.createCollisionShape(pybullet.GEOM_CYLINDER, radius=radius, height=length, physicsClientId=client),
            pybullet.createVisualShape(pybullet.GEOM_CYLINDER, radius=radius, length=length, physicsClientId=client),
        )
    radius = body.dims[0]
    return (
        pybullet.createCollisionShape(pybullet.GEOM_SPHERE, radius=radius, physicsClientId=client),
        pybullet.createVisualShape(pybullet.GEOM_SPHERE, radius=radius, physicsClientId=client),
    )
