"""stn_node's compute per frame, stage by stage, on a 640x480 depth frame (no ROS graph).

The same code the node runs for each frame: decode the ``sensor_msgs/Image`` (16UC1 mm), depth
proposals (table plane + connected components), localization (grey view, small crops, the net),
sampling (the canonical crops from the source), and the outputs (transforms record, tile and
PointCloud2 messages). Medians over many frames.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from stn_ros.camera import PinholeCamera
from stn_ros.canonicalizer import Canonicalizer, load_model
from stn_ros.core import resolve_device
from stn_ros.frames import decode_frame
from stn_ros.proposals import ProposalConfig, depth_proposals
from stn_ros.ros.image_codec import encode_image
from stn_ros.ros.pointcloud_codec import encode_pointcloud

CAMERA = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)


def depth_frame_mm(objects: int, seed: int) -> np.ndarray:
    """A tilted table 0.75 m away with ``objects`` boxes on a grid, 1 mm noise, 1% dropouts (mm)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:480, 0:640]
    depth = 0.75 + 0.0002 * (rows - 240)  # tilted a little
    grid = int(np.ceil(np.sqrt(objects)))
    for index in range(objects):
        cell_w, cell_h = 640 // grid, 480 // grid
        w, h = rng.integers(20, min(cell_w - 20, 140)), rng.integers(20, min(cell_h - 20, 140))
        x = (index % grid) * cell_w + rng.integers(5, cell_w - w - 5)
        y = (index // grid) * cell_h + rng.integers(5, cell_h - h - 5)
        depth[y:y + h, x:x + w] -= rng.uniform(0.03, 0.12)
    depth += rng.normal(0, 0.001, depth.shape)
    mm = np.round(depth * 1000).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.01] = 0
    return mm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time stn_node's per-frame compute (decode, proposals, localization, sampling, "
                    'outputs) on 640x480 16UC1 depth frames with N objects; prints a Markdown table.')
    parser.add_argument('--crops', type=int, nargs='+', default=[1, 16, 64], help='objects per frame (default: %(default)s)')
    parser.add_argument('--frames', type=int, default=200, help='timed frames per case (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='auto, cpu, cuda, cuda:N (default: %(default)s)')
    parser.add_argument('--weights', default='', help='STN checkpoint (default: the shipped default)')
    args = parser.parse_args(argv)

    model = load_model(args.weights)
    device = resolve_device(args.device)
    canonicalizer = Canonicalizer(model.stn, device, (32, 32))
    config = ProposalConfig(max_area=100_000)
    stages = ('decode', 'proposals', 'localization', 'sampling', 'outputs', 'total')
    lines = [f'stn_node compute per 640x480 16UC1 depth frame, {model.description}, on {device} '
             f'({torch.get_num_threads()} torch threads); median (p90) of {args.frames} frames, ms.', '',
             '| crops | ' + ' | '.join(stages) + ' |', '|---:|' + '---:|' * len(stages)]
    for count in args.crops:
        messages = [encode_image(depth_frame_mm(count, seed), '16UC1') for seed in range(8)]
        times = {stage: [] for stage in stages}
        crops_seen = []
        for index in tqdm(range(args.frames + 10), desc=f'{count} crops', unit='frame', file=sys.stderr):
            msg = messages[index % len(messages)]
            t0 = time.perf_counter()
            frame = decode_frame(msg)
            t1 = time.perf_counter()
            rois = depth_proposals(frame.pixels, config, max_crops=count).rois
            t2 = time.perf_counter()
            result = canonicalizer.process(frame, rois, CAMERA)
            t3 = time.perf_counter()
            encode_image(result.tile, frame.tile_encoding, header=msg.header)
            encode_pointcloud(result.record, header=msg.header)
            t4 = time.perf_counter()
            if index < 10:
                continue  # warm-up
            crops_seen.append(len(rois))
            for stage, value in zip(stages, (t1 - t0, t2 - t1, result.timings_ms['localization'] / 1e3,
                                             result.timings_ms['sampling'] / 1e3, t4 - t3, t4 - t0)):
                times[stage].append(value * 1e3)
        # 'outputs' above is the encoding; the record is built inside process(): fold it in.
        cells = [f'{statistics.median(times[s]):.2f} ({np.percentile(times[s], 90):.2f})' for s in stages]
        lines.append(f'| {statistics.median(crops_seen):.0f} | ' + ' | '.join(cells) + ' |')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
