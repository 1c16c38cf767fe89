"""``stn_evaluate physics``: do the grasps hold? Judged by pybullet on our held-out meshes.

On ``--num-scenes`` physics scenes of :data:`~stn_ros.sim.physics.world.VALIDATION_MESHES` (never in training
data) and our procedural shapes, singulated and cluttered, each method proposes grasps and a simulated
parallel-jaw gripper tries each one once (:func:`~stn_ros.sim.physics.grasp_trial.grasp_trial`, friction ``mu`` of
the gripper, no perturbation):

* ``pipeline``: the shipped nodes as a robot runs them: each frame (``32FC1`` depth + ``CameraInfo``) is
  published over real ROS 2 topics (loopback) to ``stn_node`` -> ``grasp_quality_node`` processes with their
  shipped parameters; every crop of ``~/grasps`` is a grasp; the scene's best is the highest quality;
  ``~/best_grasp`` is recorded when published.
* ``min_area_rect``: ``cv2.minAreaRect`` of each depth proposal's mask (what a real pipeline has, not the
  true mask), closing across its shorter side; the node's gripper depth rule. The scene's pick: the
  proposal nearest the camera (the top of the pile).
* ``random_axis``: the pipeline's grasp centres and depths with a uniform random axis.
* ``best_candidate``: ``--candidates`` physics-tried candidates per object (antipodal and random,
  :func:`~stn_ros.sim.physics.grasps.sample_candidates`); an object succeeds when any holds: an upper bound.

Success of a grasp: the trial lifted and held a body through the shake; per object: the grasp assigned
to the object (the one whose centre lies on it; the pipeline's highest-quality one) lifted that object,
an object without a grasp fails. Intervals are Wilson 95 %. Writes ``physics.md``, ``physics.json`` and
pictures to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from stn_ros.core.metrics import auroc, calibration_bins, expected_calibration_error, wilson_interval
from stn_ros.evaluation.min_area_rect import min_area_rect_grasp
from stn_ros.perception.grasps.gripper import (
    TRAINED_GRIPPER,
    GripperConfig,
    describe_gripper,
    gripper_config,
    gripper_parameters,
)
from stn_ros.perception.grasps.gripper_depth import image_gripper_depths
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.sim.physics.grasps import ImageGrasps, grasp_pose, sample_candidates
from stn_ros.sim.physics.scenes import PhysicsScene, PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import scene_seed

METHODS = ('pipeline', 'min_area_rect', 'random_axis', 'best_candidate')
METHOD_NAMES = {
    'pipeline': 'shipped pipeline (stn_node + grasp_quality_node over ROS 2)',
    'min_area_rect': 'OpenCV minAreaRect of the proposal mask',
    'random_axis': "random axis through the pipeline's centres",
    'best_candidate': 'best of the physics-tried candidates (upper bound)',
}


@dataclass
class FrameOutput:
    """What the nodes published for one frame."""

    grasps: np.ndarray  # structured ``~/grasps`` record (quality u v x y z angle width)
    best_published: bool


@dataclass
class MethodGrasps:
    """One method's grasps on one scene: image grasps, the body each targets (-1: none), the scene's pick."""

    grasps: ImageGrasps
    targets: np.ndarray
    pick: int | None  # row of the scene's best grasp (None: the method has no grasp)


@dataclass
class SceneResult:
    """Outcome of every grasp of every method on one scene."""

    seed: int
    kinds: list[str]
    layout: str
    methods: dict[str, MethodGrasps] = field(default_factory=dict)
    held: dict[str, np.ndarray] = field(default_factory=dict)  # (N,) int: body lifted, -1 none
    tried: dict[str, Tried] = field(default_factory=dict)
    qualities: np.ndarray | None = None  # the pipeline's GQ-CNN qualities
    best_published: bool = False


def bodies_at(labels: np.ndarray, centres: np.ndarray, radius: int = 6) -> np.ndarray:
    """``(N,)`` body index under each centre (the most common object label within ``radius`` pixels when
    the centre itself is on the table); -1 where no object is near."""
    out = np.full(len(centres), -1, np.int64)
    height, width = labels.shape
    for i, (u, v) in enumerate(np.asarray(centres, np.float64).reshape(-1, 2)):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        col, row = int(round(u)), int(round(v))
        window = labels[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1]
        if 0 <= row < height and 0 <= col < width and labels[row, col] > 0:
            out[i] = labels[row, col] - 1
        elif (window > 0).any():
            out[i] = np.bincount(window[window > 0]).argmax() - 1
    return out


def pipeline_grasps(scene: PhysicsScene, output: FrameOutput) -> MethodGrasps:
    """The nodes' crops as grasps (their ``z`` is the gripper depth the node computed)."""
    record = output.grasps
    centres = np.stack((record['u'], record['v']), axis=1).astype(np.float64)
    grasps = ImageGrasps(
        centres, record['angle'].astype(np.float64), record['z'].astype(np.float64), np.zeros(len(record), bool)
    )
    pick = int(np.argmax(record['quality'])) if len(record) else None
    return MethodGrasps(grasps, bodies_at(scene.labels, centres), pick)


