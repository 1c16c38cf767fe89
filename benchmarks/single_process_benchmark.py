"""One process against two: end-to-end latency of the grasp pipeline, camera stamp -> ``~/grasps`` received.

Runs, in one command and on the same synthetic stream (the benchmark camera of :mod:`topic_endpoints`: 640x480
``16UC1`` depth of 16 boxes + ``camera_info``, stamped just before publishing), alternating in rounds so that the
load of a busy machine falls on every setup alike:

- ``floor``: the camera's frames straight to a receiver process (the transport floor of one hop);
- ``two processes``: ``stn_node`` and ``grasp_quality_node``, each its own process (the shipped launch);
- ``one process (<executor>)``: ``perception_pipeline`` (both nodes in one process), once with each of its executors
  (``--executor multi``: rclpy's MultiThreadedExecutor, the default; ``per-node``: a single-threaded executor a node,
  each on its own thread; ``single``: one single-threaded executor for both).

Each with the shipped shared-memory transport profile, the shipped parameter files and models, one receiver process
recording the arrival of every ``/stn_node/rectified/transforms`` and ``/grasp_quality_node/grasps`` message. The
report: p50 / p90 latency per setup (all rounds pooled, each round's first seconds left out), each round's p50,
the frames that got grasps, both nodes' processing medians and losses (their ``/diagnostics``), and the goal: the
one-process grasps p50 at least one transport floor (the floor's p50) below the two-process one.

    .venv/bin/python benchmarks/single_process_benchmark.py            # 3 rounds of 20 s each setup, ~7 min
    .venv/bin/python benchmarks/single_process_benchmark.py --rounds 1 --seconds 5 --json out/single.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perception_benchmark import GRASPS, TRANSFORMS, WARM_UP_S, diagnostics_of, machine, number, run_phase
from stn_ros.core import resolve_device

OUTPUTS = [f'{TRANSFORMS}:pointcloud', f'{GRASPS}:pointcloud']
SETUPS = {  # name: (nodes, receiver topics, perception_pipeline options)
    'floor': ((), ['/camera/depth:image'], ()),
    'two processes': (('stn_node', 'grasp_quality_node'), OUTPUTS, ()),
    **{
        f'one process ({executor})': (('perception_pipeline',), OUTPUTS, ('--executor', executor))
        for executor in ('multi', 'per-node', 'single')
    },
}
TWO = 'two processes'
LOSSES = {  # diagnostics counters of frames a node lost
    'stn_node': ('frames dropped (latest wins)', 'lost before the node'),
    'grasp_quality_node': ('frames dropped (latest wins)', 'lost before the node', 'unpaired dropped'),
}


def topic_of(setup: str) -> str:
    return '/camera/depth' if setup == 'floor' else GRASPS


def latencies_ms(phase: dict, topic: str) -> np.ndarray:
    """Arrival minus stamp (ms) of every ``topic`` message of the phase after its warm-up."""
    stamps = phase['camera']['stamps']
    since = stamps[0] + WARM_UP_S if stamps else 0.0
    return np.array([(arrival - stamp) * 1e3 for stamp, arrival in phase['arrivals'].get(topic, []) if stamp >= since])


def delivered(phase: dict, topic: str) -> float:
    """The share of the camera's frames after the warm-up that ``topic`` carried."""
    stamps = phase['camera']['stamps']
    since = stamps[0] + WARM_UP_S if stamps else 0.0
    sent = {round(s, 6) for s in stamps if s >= since}
    got = {round(stamp, 6) for stamp, _ in phase['arrivals'].get(topic, []) if stamp >= since}
    return len(got & sent) / max(len(sent), 1)


