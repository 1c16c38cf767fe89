"""``stn_evaluate physics``: the whole evaluation (the package docstring), from scenes to the written report; with
``--tilt-bands``, the same by band of camera tilt (:func:`evaluate_physics_by_tilt`)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stn_ros.evaluation.physics.bands import band_name
from stn_ros.evaluation.physics.graph import run_pipeline
from stn_ros.evaluation.physics.methods import (
    RECTIFIED_RULE,
    TILT_METHODS,
    gqcnn_qualities,
    min_area_rect_grasps,
    pipeline_grasps,
    random_axis_grasps,
    ranked_by_gqcnn,
    rectified_rule_grasps,
)
from stn_ros.evaluation.physics.report import report, results_figure, scenes_figure
from stn_ros.evaluation.physics.summary import SceneResult, summarize
from stn_ros.evaluation.physics.tilt_report import tilt_figure, tilt_report
from stn_ros.evaluation.physics.trials import TrialJob, run_all_trials
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.grasps.gripper import GripperConfig, gripper_config, gripper_parameters
from stn_ros.perception.grasps.steps import load_gqcnn_model
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.sim.physics.scenes import PhysicsScene, PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import scene_seed


def pipeline_gqcnn(weights: str | None) -> GQCNN:
    """The GQ-CNN ``grasp_quality_node`` ran with ``--gqcnn`` (None: the shipped one), loaded as the node loads it,
    in this process for the rows that rank other grasps with it."""
    model, description, warning = load_gqcnn_model(str(Path(weights).resolve()) if weights else '')
    print(f'physics: the rows ranked by the GQ-CNN use the {description}' + (f' ({warning})' if warning else ''))
    return model.eval()


def judge_scenes(
    scenes: list[PhysicsScene],
    seeds: list[int],
    args: argparse.Namespace,
    gripper: GripperConfig,
    weights: dict[str, str | None],
    log_dir: Path,
    rectified_rule: bool = False,
) -> list[SceneResult]:
    """Every method of the package docstring on ``scenes`` (``seeds``: theirs), the pipeline over ROS 2 in one run
    of the nodes, every grasp tried; with ``rectified_rule`` also the fair rule (:mod:`.rectified_rule`)."""
    outputs = run_pipeline(
        scenes, log_dir, args.timeout, args.quality_threshold, weights, args.hypotheses_per_object, gripper
    )
    gqcnn = pipeline_gqcnn(args.gqcnn)
    jobs, results = [], []
    for scene, seed, output in zip(scenes, seeds, outputs, strict=True):
        pipeline = pipeline_grasps(scene, output)
        rule = min_area_rect_grasps(scene, gripper)
        qualities = gqcnn_qualities(scene.depth, scene.camera, rule.grasps, gqcnn, gripper)
        methods = {
            'pipeline': pipeline,
            'min_area_rect': rule,
            'min_area_rect_gqcnn': ranked_by_gqcnn(rule, qualities),
            'random_axis': random_axis_grasps(pipeline, np.random.default_rng(seed)),
        }
        if rectified_rule:
            methods[RECTIFIED_RULE] = rectified_rule_grasps(scene, gripper, gqcnn)
        jobs.append(TrialJob(scene, seed, methods, args.candidates, gripper))
        results.append(SceneResult(seed, scene.kinds, scene.layout, best_published=output.best_published))
    tried = run_all_trials(jobs, max(1, args.workers))
    for result, outcome in zip(results, tqdm(tried, total=len(jobs), desc='grasp trials', unit='scene'), strict=True):
        result.methods = {name: m for name, (m, _) in outcome.items()}
        result.tried = {name: t for name, (_, t) in outcome.items()}
        result.held = {name: t.held for name, t in result.tried.items()}
    return results


def run_config(args: argparse.Namespace, gripper: GripperConfig) -> dict:
    """The run's settings as the report states them."""
    return {
        'image': f'{args.width}x{args.height}',
        'meshes': 'validation (random_urdfs 400-499)',
        'candidates_per_object': args.candidates,
        'hypotheses_per_object': args.hypotheses_per_object
        or f'{default_values(STN_PARAMETERS)["hypotheses_per_object"]} (default)',
        'friction': gripper.mu,
        'gripper': gripper_parameters(gripper),
        'seed': args.seed,
    }


