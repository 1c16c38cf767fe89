"""grasp_quality_node's compute per frame (no ROS graph): the node's own per-frame code on stn_node's output.

The input is what ``stn_node`` publishes for a 640x480 16UC1 depth frame of N boxes with K hypotheses per
object (N x K crops): its ``~/rectified/image`` tile and ``~/rectified/transforms`` record. Timed, per frame:
decoding both, the gripper depths, the GQ-CNN and the grasp records
(:func:`stn_ros.perception.grasps.steps.score_rectified`), and encoding ``~/grasps`` and ``~/best_grasp``
(:func:`~stn_ros.perception.grasps.steps.grasp_messages`), with the node's thread budget (``torch_threads``,
default 1). Medians (p90); the same frames again with ``avoid_collisions`` off (frames alternating between the two),
so the jaw collision check's cost is the difference of one run.

    python benchmarks/grasp_quality_benchmark.py --objects 16 --hypotheses 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from bench_frames import CAMERA, depth_frame_mm
from stn_ros.bridge.image_codec import encode_image
from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.core import resolve_device
from stn_ros.perception.frame_report import FrameReport
from stn_ros.perception.grasps.grasp_quality import GraspScorer
from stn_ros.perception.grasps.steps import grasp_messages, load_gqcnn_model, score_rectified
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals


def stn_outputs(canonicalizer: Canonicalizer, objects: int, hypotheses: int, seed: int) -> tuple[object, object]:
    """``stn_node``'s tile and transforms messages for a bench frame of ``objects`` boxes."""
    msg = encode_image(depth_frame_mm(objects, seed), '16UC1')
    frame = decode_frame(msg)
    rois = depth_proposals(frame.pixels, ProposalConfig(max_area=100_000), objects).rois
    result = canonicalizer.process(frame, rois, CAMERA, hypotheses=hypotheses)
    return encode_image(result.tile, frame.tile_encoding), encode_pointcloud(result.record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--objects', type=int, nargs='+', default=[16], help='boxes per frame (default: %(default)s)')
    parser.add_argument(
        '--hypotheses', type=int, default=4, help="stn_node's hypotheses_per_object (default: %(default)s)"
    )
    parser.add_argument('--frames', type=int, default=200, help='timed frames per case (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=1, help="torch threads, the node's torch_threads (default: 1)")
    parser.add_argument('--device', default='cpu', help='auto, cpu, cuda, cuda:N (default: %(default)s)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gqcnn, device = load_gqcnn_model('')[0], resolve_device(args.device)
    scorers = {check: GraspScorer(gqcnn, device, avoid_collisions=check) for check in (True, False)}
    scorer = scorers[True]
    model = load_model('')
    canonicalizer = Canonicalizer(model.stn, torch.device('cpu'), (32, 32), model.roi_side_m)
    values = {'quality_threshold': 0.5, 'all_hypotheses': False}
    print(
        f'grasp_quality_node compute per frame ({torch.get_num_threads()} torch threads, {scorer.device}, shipped '
        f'GQ-CNN); median (p90) of {args.frames} frames, ms.\n'
    )
    print('| objects x hypotheses | crops | total | without the collision check | the check |')
    print('|---|---:|---:|---:|---:|')
    for objects in args.objects:
        inputs = [stn_outputs(canonicalizer, objects, args.hypotheses, seed) for seed in range(4)]
        times: dict[bool, list[float]] = {True: [], False: []}
        crops = []
        for index in range(2 * (args.frames + 10)):
            tile, record = inputs[(index // 2) % len(inputs)]
            check = index % 2 == 0
            started = time.perf_counter()
            grasps = score_rectified(scorers[check], tile, record, CAMERA, values, FrameReport())
            grasp_messages(grasps, tile.header)
            if index >= 20:
                times[check].append((time.perf_counter() - started) * 1e3)
                crops.append(len(grasps.scored.record))
        on, off = (statistics.median(times[check]) for check in (True, False))
        print(
            f'| {objects} x {args.hypotheses} | {statistics.median(crops):.0f} | '
            f'{on:.2f} ({np.percentile(times[True], 90):.2f}) | {off:.2f} ({np.percentile(times[False], 90):.2f}) | '
            f'{on - off:+.2f} ms |'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
