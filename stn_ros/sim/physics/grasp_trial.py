"""Simulated parallel-jaw grasp trials (pybullet, Dex-Net style): does a grasp lift its object and keep it?

Frames and units. Everything is in the world (table) frame of :mod:`stn_ros.sim.physics.world`: metres,
``z`` up, the table top at ``z = 0``. A :class:`GraspPose` gives the fingertip midpoint ``centre`` at the
grasp, the closing ``axis`` and the ``approach`` direction. The gripper frame has ``x = axis``,
``z = approach`` and ``y = z x x``; its origin, the tool centre point (TCP), is the fingertip midpoint.

The gripper. A palm (``max_opening + 2 jaw_thickness`` wide) and two box fingers, each ``jaw_thickness``
along the axis, ``jaw_width`` across it and ``finger_length`` along the approach, on prismatic joints along
the axis; their inner faces are ``max_opening`` apart when open (a grasp's ``opening`` when it has one: the
gripper opened only that far, the palm as wide as the fingers). The fingers are driven by position control
towards closed (inner faces meeting at the centre) at ``close_speed`` with at most ``grip_force`` each, so a
finger blocked by an object squeezes it with exactly ``grip_force``. The palm follows a target pose through
a fixed constraint to the world with at most ``arm_force``: strong enough that gravity does not make it sag
(measured: under 0.01 mm at rest holding a 0.1 kg box; it trails a moving target by at most about four
steps, 9 mm at the approach's 0.5 m/s peak), bounded so a finger that lands on an object stops there
instead of driving through it. The fingers are coupled (a gear constraint keeps their travels equal), as
in a real parallel gripper; without it two force-limited fingers and their object drift along the axis.
Fingers have friction 1.0; pybullet multiplies coefficients, so a finger-body contact has the body's
``friction``.

A trial. :func:`~stn_ros.sim.physics.world.load_world` rebuilds the snapshot in a reset simulation (so the
same inputs give bit-identical results), then:

1. pre-grasp: the open gripper appears at ``centre - standoff * approach``; ``blocked`` if it overlaps
   anything there (the table included);
2. approach: the TCP moves to ``centre`` along the approach (smooth profile, ``approach_seconds``);
   ``blocked`` if it ends more than ``reach_tolerance`` short (a finger landed on something);
3. close: the fingers close until they stop moving (at most ``close_seconds``); ``empty`` if no body is
   between them;
4. lift: the TCP rises ``lift_height`` straight up (world ``+z``, ``lift_seconds``), then holds still for
   ``hold_seconds``;
5. shake: ``shake_seconds`` of a ``shake_frequency`` oscillation, ``+-shake_amplitude`` along world ``z``
   together with ``+-shake_angle_deg`` about the grasp axis (the object's weak direction: it can pivot
   about the line between the two contacts), under a ``sin^2`` envelope so the motion starts and ends at rest.

Success (``outcome == 'held'``): at the end a body is between the fingers (touching both, or its centre
inside the region between the jaws) and it has risen at least half the lift height. ``dropped``: a body was
between the fingers after closing, none is at the end. The remaining outcomes are above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.sim.physics.world import TIME_STEP, WorldSnapshot, connect, load_world, quaternion_matrix

OUTCOMES = ('held', 'blocked', 'empty', 'dropped')
"""Trial outcomes: success, or the first reason it failed (see the module docstring)."""

FINGER_FRICTION = 1.0
_PALM_HALF_THICKNESS = 0.01
_PALM_MASS = 0.3
_FINGER_MASS = 0.05
_GEAR_FORCE = 100.0
"""Most force of the coupling that keeps the two fingers' travels equal."""
_LEFT, _RIGHT = 0, 1
"""Link indices of the fingers: the left one sits at ``-x`` (closes along ``+x``), the right one at ``+x``."""
_CHECK_EVERY = 12
"""Steps between contact checks while holding and shaking (a dropped object ends the trial early)."""