def min_area_rect_grasps(scene: PhysicsScene, gripper: GripperConfig) -> MethodGrasps:
    """``minAreaRect`` of each depth proposal's mask (the node's proposals, default parameters)."""
    proposals = depth_proposals(scene.depth, ProposalConfig(), max_crops=16)
    centres, angles = [], []
    for k in range(1, len(proposals.rois) + 1):
        fitted = min_area_rect_grasp(proposals.labels == k)
        if fitted is not None:
            centres.append(fitted[0])
            angles.append(fitted[1])
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    angles = np.asarray(angles, np.float64)
    z = image_gripper_depths(scene.depth, centres, angles, scene.camera, gripper) if len(centres) else np.zeros(0)
    grasps = ImageGrasps(centres, angles, z, np.zeros(len(z), bool))
    pick = int(np.nanargmin(z)) if np.isfinite(z).any() else None  # the top of the pile
    return MethodGrasps(grasps, bodies_at(scene.labels, centres), pick)


def random_axis_grasps(pipeline: MethodGrasps, rng: np.random.Generator) -> MethodGrasps:
    """The pipeline's centres, depths and pick with uniform random axes."""
    g = pipeline.grasps
    angles = rng.uniform(-np.pi / 2, np.pi / 2, len(g))
    return MethodGrasps(ImageGrasps(g.centres, angles, g.z, g.antipodal), pipeline.targets, pipeline.pick)


def candidate_grasps(
    scene: PhysicsScene, gripper: GripperConfig, rng: np.random.Generator, per_object: int
) -> MethodGrasps:
    """``per_object`` sampled candidates on each visible body."""
    parts, targets = [], []
    for body in range(len(scene.snapshot.bodies)):
        if not (scene.labels == body + 1).any():
            continue
        part = sample_candidates(scene, body, gripper, rng, per_object)
        parts.append(part)
        targets.append(np.full(len(part), body))
    grasps = ImageGrasps.concatenate(parts)
    return MethodGrasps(grasps, np.concatenate(targets) if targets else np.zeros(0, np.int64), None)


@dataclass
class Tried:
    """Outcomes of one method's grasps on one scene."""

    held: np.ndarray  # (N,) int: body lifted and held, -1 none
    outcomes: np.ndarray  # (N,) str: the trial's outcome, 'no_depth' where the grasp had no gripper depth
    into_table: np.ndarray  # (N,) bool: the fingertips were aimed below the gripper's table clearance


