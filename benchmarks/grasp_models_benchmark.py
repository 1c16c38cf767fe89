"""Inference time of the grasp models on this CPU: the grasp STN's localization and the GQ-CNN, 16 crops.

Goals (issue: grasp learning): localization of 16 crops <= 5 ms, GQ-CNN of 16 crops <= 20 ms on a
2-core CPU. Medians of interleaved runs, one process, torch's default threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from stn_ros.models.gqcnn import GQCNN, load_gqcnn
from stn_ros.training.prisms.grasp_stn import grasp_stn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Time the grasp STN localization and the GQ-CNN on N crops '
        '(random weights unless given: the time does not depend on them).'
    )
    parser.add_argument('--crops', type=int, default=16, help='(default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=200, help='(default: %(default)s)')
    parser.add_argument('--gqcnn', help='a GQ-CNN checkpoint (default: an untrained one of the same size)')
    args = parser.parse_args(argv)
    stn = grasp_stn().eval()
    gqcnn = load_gqcnn(args.gqcnn)[0] if args.gqcnn else GQCNN().eval()
    crops = 0.7 + 0.02 * torch.rand(args.crops, 1, 32, 32)
    images, z = 0.02 * torch.randn(args.crops, 1, 32, 32), torch.full((args.crops,), 0.66)
    times = {'grasp STN localization': [], 'GQ-CNN': []}
    with torch.no_grad():
        for _ in range(20):
            stn.localize(crops), gqcnn(images, z)
        for _ in range(args.repeats):
            for name, run in (
                ('grasp STN localization', lambda: stn.localize(crops)),
                ('GQ-CNN', lambda: gqcnn(images, z)),
            ):
                started = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - started) * 1e3)
    print(f'{args.crops} crops, {torch.get_num_threads()} torch threads, median of {args.repeats} interleaved runs:')
    for name, values in times.items():
        print(f'  {name}: {statistics.median(values):.2f} ms (p90 {sorted(values)[int(0.9 * len(values))]:.2f} ms)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