@dataclass(frozen=True)
class GraspPose:
    """A parallel-jaw grasp in the world (table) frame, metres.

    Attributes:
        centre: midpoint between the two fingertips when the grasp is executed.
        axis: unit closing direction (the jaws move towards ``centre`` along ``+-axis``); orthogonalized
            against ``approach`` and normalized on construction.
        approach: unit direction the gripper travels to reach the grasp (e.g. the camera's optical axis,
            roughly ``-z``); normalized on construction.
        opening: metres between the fingers' inner faces when open, at most the gripper's ``max_opening``; None:
            fully open.
    """

    centre: tuple[float, float, float]
    axis: tuple[float, float, float]
    approach: tuple[float, float, float]
    opening: float | None = None

    def __post_init__(self) -> None:
        centre = np.asarray(self.centre, dtype=np.float64).reshape(-1)
        axis = np.asarray(self.axis, dtype=np.float64).reshape(-1)
        approach = np.asarray(self.approach, dtype=np.float64).reshape(-1)
        for name, vector in (('centre', centre), ('axis', axis), ('approach', approach)):
            if vector.shape != (3,) or not np.all(np.isfinite(vector)):
                raise ValueError(f'GraspPose.{name} must be 3 finite numbers, got {getattr(self, name)!r}')
        length = np.linalg.norm(approach)
        if length < 1e-9:
            raise ValueError(f'GraspPose.approach must be a non-zero direction, got {self.approach!r}')
        approach = approach / length
        if np.linalg.norm(axis) < 1e-9:
            raise ValueError(f'GraspPose.axis must be a non-zero direction, got {self.axis!r}')
        across = axis - (axis @ approach) * approach
        if np.linalg.norm(across) < 1e-6 * np.linalg.norm(axis):
            raise ValueError(
                f'GraspPose.axis {self.axis!r} is parallel to the approach {self.approach!r}: '
                'the jaws must close across the approach direction'
            )
        axis = across / np.linalg.norm(across)
        if self.opening is not None and not (math.isfinite(self.opening) and self.opening > 0):
            raise ValueError(f'GraspPose.opening must be a positive number of metres or None, got {self.opening!r}')
        object.__setattr__(self, 'centre', tuple(float(x) for x in centre))
        object.__setattr__(self, 'axis', tuple(float(x) for x in axis))
        object.__setattr__(self, 'approach', tuple(float(x) for x in approach))

    def rotation(self) -> np.ndarray:
        """``(3, 3)`` world-from-gripper rotation: columns ``axis``, ``approach x axis``, ``approach``."""
        axis, approach = np.asarray(self.axis), np.asarray(self.approach)
        return np.stack((axis, np.cross(approach, axis), approach), axis=1)


@dataclass(frozen=True)
class TrialConfig:
    """The simulated gripper and the phases of a trial (metres, seconds, newtons; see the module docstring).

    Attributes:
        gripper: jaw geometry (``max_opening``, ``jaw_width``, ``jaw_thickness``).
        finger_length: fingers' extent along the approach, fingertip to palm.
        standoff: pre-grasp distance back along the approach.
        grip_force: most force each finger's motor applies.
        close_speed: each finger's closing speed.
        arm_force: most force of the constraint that moves the palm (about 60x the gripper's weight).
        approach_seconds, close_seconds: approach duration; longest wait for the fingers to stop.
        reach_tolerance: the approach is ``blocked`` when the TCP stops farther than this from ``centre``.
        lift_height, lift_seconds, hold_seconds: straight-up lift and the still hold after it.
        shake_seconds, shake_frequency, shake_amplitude, shake_angle_deg: the shake (Hz, metres along world
            ``z``, degrees about the grasp axis).
    """

    gripper: GripperConfig = field(default_factory=GripperConfig)
    finger_length: float = 0.08
    standoff: float = 0.10
    grip_force: float = 20.0
    close_speed: float = 0.15
    arm_force: float = 250.0
    approach_seconds: float = 0.3
    close_seconds: float = 0.4
    reach_tolerance: float = 0.004
    lift_height: float = 0.15
    lift_seconds: float = 0.5
    hold_seconds: float = 1.0
    shake_seconds: float = 1.0
    shake_frequency: float = 2.0
    shake_amplitude: float = 0.02
    shake_angle_deg: float = 15.0


