"""Planning time of the clutter-removal protocol: a frame in, ranked grasps out, at 5 objects.

The shipped ``stn_node`` -> ``grasp_quality_node`` (two processes, their shipped parameter files, loopback ROS 2)
get the first frame of clutter-removal rounds (``stn_evaluate clutter``'s worlds: 5 objects, packed or pile, seen
from the top or the 60 deg side view, 640x480 32FC1 depth); each frame is sent ``--repeats`` times, one at a time,
after ``--warmup`` frames. Planning: from the frame's publication to its ``~/grasps`` received in this process
(what the evaluation reports), median and p90 per layout and view, and over all frames. Goal (issue 28): median
at most 25 ms on this CPU.

    .venv/bin/python benchmarks/planning_benchmark.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stn_ros.apps.evaluate import CLUTTER_LAYOUTS, CLUTTER_VIEWS, comma_list

GOAL_MS = 25.0


def first_frames(
    layouts: tuple[str, ...], views: tuple[str, ...], worlds: int, seed: int
) -> dict[tuple[str, str], list]:
    """(layout, view) -> the first frame (a ``PhysicsScene``) of each of ``worlds`` clutter rounds."""
    from stn_ros.evaluation.physics.run import scene_seed
    from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER
    from stn_ros.sim.physics.clutter import ClutterConfig, ClutterTable, generate_clutter_world

    config = ClutterConfig(friction=TRAINED_GRIPPER.mu)
    frames: dict[tuple[str, str], list] = {}
    for layout in layouts:
        for index in tqdm(range(worlds), desc=f'{layout} worlds', unit='world', file=sys.stderr):
            world = generate_clutter_world(layout, scene_seed(seed, index), config)
            for view in views:
                with ClutterTable(world, view, config) as table:
                    frames.setdefault((layout, view), []).append(table.observe())
    return frames


def summary_row(name: str, seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1e3
    return f'| {name} | {len(ms)} | {np.median(ms):.1f} | {np.percentile(ms, 90):.1f} | {ms.max():.1f} |'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Time the shipped nodes from a clutter frame (5 objects) in to its ranked ~/grasps out, over real '
        'ROS 2 topics on this machine; prints a Markdown table (median, p90 per layout and view).'
    )
    parser.add_argument('--worlds', type=int, default=10, help='rounds (first frames) per layout (default: 10)')
    parser.add_argument('--repeats', type=int, default=5, help='times each frame is sent (default: 5)')
    parser.add_argument('--warmup', type=int, default=10, help='frames sent before timing (default: 10)')
    for option, choices in (('--layouts', CLUTTER_LAYOUTS), ('--views', CLUTTER_VIEWS)):
        parser.add_argument(
            option,
            type=comma_list(choices),
            default=choices,
            help=f'comma-separated, of {", ".join(choices)} (default: all)',
        )
    parser.add_argument('--seed', type=int, default=1, help="the rounds' seed, as stn_evaluate clutter's (default: 1)")
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds to wait for the nodes (default: 60)')
    args = parser.parse_args(argv)
    if min(args.worlds, args.repeats) < 1 or args.warmup < 0:
        parser.error('--worlds and --repeats must be at least 1, --warmup at least 0')

    from stn_ros.evaluation.physics.graph import PipelineGraph
    from stn_ros.ros.loopback_env import apply_loopback_ros_env

    frames = first_frames(args.layouts, args.views, args.worlds, args.seed)
    apply_loopback_ros_env()
    timed: dict[tuple[str, str], list[float]] = {key: [] for key in frames}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='stn_planning_logs_') as logs:
        with PipelineGraph(Path(logs), args.timeout, 0.5, name='stn_planning_benchmark') as graph:
            every = [scene for scenes in frames.values() for scene in scenes]
            for index in range(args.warmup):
                graph.frame(every[index % len(every)])
            jobs = [(key, scene) for key, scenes in frames.items() for scene in scenes for _ in range(args.repeats)]
            for key, scene in tqdm(jobs, desc='frames', unit='frame', file=sys.stderr):
                timed[key].append(graph.frame(scene).planning_seconds)
    print('## Planning: a clutter frame (5 objects) in, ranked ~/grasps out\n')
    print(
        f'{args.worlds} first frames per layout and view, each sent {args.repeats} times after {args.warmup} warm-up '
        f'frames; two processes over loopback ROS 2 ({time.monotonic() - started:.0f} s).\n'
    )
    print('| layout, view | frames | median (ms) | p90 (ms) | max (ms) |')
    print('|---|---:|---:|---:|---:|')
    for (layout, view), seconds in timed.items():
        print(summary_row(f'{layout}, {view}', seconds))
    everything = [s for seconds in timed.values() for s in seconds]
    print(summary_row('all', everything))
    median = float(np.median(everything)) * 1e3
    print(f'\nGoal: median at most {GOAL_MS:.0f} ms: {"met" if median <= GOAL_MS else "missed"} ({median:.1f} ms).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
