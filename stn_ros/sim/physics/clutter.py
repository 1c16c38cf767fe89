"""Clutter-removal worlds (VGN, Breyer et al., CoRL 2020; GIGA, Jiang et al., RSS 2021): five objects on a table,
packed or piled, seen by one depth camera from above or from the side, and what is left after each grasp.

Frames and units are :mod:`stn_ros.sim.physics.world`'s: metres, table top ``z = 0``, the workspace a
``2 workspace_half`` square centred on the table origin.

Layouts (the protocol's two):

* ``packed``: each object stands upright (its longest extent vertical, a uniform yaw), placed at a uniform point of
  the ``2 packed_half`` square around the origin where its footprint circle keeps ``packed_gap`` from the others'
  (side by side, as on a shelf), then all settle (a tall one may topple).
* ``pile``: the objects fall one above the other in random orientations into a snug bin around the origin, settle,
  the bin is taken away and they settle again (the existing ``cluttered`` drop of :mod:`.scenes`).

Objects are :func:`~stn_ros.sim.physics.scenes.PhysicsSceneConfig` bodies (``meshes``: the validation split
``random_urdfs 400-499`` by default, never ``500-999``; ``procedural_prob`` of our boxes, cylinders and spheres),
scaled to fit the gripper. A draw where an object settles outside the workspace is drawn again from the same
generator, so every world has exactly ``objects`` objects and is a function of its seed alone, whatever the view.

Views: ``top`` looks straight down, ``side`` is tilted 60 deg from vertical (:data:`VIEWS`), both at the table origin
from ``view_distance`` metres along the optical axis (:func:`~stn_ros.sim.prisms.scenes.view_pose`), a level camera
(no roll) at a uniform azimuth drawn from ``(seed, view)``; 640x480, ``fx = fy = 540`` by default. Each frame draws
new sensor noise (:func:`~stn_ros.sim.physics.scenes.sensor_readings`).

After a grasp (:class:`ClutterTable`): the bodies are where the trial left them (the held one taken away when it
held), they settle (as in VGN, the simulation goes on from there; here rebuilt from those poses at rest, so a body
falling at the trial's end falls from rest), and a body that settles outside the workspace is taken off the table
(VGN's rule), counted apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.perception.geometry.rigid_transforms import matrix_quaternion
from stn_ros.sim.physics import world
from stn_ros.sim.physics.grasp_trial import GraspPose, TrialConfig, TrialResult, grasp_trial
from stn_ros.sim.physics.scenes import (
    PhysicsScene,
    PhysicsSceneConfig,
    drop_bodies,
    observe_scene,
    random_body,
    settle_bodies,
)
from stn_ros.sim.prisms.scenes import view_pose

CLUTTER_LAYOUTS = ('packed', 'pile')
VIEWS = {'top': 0.0, 'side': 60.0}
"""View name -> degrees of the optical axis from vertical."""

_DRAWS = 50
"""Most draws of a world before giving up (an object settling outside the workspace is rare)."""


@dataclass(frozen=True)
class ClutterConfig:
    """A clutter-removal world and its camera (metres).

    Attributes:
        objects: objects per round.
        scene: the bodies (``meshes``, ``procedural_prob``, sizes, densities), the image size, ``focal_640`` and the
            sensor model; the other fields are not used.
        view_distance: camera to table origin along the optical axis.
        workspace_half: half side of the workspace square; a body settling outside it is taken off the table.
        packed_half: half side of the square packed objects are placed in.
        packed_gap: least gap between packed objects' footprint circles.
        friction: body friction while settling (the trials' ``mu``, so the world rests as the gripper finds it).
    """

    objects: int = 5
    scene: PhysicsSceneConfig = field(
        default_factory=lambda: PhysicsSceneConfig(meshes='validation', focal_640=540.0, cluttered_prob=1.0)
    )
    view_distance: float = 0.7
    workspace_half: float = 0.15
    packed_half: float = 0.09
    packed_gap: float = 0.005
    friction: float = 0.5

    def __post_init__(self) -> None:
        if self.objects < 1:
            raise ValueError(f'objects must be at least 1, got {self.objects}')
        if not 0 < self.packed_half < self.workspace_half:
            raise ValueError(
                f'packed_half must be in (0, workspace_half = {self.workspace_half}), got {self.packed_half}'
            )


@dataclass(frozen=True)
class ClutterWorld:
    """A settled initial world: ``snapshot.bodies[k]`` is object ``k`` of the round, ``kinds[k]`` its kind."""

    snapshot: world.WorldSnapshot
    kinds: tuple[str, ...]
    layout: str
    seed: int


def generate_clutter_world(
    layout: str, seed: int, config: ClutterConfig = ClutterConfig(), world_handle=None
) -> ClutterWorld:
    """The world of ``seed`` in ``layout`` (:data:`CLUTTER_LAYOUTS`, the module docstring): exactly
    ``config.objects`` bodies at rest inside the workspace; deterministic for a seed, independent of the view.

    ``world_handle``: an optional ``(pybullet, client)`` to reuse (its simulation is reset)."""
    if layout not in CLUTTER_LAYOUTS:
        raise ValueError(f'layout must be one of {CLUTTER_LAYOUTS}, got {layout!r}')
    rng = np.random.default_rng(int(seed))
    pybullet, client = world_handle or world.connect()
    try:
        for _ in range(_DRAWS):
            bodies = [random_body(config.scene, rng) for _ in range(config.objects)]
            if layout == 'packed':
                posed = _packed(bodies, config, rng)
                if posed is None:
                    continue
                rested = settle_bodies(pybullet, client, posed, config.friction)
            else:
                posed = drop_bodies(bodies, 'cluttered', np.zeros(2), config.scene, rng)
                in_bin = settle_bodies(pybullet, client, posed, config.friction, bin_around=(np.zeros(2), config.scene))
                rested = settle_bodies(pybullet, client, in_bin, config.friction)  # the bin taken away
            if all(in_workspace(b, config) for b in rested):
                kinds = tuple(f'mesh {b.mesh_index:03d}' if b.shape == 'mesh' else b.shape for b in rested)
                return ClutterWorld(world.WorldSnapshot(tuple(rested)), kinds, layout, int(seed))
    finally:
        if world_handle is None:
            pybullet.disconnect(client)
    raise RuntimeError(f'no {layout} world of {config.objects} objects inside the workspace in {_DRAWS} draws')


def clutter_view(view: str, seed: int, config: ClutterConfig = ClutterConfig()) -> tuple[PinholeCamera, np.ndarray]:
    """The intrinsics and ``(4, 4)`` table_from_camera of ``view`` (:data:`VIEWS`) for the round of ``seed``: a level
    camera at the view's tilt, at an azimuth drawn from ``(seed, view)`` (the module docstring)."""
    if view not in VIEWS:
        raise ValueError(f'view must be one of {tuple(VIEWS)}, got {view!r}')
    azimuth = np.random.default_rng((int(seed), list(VIEWS).index(view))).uniform(0.0, 2.0 * np.pi)
    return config.scene.camera(), view_pose(config.view_distance, VIEWS[view], azimuth, 0.0)


def in_workspace(body: world.BodySpec, config: ClutterConfig) -> bool:
    """The body's centre is inside the workspace square and not below the table."""
    x, y, z = body.position
    return abs(x) <= config.workspace_half and abs(y) <= config.workspace_half and z > -0.01


class ClutterTable:
    """One round's table in its own pybullet client: the objects still on it, a frame of them, a grasp on them.

    Objects keep their index in the initial world (:class:`ClutterWorld`) for the whole round; :attr:`objects`
    lists the ones still on the table, in the order of :attr:`snapshot`'s bodies (so a frame's label ``k`` is object
    ``objects[k - 1]``). ``trial``: the gripper and its phases (None: the default gripper). Use it in a ``with`` block
    (or call :meth:`close`): it holds a pybullet client.
    """

    def __init__(
        self,
        initial: ClutterWorld,
        view: str,
        config: ClutterConfig = ClutterConfig(),
        trial: TrialConfig | None = None,
    ) -> None:
        self.config, self.layout, self.seed = config, initial.layout, initial.seed
        self.trial = trial or TrialConfig()
        self.kinds = initial.kinds
        self.snapshot = initial.snapshot
        self.objects = list(range(len(initial.snapshot.bodies)))
        self.left_workspace: list[int] = []
        self.camera, self.table_from_camera = clutter_view(view, initial.seed, config)
        self.frames = 0
        self._world = world.connect()

    def observe(self) -> PhysicsScene:
        """A new frame of what is on the table (new sensor noise, drawn from the round's seed and the frame's index:
        every method's first frame of a round is the same)."""
        rng = np.random.default_rng((int(self.seed), 7, self.frames))
        self.frames += 1
        return observe_scene(
            *self._world,
            self.snapshot,
            self.camera,
            self.table_from_camera,
            self.config.scene,
            rng,
            self.layout,
            self.seed,
            self.config.friction,
        )

    def execute(self, grasp: GraspPose) -> tuple[TrialResult, int]:
        """Try ``grasp`` (:func:`~stn_ros.sim.physics.grasp_trial.grasp_trial`, body friction ``config.friction``),
        take the held object away when it held, let the rest settle and take off the table those outside the
        workspace. Returns the trial and the object it held (its initial index; -1 when it failed)."""
        result = grasp_trial(self.snapshot, grasp, self.config.friction, self.trial, world=self._world)
        held = self.objects[result.held_body] if result.success else -1
        moved = [
            (index, body.posed(*pose))
            for index, body, pose in zip(self.objects, self.snapshot.bodies, result.final_poses, strict=True)
            if index != held
        ]
        rested = settle_bodies(*self._world, [body for _, body in moved], self.config.friction) if moved else []
        keep = [in_workspace(body, self.config) for body in rested]
        self.left_workspace += [index for (index, _), k in zip(moved, keep, strict=True) if not k]
        self.objects = [index for (index, _), k in zip(moved, keep, strict=True) if k]
        self.snapshot = world.WorldSnapshot(tuple(body for body, k in zip(rested, keep, strict=True) if k))
        return result, held

    def close(self) -> None:
        if self._world is not None:
            self._world[0].disconnect(physicsClientId=self._world[1])
            self._world = None

    def __enter__(self) -> ClutterTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _upright(body: world.BodySpec, yaw: float) -> np.ndarray:
    """``(3, 3)`` world-from-body rotation standing ``body`` on end (its longest local extent along world ``z``),
    turned ``yaw`` radians about ``z``."""
    longest = int(np.argmax(np.ptp(body.local_vertices(), axis=0)))
    stand = {  # proper rotations taking the body's axis ``longest`` to world z
        0: np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        1: np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
        2: np.eye(3),
    }[longest]
    cos, sin = math.cos(yaw), math.sin(yaw)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]]) @ stand


def _packed(
    bodies: list[world.BodySpec], config: ClutterConfig, rng: np.random.Generator
) -> list[world.BodySpec] | None:
    """The bodies standing side by side (the module docstring), 2 mm above the table; None when one finds no room."""
    posed: list[world.BodySpec] = []
    circles: list[tuple[np.ndarray, float]] = []
    for body in bodies:
        rotation = _upright(body, rng.uniform(0.0, 2.0 * np.pi))
        vertices = body.local_vertices() @ rotation.T
        radius = 0.5 * float(np.hypot(*np.ptp(vertices[:, :2], axis=0)))
        for _ in range(100):
            xy = rng.uniform(-config.packed_half, config.packed_half, 2)
            if all(np.linalg.norm(xy - c) >= radius + r + config.packed_gap for c, r in circles):
                break
        else:
            return None
        circles.append((xy, radius))
        z = 0.002 - float(vertices[:, 2].min())
        posed.append(body.posed((*xy, z), tuple(matrix_quaternion(rotation))))
    return posed