def try_grasps(scene: PhysicsScene, method: MethodGrasps, gripper: GripperConfig, world_handle) -> Tried:
    """Try each grasp once with ``gripper`` (its friction ``mu``); a grasp without a gripper depth is not tried
    and fails."""
    from stn_ros.sim.physics.grasp_trial import TrialConfig, grasp_trial

    config = TrialConfig(gripper=gripper)

    count = len(method.grasps)
    tried = Tried(np.full(count, -1, np.int64), np.full(count, 'no_depth', dtype=object), np.zeros(count, bool))
    g = method.grasps
    for i in range(count):
        if not np.isfinite(g.z[i]) or not np.isfinite(g.centres[i]).all():
            continue
        pose = grasp_pose(g.centres[i], g.angles[i], g.z[i], scene.camera, scene.table_from_camera)
        result = grasp_trial(scene.snapshot, pose, gripper.mu, config, world=world_handle)
        tried.held[i] = result.held_body if result.success else -1
        tried.outcomes[i] = result.outcome
        tried.into_table[i] = pose.centre[2] < gripper.table_clearance
    return tried


@dataclass
class TrialJob:
    """The physics work of one scene, sent to a worker process."""

    scene: PhysicsScene
    seed: int
    methods: dict[str, MethodGrasps]
    candidates: int
    gripper: GripperConfig


def run_trials(job: TrialJob) -> dict[str, tuple[MethodGrasps, Tried]]:
    """Try every grasp of every method of one scene (and sample the upper bound's candidates)."""
    from stn_ros.sim.physics.world import connect

    scene, gripper = job.scene, job.gripper
    methods = dict(job.methods)
    methods['best_candidate'] = candidate_grasps(scene, gripper, np.random.default_rng(job.seed), job.candidates)
    pybullet, client = connect()
    try:
        return {name: (m, try_grasps(scene, m, gripper, (pybullet, client))) for name, m in methods.items()}
    finally:
        pybullet.disconnect(client)


EVALUATION_GRAPH = {  # topic -> publishers of the evaluation's own graph (the probe, the two nodes)
    '/physics/depth': 1,
    '/physics/camera_info': 1,
    '/stn_node/rectified/image': 1,
    '/grasp_quality_node/grasps': 1,
}


def check_graph_is_ours(probe) -> None:
    """RuntimeError when a process outside the evaluation publishes on its topics: one that shares this ROS domain
    (a random one of 101: two runs on one machine can draw the same) and would feed the nodes other frames or
    camera_info, as once silently cost 15 grasps their depth."""
    for topic, expected in EVALUATION_GRAPH.items():
        found = probe.count_publishers(topic)
        if found > expected:
            raise RuntimeError(
                f'{found} publishers on {topic}, {expected} expected: another ROS graph shares ROS_DOMAIN_ID '
                f'{os.environ.get("ROS_DOMAIN_ID")}; run the evaluation again (it draws another domain)'
            )