@dataclass(frozen=True)
class TrialResult:
    """What one trial did.

    Attributes:
        success: the grasp held (``outcome == 'held'``).
        held_body: index into ``snapshot.bodies`` of the body between the fingers at the end (-1 none).
        outcome: one of :data:`OUTCOMES`.
        final_poses: each snapshot body's final ``(position, orientation)`` (world frame, metres and
            ``(x, y, z, w)``), as pybullet reports them.
    """

    success: bool
    held_body: int
    outcome: str
    final_poses: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()


def grasp_trial(
    snapshot: WorldSnapshot,
    grasp: GraspPose,
    friction: float = 0.6,
    config: TrialConfig = TrialConfig(),
    world=None,
) -> TrialResult:
    """Run one grasp trial on a fresh copy of ``snapshot`` with body friction ``friction``.

    ``world``: a ``(pybullet, client)`` from :func:`~stn_ros.sim.physics.world.connect` to reuse (its
    simulation is reset); when None a client is created and disconnected here.
    """
    if world is None:
        pybullet, client = connect()
        try:
            return _trial(pybullet, client, snapshot, grasp, friction, config)
        finally:
            pybullet.disconnect(physicsClientId=client)
    pybullet, client = world
    return _trial(pybullet, client, snapshot, grasp, friction, config)


def perturb(
    grasp: GraspPose, rng: np.random.Generator, position_std: float = 0.003, angle_std_deg: float = 3.0
) -> GraspPose:
    """``grasp`` with pose noise: the centre jittered (``position_std`` metres per coordinate), the axis
    turned about the approach and the approach (with the axis) tilted about a random perpendicular
    direction, both by normal angles of ``angle_std_deg`` degrees."""
    centre = np.asarray(grasp.centre) + rng.normal(0.0, position_std, 3)
    spin, tilt = rng.normal(0.0, math.radians(angle_std_deg), 2)
    tilt_direction = rng.uniform(0.0, 2.0 * np.pi)
    axis, approach = np.asarray(grasp.axis), np.asarray(grasp.approach)
    axis = _rotate(axis, approach, spin)
    tilt_axis = math.cos(tilt_direction) * axis + math.sin(tilt_direction) * np.cross(approach, axis)
    return GraspPose(
        centre=tuple(centre),
        axis=tuple(_rotate(axis, tilt_axis, tilt)),
        approach=tuple(_rotate(approach, tilt_axis, tilt)),
        opening=grasp.opening,
    )


def robust_trials(
    snapshot: WorldSnapshot,
    grasp: GraspPose,
    rng: np.random.Generator,
    trials: int = 5,
    friction_range: tuple[float, float] = (0.4, 0.8),
    config: TrialConfig = TrialConfig(),
    world=None,
) -> np.ndarray:
    """``(trials,)`` int: the body (index into ``snapshot.bodies``) each of ``trials`` trials held, -1 where it
    failed; each trial with the grasp :func:`perturb`-ed and the friction drawn uniformly in
    ``friction_range`` (in that order from ``rng``). One pybullet client serves all trials (``world``, or one
    created and disconnected here)."""
    if world is None:
        world = connect()
        try:
            return robust_trials(snapshot, grasp, rng, trials, friction_range, config, world)
        finally:
            world[0].disconnect(physicsClientId=world[1])
    held = np.full(int(trials), -1, dtype=np.int64)
    for index in range(int(trials)):
        noisy = perturb(grasp, rng)
        friction = float(rng.uniform(*friction_range))
        result = grasp_trial(snapshot, noisy, friction, config, world)
        held[index] = result.held_body if result.success else -1
    return held