def summarize(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per setup: pooled p50/p90 of its latency topic, each round's p50, delivery, transforms p50, node compute."""
    summary = {}
    for setup in SETUPS:
        phases = [r[setup] for r in rounds]
        pooled = np.concatenate([latencies_ms(p, topic_of(setup)) for p in phases])
        entry = {
            'p50_ms': float(np.median(pooled)) if len(pooled) else float('nan'),
            'p90_ms': float(np.percentile(pooled, 90)) if len(pooled) else float('nan'),
            'round_p50_ms': [
                float(np.median(x)) if len(x) else float('nan')
                for x in (latencies_ms(p, topic_of(setup)) for p in phases)
            ],
            'delivered': float(np.mean([delivered(p, topic_of(setup)) for p in phases])),
            'messages': int(len(pooled)),
        }
        if setup != 'floor':
            transforms = np.concatenate([latencies_ms(p, TRANSFORMS) for p in phases])
            entry['transforms_p50_ms'] = float(np.median(transforms)) if len(transforms) else float('nan')
            for node in ('stn_node', 'grasp_quality_node'):
                medians = [number(diagnostics_of(p, node), 'processing median (ms)') for p in phases]
                entry[f'{node}_processing_ms'] = float(np.nanmedian(medians)) if medians else float('nan')
                entry[f'{node}_lost'] = int(
                    sum(number(diagnostics_of(p, node), k) for p in phases for k in LOSSES[node])
                )
        summary[setup] = entry
    return summary


def report(summary: dict[str, dict], figures: dict) -> str:
    floor, two = summary['floor'], summary[TWO]
    lines = [
        f'Machine: {figures["machine"]}; load average {figures["load"]}.',
        f'Command: `{figures["command"]}` ({figures["rounds"]} rounds x {figures["seconds"]:g} s a setup at '
        f'{figures["rate"]:g} Hz, the first {WARM_UP_S:g} s of each left out; device {figures["device"]}).',
        '',
        '| setup | latency to | p50 | p90 | p50 per round | frames | transforms p50 | stn_node / grasp_quality_node '
        'compute | frames the nodes lost |',
        '|---|---|---:|---:|---|---:|---:|---:|---:|',
    ]
    for setup, entry in summary.items():
        rounds = ', '.join(f'{x:.1f}' for x in entry['round_p50_ms'])
        extra = (
            f'{entry["transforms_p50_ms"]:.1f} ms | {entry["stn_node_processing_ms"]:.1f} / '
            f'{entry["grasp_quality_node_processing_ms"]:.1f} ms | {entry["stn_node_lost"]} / '
            f'{entry["grasp_quality_node_lost"]}'
            if setup != 'floor'
            else '– | – | –'
        )
        lines.append(
            f'| {setup} | {"receiver (640x480 frame)" if setup == "floor" else "~/grasps"} | {entry["p50_ms"]:.1f} ms '
            f'| {entry["p90_ms"]:.1f} ms | {rounds} | {entry["delivered"]:.1%} | {extra} |'
        )
    lines.append('')
    for setup, one in summary.items():
        if setup in ('floor', TWO):
            continue
        gain = two['p50_ms'] - one['p50_ms']
        verdict = 'met' if gain >= floor['p50_ms'] else 'missed'
        lines.append(
            f'- {setup} / two processes, grasps p50 {one["p50_ms"] / two["p50_ms"]:.2f}x, p90 '
            f'{one["p90_ms"] / two["p90_ms"]:.2f}x: {gain:.1f} ms faster at p50 against a transport floor of '
            f'{floor["p50_ms"]:.1f} ms, goal (faster by at least one floor) {verdict}.'
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=3, help='rounds of the three setups (default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=20.0, help='each setup, each round (default: %(default)s)')
    parser.add_argument('--rate', type=float, default=15.0, help='camera frames per second (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='device of the nodes (default: %(default)s)')
    parser.add_argument('--json', type=Path, help='also write the figures here')
    args = parser.parse_args(argv)
    device = str(resolve_device(args.device))
    log_dir = Path(tempfile.mkdtemp(prefix='stn_ros_single_process_'))
    rounds = []
    with tqdm(total=args.rounds * len(SETUPS), desc='single process', unit='phase', file=sys.stderr) as bar:
        for index in range(args.rounds):
            phases = {}
            for setup, (nodes, topics, options) in SETUPS.items():
                phases[setup] = run_phase(
                    f'{setup.replace(" ", "_")}_{index}',
                    rate=args.rate,
                    seconds=args.seconds,
                    shared_memory=True,
                    nodes=nodes,
                    topics=topics,
                    device=device,
                    log_dir=log_dir,
                    pipeline_options=options,
                )
                bar.update()
            rounds.append(phases)
    figures = {
        'machine': machine(),
        'load': ' '.join(f'{x:.2f}' for x in os.getloadavg()),
        'command': ' '.join(['.venv/bin/python benchmarks/single_process_benchmark.py'] + (argv or sys.argv[1:])),
        'rounds': args.rounds,
        'seconds': args.seconds,
        'rate': args.rate,
        'device': device,
    }
    summary = summarize(rounds)
    print(report(summary, figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({'figures': figures, 'summary': summary}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