def run_pipeline(
    scenes: list[PhysicsScene],
    log_dir: Path,
    timeout: float,
    threshold: float,
    weights: dict[str, str] | None = None,
    hypotheses: int | None = None,
    gripper: GripperConfig | None = None,
) -> list[FrameOutput]:
    """Publish each scene to the shipped nodes over real topics and collect ``~/grasps`` and ``~/best_grasp``.

    ``gripper``: both nodes' ``gripper.*`` parameters, not refused outside the measured range (an evaluation
    measures; it is how the range was found); None: the nodes' defaults (the trained gripper)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from stn_ros.bridge.camera_info import camera_info_message
    from stn_ros.bridge.image_codec import encode_image
    from stn_ros.bridge.pointcloud_codec import decode_pointcloud
    from stn_ros.ros.child_processes import ProcessGroup, node_command

    nodes = (
        ('stn_node', ['image:=/physics/depth', 'camera_info:=/physics/camera_info']),
        (
            'grasp_quality_node',
            [
                'rectified/image:=/stn_node/rectified/image',
                'rectified/transforms:=/stn_node/rectified/transforms',
                'camera_info:=/physics/camera_info',
            ],
        ),
    )
    group = ProcessGroup()
    outputs: list[FrameOutput] = []
    gripper_params = []
    if gripper is not None:
        gripper_params = [f'gripper.{name}:={value!r}' for name, value in gripper_parameters(gripper).items()]
        gripper_params.append('gripper.check_range:=false')
    rclpy.init()
    try:
        for executable, remaps in nodes:
            if executable == 'grasp_quality_node':
                params = [f'quality_threshold:={threshold}', *gripper_params]
            else:
                params = [] if hypotheses is None else [f'hypotheses_per_object:={hypotheses}']
                params += gripper_params
            if (weights or {}).get(executable):
                params.append(f'weights:={Path(weights[executable]).resolve()}')
            group.start(executable, node_command(executable, params, remaps), log=log_dir / f'{executable}.log')
        probe = rclpy.create_node('stn_evaluate_physics')
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        depth_pub = probe.create_publisher(Image, '/physics/depth', qos)
        info_pub = probe.create_publisher(
            type(camera_info_message(scenes[0].camera, Image().header)), '/physics/camera_info', qos
        )
        grasps: dict[int, np.ndarray] = {}
        best: set[int] = set()
        key = lambda h: h.stamp.sec * 10**9 + h.stamp.nanosec  # noqa: E731
        probe.create_subscription(
            PointCloud2,
            '/grasp_quality_node/grasps',
            lambda m: grasps.__setitem__(key(m.header), decode_pointcloud(m)),
            10,
        )
        probe.create_subscription(PoseStamped, '/grasp_quality_node/best_grasp', lambda m: best.add(key(m.header)), 10)
        ready = time.monotonic() + timeout
        while (
            depth_pub.get_subscription_count() < 1
            or info_pub.get_subscription_count() < 2
            or probe.count_publishers('/grasp_quality_node/grasps') < 1
        ):
            group.check_alive()
            if time.monotonic() > ready:
                raise RuntimeError(f'the nodes did not connect within {timeout:.0f} s; logs in {log_dir}')
            rclpy.spin_once(probe, timeout_sec=0.1)
        time.sleep(1.0)  # let the nodes' own matching settle before the first frame
        for index, scene in enumerate(tqdm(scenes, desc='pipeline (ROS 2)', unit='frame')):
            check_graph_is_ours(probe)
            header = Image().header
            header.stamp.sec, header.frame_id = index + 1, 'camera_optical_frame'
            stamp = key(header)
            for _attempt in range(3):  # a frame published while a connection settles can be lost
                info_pub.publish(camera_info_message(scene.camera, header))
                time.sleep(0.02)
                depth_pub.publish(encode_image(scene.depth, '32FC1', header=header))
                deadline = time.monotonic() + timeout / 3
                while stamp not in grasps and time.monotonic() < deadline:
                    rclpy.spin_once(probe, timeout_sec=0.05)
                    group.check_alive()
                if stamp in grasps:
                    break
            else:
                raise RuntimeError(f'no grasps for frame {index} after 3 tries; logs in {log_dir}')
            # best_grasp follows grasps when a quality reaches the node's threshold: wait for it briefly.
            deadline = time.monotonic() + 0.5
            while stamp not in best and time.monotonic() < deadline and (grasps[stamp]['quality'] >= threshold).any():
                rclpy.spin_once(probe, timeout_sec=0.02)
            outputs.append(FrameOutput(grasps[stamp], stamp in best))
        probe.destroy_node()
    finally:
        rclpy.try_shutdown()
        group.stop()
    return outputs


def stn_node_default(name: str):
    """The default of one of ``stn_node``'s parameters (its parameter file says the same; a test checks)."""
    from stn_ros.ros.stn_node import PARAMETERS

    return next(spec.default for spec in PARAMETERS if spec.name == name)


def kind_group(kind: str) -> str:
    """``mesh`` for every ``random_urdfs`` mesh, else the procedural shape's name."""
    return 'mesh' if kind.startswith('mesh') else kind


