"""``stn_evaluate physics``: the whole evaluation (the package docstring), from scenes to the written report."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stn_ros.evaluation.physics.graph import run_pipeline
from stn_ros.evaluation.physics.methods import (
    gqcnn_qualities,
    min_area_rect_grasps,
    pipeline_grasps,
    random_axis_grasps,
    ranked_by_gqcnn,
)
from stn_ros.evaluation.physics.report import report, results_figure, scenes_figure
from stn_ros.evaluation.physics.summary import SceneResult, summarize
from stn_ros.evaluation.physics.trials import TrialJob, run_all_trials
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.grasps.gripper import gripper_config, gripper_parameters
from stn_ros.perception.grasps.steps import load_gqcnn_model
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.sim.physics.scenes import PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import scene_seed


def pipeline_gqcnn(weights: str | None) -> GQCNN:
    """The GQ-CNN ``grasp_quality_node`` ran with ``--gqcnn`` (None: the shipped one), loaded as the node loads it,
    in this process for the rows that rank other grasps with it."""
    model, description, warning = load_gqcnn_model(str(Path(weights).resolve()) if weights else '')
    print(f'physics: the rows ranked by the GQ-CNN use the {description}' + (f' ({warning})' if warning else ''))
    return model.eval()


def evaluate_physics(args: argparse.Namespace) -> int:
    """The whole evaluation (the package docstring, :mod:`stn_ros.evaluation.physics`); writes the report and
    returns an exit code."""
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
        jobs.append(TrialJob(scene, seed, methods, args.candidates, gripper))
        results.append(SceneResult(seed, scene.kinds, scene.layout, best_published=output.best_published))
    tried = run_all_trials(jobs, max(1, args.workers))
    for result, outcome in zip(results, tqdm(tried, total=len(jobs), desc='grasp trials', unit='scene'), strict=True):
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
        'hypotheses_per_object': args.hypotheses_per_object
        or f'{default_values(STN_PARAMETERS)["hypotheses_per_object"]} (default)',
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
