"""How fast ``stn_replay`` replays a recorded bag: 300 frames of a 640x480 16UC1 depth camera at 30 Hz.

Records the bag as a user would (``synthetic_camera`` with ``record_mcap`` and ``max_frames``, on loopback in
its own ROS domain), then runs ``stn_replay`` on it ``--repeats`` times, each a fresh process as a user runs
it. Per run: the frame loop's rate (what ``stn_replay`` prints: reading, both nodes' steps, writing), the
whole command's wall time (with the interpreter's start, torch's import and the models' loading), and the CPU
time a frame of each of its two processes (reading + stn_node's steps; grasp_quality_node's steps + writing),
which says what the loop can reach with two free cores whatever else the machine runs. The real-time factor is
a rate over the camera's nominal rate; the goal is >= 3x for the loop. Medians over the runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stn_ros.bridge.mcap_bag import bag_topics
from stn_ros.ros.child_processes import node_command
from stn_ros.ros.loopback_env import loopback_ros_env

GOAL = 3.0
LOOP_LINE = re.compile(r'stn_replay: (\d+) frames in ([\d.]+) s \(([\d.]+) frames/s')
CPU_LINE = re.compile(r'CPU time a frame: ([\d.]+) ms reading and stn_node, ([\d.]+) ms grasp_quality_node')


def record_bag(path: Path, frames: int, rate: float, seed: int) -> None:
    """``frames`` frames of ``synthetic_camera`` (16UC1 depth, bgr8 image, camera_info) at ``rate`` Hz into ``path``."""
    command = node_command(
        'synthetic_camera',
        [
            f'record_mcap:={path}',
            f'max_frames:={frames}',
            f'rate:={rate}',
            'depth_encoding:=16UC1',
            f'seed:={seed}',
        ],
        ['depth:=/camera/depth', 'image:=/camera/image', 'camera_info:=/camera/camera_info'],
    )
    result = subprocess.run(
        command,
        env=loopback_ros_env(),
        capture_output=True,
        text=True,
        timeout=frames / rate + 120,
        start_new_session=True,
    )
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f'synthetic_camera failed ({result.returncode}):\n{result.stdout}{result.stderr}')


def replay_once(bag: Path, out: Path) -> tuple[float, float, int, float, float]:
    """One ``stn_replay`` run: (frame loop frames/s, whole command seconds, frames, CPU ms a frame of its two
    processes)."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).parent / 'stn_replay'), str(bag), '--out', str(out), '--quiet'],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    match, cpu = LOOP_LINE.search(result.stdout), CPU_LINE.search(result.stdout)
    if result.returncode != 0 or match is None or cpu is None:
        raise RuntimeError(f'stn_replay failed ({result.returncode}):\n{result.stdout}{result.stderr}')
    return float(match.group(3)), wall, int(match.group(1)), float(cpu.group(1)), float(cpu.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Time stn_replay on a recorded 640x480 16UC1 depth bag (synthetic_camera, 30 Hz); goal: the '
        f'frame loop at >= {GOAL:g}x real time. Prints the figures (medians over the runs).'
    )
    parser.add_argument('--frames', type=int, default=300, help='frames in the bag (default: %(default)s)')
    parser.add_argument('--rate', type=float, default=30.0, help="the camera's rate, Hz (default: %(default)s)")
    parser.add_argument('--repeats', type=int, default=3, help='stn_replay runs (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help="synthetic_camera's seed (default: %(default)s)")
    parser.add_argument('--bag', type=Path, help='replay this bag instead of recording one')
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix='stn_replay_benchmark_') as tmp:
        bag = args.bag
        if bag is None:
            bag = Path(tmp) / 'synthetic.mcap'
            print(f'recording {args.frames} frames at {args.rate:g} Hz with synthetic_camera ...', file=sys.stderr)
            record_bag(bag, args.frames, args.rate, args.seed)
        topics = bag_topics(bag)
        size_mb = bag.stat().st_size / 1e6
        loads = os.getloadavg()
        runs = []
        for index in range(args.repeats):
            runs.append(replay_once(bag, Path(tmp) / f'replay_{index}.mcap'))
            print(f'run {index + 1}: {runs[-1][0]:.1f} frames/s, {runs[-1][1]:.1f} s in all', file=sys.stderr)
    frames = runs[0][2]
    loop_rate = statistics.median(r[0] for r in runs)
    wall = statistics.median(r[1] for r in runs)
    stn_cpu, grasp_cpu = statistics.median(r[3] for r in runs), statistics.median(r[4] for r in runs)
    bound = 1e3 / max(stn_cpu, grasp_cpu)
    seconds = frames / args.rate
    print(
        f'stn_replay on {bag.name if args.bag else "a synthetic_camera bag"}: {frames} frames of 640x480 16UC1 depth '
        f'at {args.rate:g} Hz ({seconds:.1f} s of camera; {size_mb:.0f} MB with the bgr8 image and camera_info; '
        f'topics {", ".join(sorted(topics))})'
    )
    print(
        f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average '
        f'{loads[0]:.2f} at the start; median of {len(runs)} runs'
    )
    print('| figure | measured | goal |\n|---|---:|---:|')
    print(f'| frame loop (read, stn_node + grasp_quality_node steps, write) | {loop_rate:.1f} frames/s = '
          f'{loop_rate / args.rate:.2f}x real time | >= {GOAL:g}x |')  # fmt: skip
    print(f'| whole command (start-up, models, loop) | {wall:.1f} s = {seconds / wall:.2f}x real time | |')
    print(f'| CPU time a frame: reading + stn_node / grasp_quality_node + writing | {stn_cpu:.1f} / {grasp_cpu:.1f} '
          f'ms | |')  # fmt: skip
    print(f'| the loop with two free cores (1 / the larger CPU time) | {bound:.1f} frames/s = '
          f'{bound / args.rate:.2f}x real time | |')  # fmt: skip
    met = loop_rate / args.rate >= GOAL
    print(f'goal (frame loop >= {GOAL:g}x real time): {"met" if met else "missed"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