def object_outcomes(result: SceneResult, name: str) -> list[bool]:
    """Per body of the scene: did the method's grasp for it lift it (see the module docstring)?"""
    method, held = result.methods[name], result.held[name]
    out = []
    for body in range(len(result.kinds)):
        rows = np.flatnonzero(method.targets == body)
        if name == 'best_candidate':
            out.append(bool((held[rows] == body).any()))
        elif not len(rows):
            out.append(False)
        else:
            if name in ('pipeline', 'random_axis'):  # the pipeline's choice: its best crop on the object
                rows = rows[[int(np.argmax(result.qualities[rows]))]]
            out.append(bool(held[rows[0]] == body))
    return out


def scene_outcome(result: SceneResult, name: str) -> bool:
    """Did the method's pick for the scene lift something (the upper bound: did any candidate)?"""
    method, held = result.methods[name], result.held[name]
    if name == 'best_candidate':
        return bool((held >= 0).any())
    return method.pick is not None and bool(held[method.pick] >= 0)


def rate(successes: int, trials: int) -> dict:
    low, high = wilson_interval(successes, trials)
    return {
        'successes': int(successes),
        'trials': int(trials),
        'rate': successes / trials if trials else float('nan'),
        'low': low,
        'high': high,
    }


def summarize(results: list[SceneResult], threshold: float) -> dict:
    """Every figure of the report."""
    summary: dict = {'scenes': len(results), 'objects': sum(len(r.kinds) for r in results), 'methods': {}}
    for name in METHODS:
        per_object = [
            (kind_group(k), r.layout, ok)
            for r in results
            for k, ok in zip(r.kinds, object_outcomes(r, name), strict=True)
        ]
        summary['methods'][name] = {
            'best_per_scene': rate(sum(scene_outcome(r, name) for r in results), len(results)),
            'per_object': rate(sum(ok for *_, ok in per_object), len(per_object)),
            'by_kind': {
                kind: rate(sum(ok for k, _, ok in per_object if k == kind), sum(k == kind for k, *_ in per_object))
                for kind in sorted({k for k, *_ in per_object})
            },
            'by_layout': {
                layout: rate(
                    sum(ok for _, la, ok in per_object if la == layout), sum(la == layout for _, la, _ in per_object)
                )
                for layout in ('singulated', 'cluttered')
            },
            'grasps_tried': int(sum(len(r.held[name]) for r in results)),
            'objects_without_grasp': int(
                sum(len(r.kinds) - len(set(r.methods[name].targets[r.methods[name].targets >= 0])) for r in results)
            ),
        }
        if all(name in r.tried for r in results):
            outcomes = np.concatenate([r.tried[name].outcomes for r in results]).astype(str)
            into_table = np.concatenate([r.tried[name].into_table for r in results])
            summary['methods'][name]['outcomes'] = {o: int((outcomes == o).sum()) for o in sorted(set(outcomes))}
            summary['methods'][name]['aimed_into_table'] = int(into_table.sum())
            summary['methods'][name]['blocked_aimed_into_table'] = int((into_table & (outcomes == 'blocked')).sum())
    quality = np.concatenate([r.qualities for r in results])
    held = np.concatenate([r.held['pipeline'] >= 0 for r in results])
    table = calibration_bins(quality, held)
    published = [r.best_published for r in results]
    robot = [r.best_published and scene_outcome(r, 'pipeline') for r in results]
    summary['gqcnn'] = {
        'crops': int(len(quality)),
        'auroc': auroc(quality, held),
        'ece': expected_calibration_error(quality, held),
        'held': int(held.sum()),
        'below_threshold': int((quality < threshold).sum()),
        'below_threshold_held': int(((quality < threshold) & held).sum()),
        'calibration': {k: v.tolist() for k, v in table.items()},
    }
    summary['best_grasp'] = {
        'threshold': threshold,
        'published': rate(sum(published), len(results)),
        'robot_success': rate(sum(robot), len(results)),
        'silent_scenes': int(len(results) - sum(published)),
    }
    return summary


