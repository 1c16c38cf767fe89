"""``stn_evaluate clutter``: the whole evaluation (the package docstring), from the worlds to the written report."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stn_ros.evaluation.clutter.methods import NEEDS_NODES, fair_rule_source, pipeline_source, rule_source
from stn_ros.evaluation.clutter.protocol import run_round
from stn_ros.evaluation.clutter.report import clutter_report, rounds_figure
from stn_ros.evaluation.clutter.summary import RoundRecord, round_json, summarize
from stn_ros.evaluation.physics.methods import RECTIFIED_RULE
from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER, gripper_parameters
from stn_ros.sim.physics.clutter import VIEWS, ClutterConfig, ClutterTable, generate_clutter_world
from stn_ros.sim.physics.grasp_trial import TrialConfig
from stn_ros.sim.prisms.scenes import scene_seed


def _source(method: str, graph, gqcnn, seed: int):
    gripper = TRAINED_GRIPPER
    if method == 'pipeline':
        return pipeline_source(graph, gripper)
    if method == 'random_axis':
        return pipeline_source(graph, gripper, np.random.default_rng((seed, 11)))
    if method == 'min_area_rect':
        return rule_source(gripper)
    if method == RECTIFIED_RULE:
        return fair_rule_source(gripper, gqcnn)
    raise ValueError(f'unknown method {method!r}')


def evaluate_clutter(args: argparse.Namespace) -> int:
    """Run ``args.rounds`` rounds per layout, view and method (the same seeds, so the same initial worlds, for every
    view and method), write ``clutter.md``, ``clutter.json`` and ``clutter_rounds.png`` to ``args.output``."""
    from stn_ros.ros.loopback_env import apply_loopback_ros_env

    started = time.monotonic()
    gripper = TRAINED_GRIPPER
    config = ClutterConfig(friction=gripper.mu)
    trial = TrialConfig(gripper=gripper)
    seeds = [scene_seed(args.seed, i) for i in range(args.rounds)]
    worlds = {
        (layout, seed): generate_clutter_world(layout, seed, config)
        for layout in args.layouts
        for seed in tqdm(seeds, desc=f'{layout} worlds', unit='world')
    }
    args.output.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix='stn_clutter_logs_'))  # the nodes' logs, named in any error
    gqcnn = None
    if RECTIFIED_RULE in args.methods:
        from stn_ros.evaluation.physics.run import pipeline_gqcnn

        gqcnn = pipeline_gqcnn(None)
    records: list[RoundRecord] = []
    with contextlib.ExitStack() as stack:
        graph = None
        if any(m in NEEDS_NODES for m in args.methods):
            from stn_ros.evaluation.physics.graph import PipelineGraph

            apply_loopback_ros_env()
            graph = stack.enter_context(
                PipelineGraph(log_dir, args.timeout, 0.5, gripper=None, name='stn_evaluate_clutter')
            )
        jobs = [(layout, view, i, method) for layout in args.layouts for view in args.views for i in range(len(seeds))
                for method in args.methods]  # fmt: skip
        for layout, view, index, method in tqdm(jobs, desc='rounds', unit='round'):
            seed = seeds[index]
            with ClutterTable(worlds[layout, seed], view, config, trial) as table:
                result = run_round(
                    table,
                    _source(method, graph, gqcnn, seed),
                    keep_pictures=index < args.pictures and method == args.methods[0],
                )
            records.append(RoundRecord(layout, view, method, seed, result))
    summary = {
        'command': args.command,
        'seconds': round(time.monotonic() - started, 1),
        'config': {
            'objects_per_round': config.objects,
            'layouts': list(args.layouts),
            'views': {v: VIEWS[v] for v in args.views},
            'image': f'{config.scene.width}x{config.scene.height}, fx = fy = {config.scene.camera().fx:g}',
            'view_distance_m': config.view_distance,
            'workspace_m': 2 * config.workspace_half,
            'meshes': f'{config.scene.meshes} (random_urdfs 400-499) and procedural shapes '
            f'(probability {config.scene.procedural_prob})',
            'gripper': gripper_parameters(gripper),
            'friction': gripper.mu,
            'pre_grasp_standoff_m': trial.standoff,
            'lift_m': trial.lift_height,
            'seed': args.seed,
            'rounds': args.rounds,
            'methods': list(args.methods),
        },
        'results': summarize(records),
        'rounds': [round_json(r) for r in records],
    }
    (args.output / 'clutter.json').write_text(json.dumps(summary, indent=2, default=float) + '\n')
    pictures = [r for r in records if r.result.pictures]
    if pictures:
        rounds_figure(pictures, args.output / 'clutter_rounds.png', args.command)
    text = clutter_report(summary, picture=bool(pictures))
    (args.output / 'clutter.md').write_text(text)
    print(text)
    return 0
