"""stn_node's compute per frame, stage by stage, on a 640x480 (or ``--size``) depth frame (no ROS graph).

The same code the node runs for each frame: decode the ``sensor_msgs/Image`` (16UC1 mm), depth
proposals (table plane + connected components), localization (grey view, small crops, the net),
sampling (the canonical crops from the source), and encoding the outputs (tile and PointCloud2
messages). Medians over many frames.

On CUDA, as in the node, the proposals fit the plane and threshold the objects on the device: the frame's one
upload is then timed in the proposals stage, not in the localization (``--proposals host``: numpy on the host).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

from bench_frames import camera_for, depth_frame_mm
from stn_ros.bridge.image_codec import encode_image
from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.core import resolve_device
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals

STAGES = ('decode', 'proposals', 'localization', 'sampling', 'encode', 'total')


def measure_stages(
    canonicalizer: Canonicalizer,
    objects: int,
    frames: int,
    progress: bool = True,
    hypotheses: int = 1,
    size: tuple[int, int] = (640, 480),
    decimation: int = 1,
    encode: bool = True,
    device_proposals: bool | None = None,
) -> dict[str, list[float]]:
    """Per stage, the times (ms) of ``frames`` frames of ``size`` (width, height) with ``objects`` boxes (after
    10 warm-up frames), and ``'crops'``, the crops of each frame. Without ``encode`` (a machine without
    ``sensor_msgs``) the frames are duck-typed messages and the encode stage is not timed (0).
    ``device_proposals``: depth proposals on the canonicalizer's device, on the frame's one upload (None: on CUDA,
    as :class:`~stn_ros.perception.stn.steps.StnPipeline` does)."""
    if device_proposals is None:
        device_proposals = canonicalizer.device.type == 'cuda'
    scale = size[0] / 640
    config = ProposalConfig(max_area=int(100_000 * scale * scale), decimation=decimation)
    camera = camera_for(*size)
    msg_cls = None if encode else SimpleNamespace
    messages = [encode_image(depth_frame_mm(objects, seed, *size), '16UC1', msg_cls=msg_cls) for seed in range(8)]
    times: dict[str, list[float]] = {stage: [] for stage in STAGES + ('crops',)}
    for index in tqdm(
        range(frames + 10), desc=f'{objects} crops', unit='frame', file=sys.stderr, disable=not progress, leave=False
    ):
        msg = messages[index % len(messages)]
        t0 = time.perf_counter()
        frame = decode_frame(msg)
        t1 = time.perf_counter()
        on_device = canonicalizer.frame_on_device(frame) if device_proposals else None
        rois = depth_proposals(frame.pixels, config, max_crops=objects, on_device=on_device).rois
        t2 = time.perf_counter()
        result = canonicalizer.process(frame, rois, camera, hypotheses=hypotheses)
        if canonicalizer.device.type == 'cuda':
            torch.cuda.synchronize(canonicalizer.device)
        t3 = time.perf_counter()
        if encode:
            encode_image(result.tile, frame.tile_encoding, header=msg.header)
            encode_pointcloud(result.record, header=msg.header)
        t4 = time.perf_counter()
        if index < 10:
            continue  # warm-up
        times['crops'].append(len(rois))
        for stage, value in zip(
            STAGES,
            (
                t1 - t0,
                t2 - t1,
                result.timings_ms['localization'] / 1e3,
                result.timings_ms['sampling'] / 1e3,
                t4 - t3,
                t4 - t0,
            ),
            strict=True,
        ):
            times[stage].append(value * 1e3)
    return times


def stage_table(rows: dict[int, dict[str, list[float]]]) -> list[str]:
    """Markdown rows: median (p90) per stage, one row per crop count."""
    lines = ['| crops | ' + ' | '.join(STAGES) + ' |', '|---:|' + '---:|' * len(STAGES)]
    for times in rows.values():
        cells = [f'{statistics.median(times[s]):.2f} ({np.percentile(times[s], 90):.2f})' for s in STAGES]
        lines.append(f'| {statistics.median(times["crops"]):.0f} | ' + ' | '.join(cells) + ' |')
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time stn_node's per-frame compute (decode, proposals, localization, sampling, "
        'encode) on 640x480 16UC1 depth frames with N objects; prints a Markdown table.'
    )
    parser.add_argument(
        '--crops', type=int, nargs='+', default=[1, 16, 64], help='objects per frame (default: %(default)s)'
    )
    parser.add_argument('--frames', type=int, default=200, help='timed frames per case (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='auto, cpu, cuda, cuda:N (default: %(default)s)')
    parser.add_argument('--weights', default='', help='STN checkpoint (default: the shipped default)')
    parser.add_argument(
        '--hypotheses', type=int, default=1, help="stn_node's hypotheses_per_object (default: %(default)s)"
    )
    parser.add_argument(
        '--output-size', type=int, nargs=2, default=[32, 32], metavar=('H', 'W'), help='crop size (default: 32 32)'
    )
    parser.add_argument(
        '--size', type=int, nargs=2, default=[640, 480], metavar=('W', 'H'), help='frame size (default: 640 480)'
    )
    parser.add_argument(
        '--decimation', type=int, default=1, help="stn_node's proposal_decimation (default: %(default)s)"
    )
    parser.add_argument('--threads', type=int, default=1, help="torch threads, stn_node's torch_threads (default: 1)")
    parser.add_argument(
        '--proposals',
        choices=('auto', 'host', 'device'),
        default='auto',
        help='where depth proposals fit the plane: the device on CUDA (auto, as stn_node), numpy on the host, or '
        'torch on the device (on a CPU: the torch path on CPU tensors) (default: %(default)s)',
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = load_model(args.weights)
    device = resolve_device(args.device)
    canonicalizer = Canonicalizer(model.stn, device, tuple(args.output_size), model.roi_side_m)
    rows = {
        count: measure_stages(
            canonicalizer,
            count,
            args.frames,
            hypotheses=args.hypotheses,
            size=tuple(args.size),
            decimation=args.decimation,
            device_proposals=None if args.proposals == 'auto' else args.proposals == 'device',
        )
        for count in args.crops
    }
    on_device = device.type == 'cuda' if args.proposals == 'auto' else args.proposals == 'device'
    print(
        f'stn_node compute per {args.size[0]}x{args.size[1]} 16UC1 depth frame '
        f'(proposal decimation {args.decimation}, plane fit {"on the device" if on_device else "on the host"}), '
        f'{model.description}, on {device}, '
        f'{args.output_size[0]}x{args.output_size[1]} crops, {args.hypotheses} hypotheses per object '
        f'({torch.get_num_threads()} torch threads); median (p90) of {args.frames} frames, ms.\n'
    )
    print('\n'.join(stage_table(rows)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