def evaluate_physics(args: argparse.Namespace) -> int:
    """The whole evaluation (see the module docstring); writes the report and returns an exit code."""
    from stn_ros.ros.loopback_env import apply_loopback_ros_env

    config = PhysicsSceneConfig(meshes='validation', height=args.height, width=args.width)
    seeds = [scene_seed(args.seed, i) for i in range(args.num_scenes)]
    gripper = gripper_config(args.gripper_opening, args.jaw_width, args.finger_depth)
    started = time.monotonic()
    scenes = [generate_physics_scene(config, s) for s in tqdm(seeds, desc='scenes', unit='scene')]
    apply_loopback_ros_env()
    args.output.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix='stn_physics_logs_'))  # the nodes' logs, named in any error
    weights = {'stn_node': args.stn, 'grasp_quality_node': args.gqcnn}
    outputs = run_pipeline(
        scenes, log_dir, args.timeout, args.quality_threshold, weights, args.hypotheses_per_object, gripper
    )
    jobs, results = [], []
    for scene, seed, output in zip(scenes, seeds, outputs, strict=True):
        pipeline = pipeline_grasps(scene, output)
        methods = {
            'pipeline': pipeline,
            'min_area_rect': min_area_rect_grasps(scene, gripper),
            'random_axis': random_axis_grasps(pipeline, np.random.default_rng(seed)),
        }
        jobs.append(TrialJob(scene, seed, methods, args.candidates, gripper))
        results.append(
            SceneResult(
                seed,
                scene.kinds,
                scene.layout,
                qualities=output.grasps['quality'].astype(np.float64),
                best_published=output.best_published,
            )
        )
    workers = max(1, args.workers)
    with multiprocessing.get_context('spawn').Pool(workers) if workers > 1 else _InProcess() as pool:
        tried = pool.imap(run_trials, jobs)
        for result, outcome in zip(
            results, tqdm(tried, total=len(jobs), desc='grasp trials', unit='scene'), strict=True
        ):
            result.methods = {name: m for name, (m, _) in outcome.items()}
            result.tried = {name: t for name, (_, t) in outcome.items()}
            result.held = {name: t.held for name, t in result.tried.items()}
    summary = summarize(results, args.quality_threshold)
    summary['command'] = args.command
    summary['seconds'] = round(time.monotonic() - started, 1)
    summary['weights'] = {node: str(path) if path else 'shipped default' for node, path in weights.items()}
    summary['config'] = {
        'image': f'{args.width}x{args.height}',
        'meshes': 'validation (random_urdfs 400-499)',
        'candidates_per_object': args.candidates,
        'hypotheses_per_object': args.hypotheses_per_object or f'{stn_node_default("hypotheses_per_object")} (default)',
        'friction': gripper.mu,
        'gripper': gripper_parameters(gripper),
        'seed': args.seed,
    }
    (args.output / 'physics.json').write_text(json.dumps(summary, indent=2, default=float) + '\n')
    results_figure(summary, args.output / 'physics_results.png')
    scenes_figure(scenes[: args.pictures], results[: args.pictures], args.output / 'physics_scenes.png')
    (args.output / 'physics.md').write_text(report(summary))
    print(report(summary))
    return 0