def _rotate(vector: np.ndarray, about: np.ndarray, angle: float) -> np.ndarray:
    """``vector`` turned by ``angle`` radians about the unit direction ``about`` (Rodrigues)."""
    about = about / np.linalg.norm(about)
    cos, sin = math.cos(angle), math.sin(angle)
    return vector * cos + np.cross(about, vector) * sin + about * (about @ vector) * (1.0 - cos)


def _rotation_about(about: np.ndarray, angle: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle`` radians about the unit direction ``about``."""
    return np.stack([_rotate(column, about, angle) for column in np.eye(3)], axis=1)


def _matrix_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion ``(x, y, z, w)`` of a ``(3, 3)`` rotation."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
    q = np.asarray(q) / np.linalg.norm(q)
    return tuple(float(x) for x in q)


def _smooth(t: float) -> float:
    """Cosine ease from 0 to 1 over ``t`` in ``[0, 1]`` (zero velocity at both ends)."""
    return 0.5 - 0.5 * math.cos(math.pi * min(max(t, 0.0), 1.0))


class _Gripper:
    """The simulated gripper in one client: a palm body with two prismatic fingers, moved by a constraint."""

    def __init__(self, pybullet, client: int, config: TrialConfig, tcp: np.ndarray, rotation: np.ndarray) -> None:
        self.pybullet, self.client, self.config = pybullet, client, config
        gripper = config.gripper
        self.tcp_offset = np.array([0.0, 0.0, _PALM_HALF_THICKNESS + config.finger_length])
        """The TCP (fingertip midpoint) in the palm's frame; the palm's ``z`` is the approach."""
        half_span = gripper.max_opening / 2 + gripper.jaw_thickness
        palm = pybullet.createCollisionShape(
            pybullet.GEOM_BOX,
            halfExtents=[half_span, gripper.jaw_width / 2, _PALM_HALF_THICKNESS],
            physicsClientId=client,
        )
        finger = pybullet.createCollisionShape(
            pybullet.GEOM_BOX,
            halfExtents=[gripper.jaw_thickness / 2, gripper.jaw_width / 2, config.finger_length / 2],
            physicsClientId=client,
        )
        finger_x = gripper.max_opening / 2 + gripper.jaw_thickness / 2
        finger_z = _PALM_HALF_THICKNESS + config.finger_length / 2
        position, orientation = self._palm_pose(tcp, rotation)
        self.uid = pybullet.createMultiBody(
            _PALM_MASS,
            palm,
            -1,
            basePosition=position,
            baseOrientation=orientation,
            linkMasses=[_FINGER_MASS, _FINGER_MASS],
            linkCollisionShapeIndices=[finger, finger],
            linkVisualShapeIndices=[-1, -1],
            linkPositions=[[-finger_x, 0.0, finger_z], [finger_x, 0.0, finger_z]],
            linkOrientations=[[0, 0, 0, 1], [0, 0, 0, 1]],
            linkInertialFramePositions=[[0, 0, 0], [0, 0, 0]],
            linkInertialFrameOrientations=[[0, 0, 0, 1], [0, 0, 0, 1]],
            linkParentIndices=[0, 0],
            linkJointTypes=[pybullet.JOINT_PRISMATIC, pybullet.JOINT_PRISMATIC],
            linkJointAxis=[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]],
            physicsClientId=client,
        )
        for link in (-1, _LEFT, _RIGHT):
            pybullet.changeDynamics(
                self.uid, link, lateralFriction=FINGER_FRICTION, linearDamping=0.0, physicsClientId=client
            )
        self.constraint = pybullet.createConstraint(
            self.uid,
            -1,
            -1,
            -1,
            pybullet.JOINT_FIXED,
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            position,
            childFrameOrientation=orientation,
            physicsClientId=client,
        )
        # Keep the fingers' travels equal (gear ratio -1 between these two joint axes, measured).
        gear = pybullet.createConstraint(
            self.uid,
            _LEFT,
            self.uid,
            _RIGHT,
            pybullet.JOINT_GEAR,
            [1.0, 0.0, 0.0],
            [0, 0, 0],
            [0, 0, 0],
            physicsClientId=client,
        )
        pybullet.changeConstraint(gear, gearRatio=-1.0, maxForce=_GEAR_FORCE, physicsClientId=client)
        self.drive(tcp, rotation)
        self.set_fingers(closing=False)

    def _palm_pose(self, tcp: np.ndarray, rotation: np.ndarray) -> tuple[list[float], tuple[float, ...]]:
        return (np.asarray(tcp) - rotation @ self.tcp_offset).tolist(), _matrix_quaternion(rotation)

    def drive(self, tcp: np.ndarray, rotation: np.ndarray) -> None:
        """Set the palm's target so the TCP goes to ``tcp`` (world) with world-from-gripper ``rotation``."""
        position, orientation = self._palm_pose(tcp, rotation)
        self.pybullet.changeConstraint(
            self.constraint,
            jointChildPivot=position,
            jointChildFrameOrientation=orientation,
            maxForce=self.config.arm_force,
            physicsClientId=self.client,
        )

    def set_fingers(self, closing: bool) -> None:
        """Hold the fingers open, or close them at ``close_speed`` with at most ``grip_force`` each."""
        target = self.config.gripper.max_opening / 2 if closing else 0.0
        for link in (_LEFT, _RIGHT):
            self.pybullet.setJointMotorControl2(
                self.uid,
                link,
                self.pybullet.POSITION_CONTROL,
                targetPosition=target,
                force=self.config.grip_force,
                maxVelocity=self.config.close_speed,
                physicsClientId=self.client,
            )

    def tcp(self) -> tuple[np.ndarray, np.ndarray]:
        """The TCP's world position and the world-from-gripper rotation now."""
        position, orientation = self.pybullet.getBasePositionAndOrientation(self.uid, physicsClientId=self.client)
        rotation = quaternion_matrix(orientation)
        return np.asarray(position) + rotation @ self.tcp_offset, rotation

    def finger_states(self) -> tuple[np.ndarray, np.ndarray]:
        """Finger joint positions (closing travel, metres) and velocities."""
        states = self.pybullet.getJointStates(self.uid, [_LEFT, _RIGHT], physicsClientId=self.client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def between(self, ids: list[int]) -> list[int]:
        """Indices (into ``ids``) of the bodies between the fingers: touching both, or centre inside the
        box between the inner faces (``jaw_width`` across, ``finger_length`` deep)."""
        pybullet, client = self.pybullet, self.client
        tcp, rotation = self.tcp()
        travel, _ = self.finger_states()
        half = self.config.gripper.max_opening / 2
        low, high = -half + travel[0], half - travel[1]
        found = []
        for index, uid in enumerate(ids):
            touching = all(
                pybullet.getContactPoints(uid, self.uid, -1, link, physicsClientId=client) for link in (_LEFT, _RIGHT)
            )
            position, _ = pybullet.getBasePositionAndOrientation(uid, physicsClientId=client)
            x, y, z = rotation.T @ (np.asarray(position) - tcp)
            inside = (
                low < x < high and abs(y) < self.config.gripper.jaw_width / 2 and -self.config.finger_length < z < 0
            )
            if touching or inside:
                found.append(index)
        return found


def _overlaps(pybullet, client: int, uid: int) -> bool:
    """Whether body ``uid`` penetrates any other body (table included) by more than a millimetre."""
    for index in range(pybullet.getNumBodies(physicsClientId=client)):
        other = pybullet.getBodyUniqueId(index, physicsClientId=client)
        if other == uid:
            continue
        points = pybullet.getClosestPoints(uid, other, 0.0, physicsClientId=client)
        if any(point[8] < -1e-3 for point in points):
            return True
    return False


def _trial(pybullet, client: int, snapshot: WorldSnapshot, grasp: GraspPose, friction: float, config: TrialConfig):
    ids = load_world(pybullet, client, snapshot, friction)
    if grasp.opening is not None and grasp.opening < config.gripper.max_opening:
        config = replace(config, gripper=replace(config.gripper, max_opening=grasp.opening))
    start_z = np.array([body.position[2] for body in snapshot.bodies])
    rotation = grasp.rotation()
    centre, approach = np.asarray(grasp.centre), np.asarray(grasp.approach)
    pre_grasp = centre - config.standoff * approach
    gripper = _Gripper(pybullet, client, config, pre_grasp, rotation)

    def result(outcome: str, held: int = -1) -> TrialResult:
        poses = tuple(
            (tuple(p), tuple(q))
            for p, q in (pybullet.getBasePositionAndOrientation(uid, physicsClientId=client) for uid in ids)
        )
        return TrialResult(outcome == 'held', held, outcome, poses)

    def run(seconds: float, target=None) -> None:
        steps = max(1, round(seconds / TIME_STEP))
        for step in range(steps):
            if target is not None:
                gripper.drive(*target((step + 1) / steps))
            pybullet.stepSimulation(physicsClientId=client)

    # 1-2. Pre-grasp, then approach along the approach direction.
    if _overlaps(pybullet, client, gripper.uid):
        return result('blocked')
    run(config.approach_seconds, lambda s: (pre_grasp + _smooth(s) * config.standoff * approach, rotation))
    run(0.05)
    if np.linalg.norm(gripper.tcp()[0] - centre) > config.reach_tolerance:
        return result('blocked')

    # 3. Close until the fingers stop (at least 0.1 s), then check that something is between them.
    gripper.set_fingers(closing=True)
    min_steps, max_steps = round(0.1 / TIME_STEP), max(round(config.close_seconds / TIME_STEP), 1)
    for step in range(max_steps):
        pybullet.stepSimulation(physicsClientId=client)
        if step >= min_steps and np.all(np.abs(gripper.finger_states()[1]) < 2e-3):
            break
    if not gripper.between(ids):
        return result('empty')

    # 4. Lift straight up, hold.
    up = np.array([0.0, 0.0, config.lift_height])
    run(config.lift_seconds, lambda s: (centre + _smooth(s) * up, rotation))
    lifted = centre + up
    hold_steps = round(config.hold_seconds / TIME_STEP)
    for step in range(hold_steps):
        pybullet.stepSimulation(physicsClientId=client)
        if step % _CHECK_EVERY == _CHECK_EVERY - 1 and not gripper.between(ids):
            return result('dropped')

    # 5. Shake: vertical and about the grasp axis, under a sin^2 envelope.
    shake_steps = round(config.shake_seconds / TIME_STEP)
    axis = rotation[:, 0]
    for step in range(shake_steps):
        t = (step + 1) * TIME_STEP
        wave = math.sin(2 * math.pi * config.shake_frequency * t) * math.sin(math.pi * (step + 1) / shake_steps) ** 2
        turn = _rotation_about(axis, math.radians(config.shake_angle_deg) * wave)
        gripper.drive(lifted + np.array([0.0, 0.0, config.shake_amplitude * wave]), turn @ rotation)
        pybullet.stepSimulation(physicsClientId=client)
        if step % _CHECK_EVERY == _CHECK_EVERY - 1 and not gripper.between(ids):
            return result('dropped')
    run(0.1)

    # Judge: between the fingers and lifted.
    for index in gripper.between(ids):
        z = pybullet.getBasePositionAndOrientation(ids[index], physicsClientId=client)[0][2]
        if z - start_z[index] >= config.lift_height / 2:
            return result('held', index)
    return result('dropped')