def evaluate_physics(args: argparse.Namespace) -> int:
    """The whole evaluation (the package docstring, :mod:`stn_ros.evaluation.physics`); writes the report and
    returns an exit code. With ``args.tilt_bands``: :func:`evaluate_physics_by_tilt` instead."""
    if getattr(args, 'tilt_bands', None):
        return evaluate_physics_by_tilt(args)
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
    results = judge_scenes(scenes, seeds, args, gripper, weights, log_dir)
    summary = summarize(results, args.quality_threshold)
    summary['command'] = args.command
    summary['seconds'] = round(time.monotonic() - started, 1)
    summary['weights'] = {node: str(path) if path else 'shipped default' for node, path in weights.items()}
    summary['config'] = run_config(args, gripper)
    (args.output / 'physics.json').write_text(json.dumps(summary, indent=2, default=float) + '\n')
    results_figure(summary, args.output / 'physics_results.png')
    scenes_figure(scenes[: args.pictures], results[: args.pictures], args.output / 'physics_scenes.png')
    (args.output / 'physics.md').write_text(report(summary))
    print(report(summary))
    return 0


def evaluate_physics_by_tilt(args: argparse.Namespace) -> int:
    """``stn_evaluate physics --tilt-bands``: ``--num-scenes`` scenes per band, the same seeds in every band (the same
    objects dropped the same way, seen by a camera whose tilt is drawn in the band: any azimuth and roll, 0.6-0.8 m
    along its optical axis), every method of the evaluation and the fair rule on every band, the pipeline's nodes run
    once over all of them. Writes ``physics_tilt.md``, ``physics_tilt.json``, ``physics_tilt.png`` and
    ``physics_tilt_scenes.png`` (the steepest band's first ``--pictures`` scenes); ``physics.md`` is not touched."""
    from stn_ros.ros.loopback_env import apply_loopback_ros_env

    bands = list(args.tilt_bands)
    seeds = [scene_seed(args.seed, i) for i in range(args.num_scenes)]
    gripper = gripper_config(args.gripper_opening, args.jaw_width, args.finger_depth)
    started = time.monotonic()
    scenes, band_of = [], []
    for band in bands:
        config = PhysicsSceneConfig(meshes='validation', height=args.height, width=args.width, tilt_range_deg=band)
        scenes += [
            generate_physics_scene(config, s) for s in tqdm(seeds, desc=f'scenes {band_name(band)}', unit='scene')
        ]
        band_of += [band] * len(seeds)
    apply_loopback_ros_env()
    args.output.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix='stn_physics_logs_'))
    weights = {'stn_node': args.stn, 'grasp_quality_node': args.gqcnn}
    results = judge_scenes(scenes, seeds * len(bands), args, gripper, weights, log_dir, rectified_rule=True)
    per_band = []
    for band in bands:
        rows = [i for i, b in enumerate(band_of) if b == band]
        summary = summarize([results[i] for i in rows], args.quality_threshold, TILT_METHODS)
        summary['band'] = list(band)
        summary['tilts'] = [round(scenes[i].tilt_deg, 2) for i in rows]
        for name in TILT_METHODS:
            summary['methods'][name]['centres_on_no_object'] = int(
                sum((results[i].methods[name].targets < 0).sum() for i in rows)
            )
        per_band.append(summary)
    pose_fields = any(results[i].methods['pipeline'].frames is not None for i in range(len(results)))
    summary = {
        'bands': per_band,
        'command': args.command,
        'seconds': round(time.monotonic() - started, 1),
        'weights': {node: str(path) if path else 'shipped default' for node, path in weights.items()},
        'config': run_config(args, gripper),
        'pipeline_pose_fields': pose_fields,
    }
    (args.output / 'physics_tilt.json').write_text(json.dumps(summary, indent=2, default=float) + '\n')
    tilt_figure(summary, args.output / 'physics_tilt.png')
    steepest = [i for i, b in enumerate(band_of) if b == bands[-1]][: args.pictures]
    scenes_figure(
        [scenes[i] for i in steepest], [results[i] for i in steepest], args.output / 'physics_tilt_scenes.png'
    )
    (args.output / 'physics_tilt.md').write_text(tilt_report(summary))
    print(tilt_report(summary))
    return 0