class _InProcess:
    """A stand-in for a one-worker pool: runs jobs in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def imap(self, function, jobs):
        return map(function, jobs)


def _pct(entry: dict) -> str:
    """``88.0 % [81, 92] (105/120)``: the rate, its 95 % interval and the counts."""
    interval = f'[{100 * entry["low"]:.0f}, {100 * entry["high"]:.0f}]'
    return f'{100 * entry["rate"]:.1f} % {interval} ({entry["successes"]}/{entry["trials"]})'


def _gripper_text(parameters: dict) -> str:
    gripper = gripper_config(**parameters)
    return describe_gripper(gripper) + (' (as trained)' if gripper == TRAINED_GRIPPER else ' (both nodes given it)')


def report(summary: dict) -> str:
    """``physics.md``."""
    methods = summary['methods']
    lines = [
        '# Grasps judged by physics (pybullet), held-out meshes',
        '',
        f'{summary["scenes"]} scenes, {summary["objects"]} objects: {summary["config"]["meshes"]} and our boxes, '
        f'cylinders and spheres, singulated and cluttered, {summary["config"]["image"]} depth from 0.5-0.9 m with up '
        "to 10 deg of tilt and a depth camera's noise, dropouts and shadows. Each grasp is tried once by a simulated "
        f'parallel-jaw {_gripper_text(summary["config"]["gripper"])} (friction {summary["config"]["friction"]}; '
        'approach along the optical axis, close, '
        'lift 15 cm, hold, shake). Rates with Wilson 95 % intervals. Made by:',
        '',
        f'    {summary["command"]}',
        '',
        f'({summary["seconds"] / 60:.0f} min on this machine. Weights: stn_node {summary["weights"]["stn_node"]}, '
        f'grasp_quality_node {summary["weights"]["grasp_quality_node"]}; stn_node hypotheses_per_object '
        f'{summary["config"]["hypotheses_per_object"]}.)',
        '',
        '| method | best grasp per scene | one grasp per object | singulated objects | cluttered objects '
        '| grasps tried |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for name in METHODS:
        m = methods[name]
        lines.append(
            f'| {METHOD_NAMES[name]} | {_pct(m["best_per_scene"])} | {_pct(m["per_object"])} | '
            f'{_pct(m["by_layout"]["singulated"])} | {_pct(m["by_layout"]["cluttered"])} | {m["grasps_tried"]} |'
        )
    lines += [
        '',
        '## Why grasps failed',
        '',
        'Trial outcomes of every grasp tried (held; blocked: a finger landed on something before the gripper '
        'reached the grasp, the table included; empty: it closed on nothing; dropped: lost while lifting, '
        'holding or shaking; no_depth: no gripper depth, not tried), how many grasps aimed the fingertips lower '
        f"than the gripper's table clearance ({1000 * GripperConfig().table_clearance:.0f} mm above the table) and "
        'how many of those were blocked, and how many objects got no grasp at all (not proposed, e.g. under the '
        "proposals' 150 px minimum area):",
        '',
        '| method | outcomes | fingertips aimed below the clearance (blocked) | objects without a grasp |',
        '|---|---|---:|---:|',
    ]
    for name in METHODS:
        m = methods[name]
        if 'outcomes' not in m:
            continue
        counts = ', '.join(f'{o} {n}' for o, n in m['outcomes'].items())
        lines.append(
            f'| {METHOD_NAMES[name]} | {counts} | {m["aimed_into_table"]} ({m["blocked_aimed_into_table"]}) | '
            f'{m["objects_without_grasp"]} |'
        )
    kinds = sorted(methods['pipeline']['by_kind'])
    lines += [
        '',
        '## One grasp per object, by object kind',
        '',
        '| method | ' + ' | '.join(kinds) + ' |',
        '|---|' + '---:|' * len(kinds),
    ]
    for name in METHODS:
        lines.append(f'| {METHOD_NAMES[name]} | ' + ' | '.join(_pct(methods[name]['by_kind'][k]) for k in kinds) + ' |')
    g, b = summary['gqcnn'], summary['best_grasp']
    lines += [
        '',
        "## The GQ-CNN's quality against the outcome",
        '',
        f"Over the pipeline's {g['crops']} crops ({g['held']} held): AUROC {g['auroc']:.3f}, expected calibration "
        f'error {g["ece"]:.3f}. {g["below_threshold"]} crops scored below {b["threshold"]}; '
        f'{g["below_threshold_held"]} of those held.',
        '',
        f'`~/best_grasp` (quality >= {b["threshold"]}) was published in {_pct(b["published"])} of the scenes; '
        f'silent in {b["silent_scenes"]}. A robot that executes `~/best_grasp` picks successfully in '
        f'{_pct(b["robot_success"])} of the scenes.',
        '',
        '![success rates and calibration](physics_results.png)',
        '',
        "Scenes with the pipeline's grasps, green held, red failed; the scene's best (highest quality) thicker:",
        '',
        '![scenes](physics_scenes.png)',
        '',
    ]
    return '\n'.join(lines)


def results_figure(summary: dict, path: Path) -> None:
    """Success rates with intervals per method, and the GQ-CNN's reliability diagram."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (bars, calibration) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(METHODS))
    for offset, key, label in (
        (-0.2, 'best_per_scene', 'best grasp per scene'),
        (0.2, 'per_object', 'one grasp per object'),
    ):
        entries = [summary['methods'][m][key] for m in METHODS]
        rates = np.array([e['rate'] for e in entries])
        errors = np.array([[e['rate'] - e['low'] for e in entries], [e['high'] - e['rate'] for e in entries]])
        bars.bar(x + offset, 100 * rates, 0.4, yerr=100 * errors, capsize=3, label=label)
    bars.set_xticks(x, [m.replace('_', '\n') for m in METHODS])
    bars.set_ylabel('physical success, % (95 % interval)')
    bars.set_ylim(0, 100)
    bars.legend(loc='lower right')
    table = summary['gqcnn']['calibration']
    filled = np.asarray(table['count']) > 0
    calibration.plot([0, 1], [0, 1], 'k:', label='calibrated')
    calibration.plot(
        np.asarray(table['predicted'])[filled],
        np.asarray(table['observed'])[filled],
        'o-',
        label=f'GQ-CNN (ECE {summary["gqcnn"]["ece"]:.2f}, AUROC {summary["gqcnn"]["auroc"]:.2f})',
    )
    for p, o, n in zip(
        np.asarray(table['predicted'])[filled],
        np.asarray(table['observed'])[filled],
        np.asarray(table['count'])[filled],
        strict=True,
    ):
        calibration.annotate(str(n), (p, o), textcoords='offset points', xytext=(4, -10), fontsize=8)
    calibration.set_xlabel('GQ-CNN quality (bin mean)')
    calibration.set_ylabel('fraction of grasps that held')
    calibration.set_xlim(0, 1)
    calibration.set_ylim(0, 1)
    calibration.legend(loc='upper left')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scenes_figure(scenes: list[PhysicsScene], results: list[SceneResult], path: Path) -> None:
    """Depth of a few scenes with the pipeline's grasps, coloured by outcome."""
    from stn_ros.perception.visualize import draw_grasps
    from stn_ros.training.prisms.scene_samples import colorize_depth

    panels = []
    for scene, result in zip(scenes, results, strict=True):
        finite = scene.depth[np.isfinite(scene.depth)]
        image = colorize_depth(scene.depth, float(finite.min()), float(finite.max()))
        method = result.methods['pipeline']
        g = method.grasps
        widths = np.full(len(g), 0.06 * scene.camera.fx / np.nanmedian(finite))
        held = (result.held['pipeline'] >= 0).astype(np.float64)
        draw_grasps(image, g.centres, g.angles, widths, held, method.pick)
        if method.pick is not None:  # the pick thicker, in its outcome's colour rather than white
            draw_grasps(image, g.centres[[method.pick]], g.angles[[method.pick]], widths[:1] + 6, held[[method.pick]])
        cv2.putText(
            image,
            f'{result.layout}: ' + ', '.join(result.kinds),
            (8, 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        panels.append(image)
    if not panels:
        return
    while len(panels) % 3:
        panels.append(np.zeros_like(panels[0]))
    rows = [np.hstack(panels[i : i + 3]) for i in range(0, len(panels), 3)]
    picture = np.vstack(rows)
    cv2.imwrite(str(path), cv2.resize(picture, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
