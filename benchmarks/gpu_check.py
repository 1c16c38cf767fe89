"""The GPU machine's check: does the CUDA path agree with the CPU's, and how fast is it? No ROS needed.

For a machine with torch (a CUDA build), OpenCV, numpy, scipy and tqdm but no ROS (messages are duck-typed; the codecs
decode by attributes). It prints Markdown:

1. Agreement, CUDA against the CPU (:mod:`stn_ros.evaluation.device_agreement`), for every encoding the node
   reads and every transform family: the largest ``H`` difference in source pixels and crop difference;
   and the shipped GQ-CNN's quality difference. Exit status 1 when any is beyond its tolerance.
   And depth proposals with the plane fit and the threshold on the device against numpy's on the host: the
   plane's largest inverse-depth difference, and whether the proposals (ROIs, areas, labels) are the same.
2. ``stn_node``'s compute per 640x480 16UC1 depth frame, stage by stage (:mod:`node_compute_benchmark`, the
   node's own code), on CUDA and on this machine's CPU, with 16 and 64 crops; medians (p90).
   On CUDA three times: replayed from captured CUDA graphs with the proposals on the device (the node's default),
   the same with the proposals on the host, and op by op.
3. The GQ-CNN's forward at 64 crops on CUDA, from a CUDA graph and op by op.
4. The goals of issue 25 in one table (``docs/gpu.md`` takes it): ``stn_node``'s compute at 16 objects x 4
   hypotheses on 640x480 and 1280x720 frames with the node's defaults, the GQ-CNN at 64 crops, every graph captured
   at activation and none after, the agreement.

    python benchmarks/gpu_check.py                 # on the GPU machine, from the repository root
    python benchmarks/gpu_check.py --device cpu    # the same here (agreement of the CPU with itself)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_frames import depth_frame_mm  # noqa: E402
from node_compute_benchmark import measure_stages, stage_table  # noqa: E402
from stn_ros.bridge.image_codec import encode_image  # noqa: E402
from stn_ros.core import resolve_device  # noqa: E402
from stn_ros.core.cuda_graphs import CaptureContext, GraphedFunction  # noqa: E402
from stn_ros.evaluation.device_agreement import (  # noqa: E402
    TOLERANCES,
    DuckImage,
    canonicalizer_agreement,
    gqcnn_agreement,
)
from stn_ros.models.gqcnn import load_gqcnn  # noqa: E402
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model  # noqa: E402
from stn_ros.perception.stn.device_proposals import fit_table_plane_torch  # noqa: E402
from stn_ros.perception.stn.frame import decode_frame  # noqa: E402
from stn_ros.perception.stn.proposals import (  # noqa: E402
    ProposalConfig,
    auto_decimation,
    depth_proposals,
    fit_table_plane,
    ransac_draws,
)


def gqcnn_forward_ms(device: torch.device, crops: int, repeats: int, graphs: bool = True) -> list[float]:
    """Times (ms) of the shipped GQ-CNN's quality of ``crops`` crops on ``device`` (after a warm-up), replayed from a
    CUDA graph as grasp_quality_node runs it, or (``graphs`` False) launched op by op."""
    model, _ = load_gqcnn(Path(__file__).resolve().parents[1] / 'weights' / 'gqcnn.pt')
    model = model.to(device).eval()
    context = CaptureContext.for_device(device)
    quality = GraphedFunction(lambda images, z: (model.quality(images, z),), enabled=graphs, context=context)
    images, z = torch.randn(crops, 1, 32, 32, device=device) * 0.01, torch.full((crops,), 0.7, device=device)
    with torch.no_grad():
        quality.prepare(images, z)  # as grasp_quality_node does when activated
    times = []
    with torch.no_grad():
        for index in range(repeats + 10):
            started = time.perf_counter()
            with context.running():
                quality(images, z)[0].cpu()  # to the host, as the node takes it
            if index >= 10:
                times.append((time.perf_counter() - started) * 1e3)
    return times


def proposals_agreement(device: torch.device) -> tuple[float, int, int]:
    """Depth proposals on ``device`` (plane fit and threshold in torch) against numpy's on the host, over benchmark
    frames (640x480 with 16 and 64 boxes, 1280x720 at decimation 2): the largest relative difference of the plane's
    inverse depth over a frame, the frames whose proposals (ROIs, areas, labels) are the same, and the frames."""
    cases = [(objects, seed, 640, 480, 1) for objects in (16, 64) for seed in range(3)] + [(16, 0, 1280, 720, 2)]
    largest, same = 0.0, 0
    for objects, seed, width, height, step in cases:
        mm = depth_frame_mm(objects, seed, width, height)
        depth = decode_frame(encode_image(mm, '16UC1', msg_cls=DuckImage)).pixels
        config = ProposalConfig(max_area=int(100_000 * (width / 640) ** 2), decimation=step)
        on_device = torch.from_numpy(depth).to(device)
        small = np.ascontiguousarray(depth[::step, ::step])
        plane = fit_table_plane(small, config)
        draws = ransac_draws(small, config)
        device_plane = fit_table_plane_torch(on_device[::step, ::step], *draws, config.table_threshold / 2)[0]
        rows, cols = np.mgrid[0 : small.shape[0], 0 : small.shape[1]]
        inverse, device_inverse = (q[0] * cols + q[1] * rows + q[2] for q in (plane, device_plane.cpu().numpy()))
        largest = max(largest, float(np.abs(device_inverse / inverse - 1).max()))
        host, found = depth_proposals(depth, config, 64), depth_proposals(depth, config, 64, on_device=on_device)
        same += all(np.array_equal(getattr(host, f), getattr(found, f)) for f in ('rois', 'areas', 'labels'))
    return largest, same, len(cases)


def has_sensor_msgs() -> bool:
    """Whether ROS's ``sensor_msgs`` is importable (a GPU machine without ROS has none)."""
    try:
        import sensor_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


GOALS_MS = {'640x480': 3.0, '1280x720': 4.0, 'gqcnn': 1.0}
"""Issue 25's speed goals on an H100/H200: stn_node compute at 16 objects x 4 hypotheses per frame size, and the
GQ-CNN at 64 crops (ms, medians)."""


def goal_rows(device: torch.device, frames: int, agreement_ok: bool) -> list[str]:
    """The goals table: ``stn_node``'s compute at 16 objects x 4 hypotheses (64 crops) on 640x480 and 1280x720
    16UC1 frames with the node's defaults on ``device`` (CUDA graphs prepared as at activation, proposals on the
    device, decimation by width), the GQ-CNN at 64 crops, whether every graph was captured, and the agreement."""
    model = load_model('')
    canonicalizer = Canonicalizer(model.stn, device, (32, 32), model.roi_side_m)
    canonicalizer.prepare_graphs(16, hypotheses=4)  # as stn_node does when activated with its defaults
    rows = ['| goal | asked | measured, median (p90) | met |', '|---|---:|---:|---|']
    for width, height in ((640, 480), (1280, 720)):
        name = f'{width}x{height}'
        times = measure_stages(canonicalizer, 16, frames, progress=False, hypotheses=4, size=(width, height),
                               decimation=auto_decimation(width), encode=has_sensor_msgs())['total']  # fmt: skip
        median = statistics.median(times)
        rows.append(f'| stn_node compute, {name}, 16 objects x 4 hypotheses | <= {GOALS_MS[name]:.0f} ms | '
                    f'{median:.2f} ({np.percentile(times, 90):.2f}) ms | {median <= GOALS_MS[name]} |')  # fmt: skip
    times = gqcnn_forward_ms(device, 64, frames, graphs=True)
    median = statistics.median(times)
    rows.append(f'| GQ-CNN, 64 crops | <= {GOALS_MS["gqcnn"]:.0f} ms | {median:.2f} ({np.percentile(times, 90):.2f})'
                f' ms | {median <= GOALS_MS["gqcnn"]} |')  # fmt: skip
    failures = canonicalizer.graph_failures
    after = canonicalizer.graph_context.captures_after_prepared
    captured = f'{canonicalizer.graphs_captured} captured, {after} after activation, frames op by op ' + (
        f'{canonicalizer.frames_op_by_op}' + (f', failed: {"; ".join(failures)}' if failures else '')
    )
    every = canonicalizer.cuda_graphs and not failures and after == 0 and canonicalizer.frames_op_by_op == 0
    rows.append(f'| every CUDA graph captured at activation, none after | all, 0 | {captured} | {every} |')
    rows.append(f'| CUDA against the CPU: H, crops (tolerances above) | within | see the agreement table | '
                f'{agreement_ok} |')  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda', help='the device checked against the CPU (default: %(default)s)')
    parser.add_argument('--frames', type=int, default=200, help='timed frames per case (default: %(default)s)')
    parser.add_argument('--crops', type=int, nargs='+', default=[16, 64], help='(default: %(default)s)')
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'# GPU check: {name}, torch {torch.__version__} (CUDA {torch.version.cuda}), {time.strftime("%Y-%m-%d")}\n')

    results = canonicalizer_agreement(device)
    quality = gqcnn_agreement(load_gqcnn(Path(__file__).resolve().parents[1] / 'weights' / 'gqcnn.pt')[0], device)
    print(f'## Agreement with the CPU (tolerances {TOLERANCES})\n')
    print('| encoding | family | H (px) | crops | NaN on one side only | ok |\n|---|---|---:|---:|---:|---|')
    for r in results:
        print(f'| {r.encoding} | {r.family} | {r.homography_px:.4f} | {r.crops:.4g} | {r.nan_mismatch} | {r.ok()} |')
    print(f'\nGQ-CNN quality, largest difference over 64 crops: {quality:.2e}\n')
    plane_difference, same_proposals, proposal_frames = proposals_agreement(device)
    print(
        f"Depth proposals with the plane fit on {device} against numpy on the host: the plane's inverse depth within "
        f'{plane_difference:.1e} (relative; asked: 1e-9), the same proposals in {same_proposals} of '
        f'{proposal_frames} frames\n'
    )

    encode = has_sensor_msgs()
    model = load_model('')
    cpu = torch.device('cpu')
    cases = (  # (device, CUDA graphs, proposals on the device)
        [(device, True, True), (device, True, False), (device, False, True), (cpu, False, False)]
        if device.type == 'cuda'
        else [(device, False, False)]
    )
    for timed, graphs, on_device in cases:
        canonicalizer = Canonicalizer(model.stn, timed, (32, 32), model.roi_side_m, cuda_graphs=graphs)
        canonicalizer.prepare_graphs(max(args.crops))  # as stn_node does when activated
        rows = {
            n: measure_stages(canonicalizer, n, args.frames, progress=False, encode=encode, device_proposals=on_device)
            for n in args.crops
        }
        how = ', CUDA graphs' if graphs else (', op by op' if timed.type == 'cuda' else '')
        how += ', plane fit on the device' if on_device else (', plane fit on the host' if timed.type == 'cuda' else '')
        print(f'## stn_node compute on {timed}{how} ({torch.get_num_threads()} CPU threads), ms, median (p90)\n')
        print('\n'.join(stage_table(rows)) + ('' if encode else '\n\n(no sensor_msgs here: encode not timed)') + '\n')
        for failure in canonicalizer.graph_failures:
            print(f'CUDA graph not captured (that step ran op by op): {failure}\n')
        if canonicalizer.cuda_graphs:
            print(f'{canonicalizer.graphs_captured} CUDA graphs; frames op by op: {canonicalizer.frames_op_by_op}\n')
    if device.type == 'cuda':
        for graphs in (True, False):
            times = gqcnn_forward_ms(device, 64, args.frames, graphs)
            print(f'GQ-CNN forward, 64 crops on {device} ({"CUDA graph" if graphs else "op by op"}): '
                  f'{statistics.median(times):.2f} ms median ({np.percentile(times, 90):.2f} p90)')  # fmt: skip
    ok = all(r.ok() for r in results) and quality <= TOLERANCES['quality']
    ok = ok and plane_difference <= 1e-9 and same_proposals == proposal_frames
    print(f'\n## Goals on {name} (issue 25; the speed goals are for an H100/H200)\n')
    print('\n'.join(goal_rows(device, args.frames, ok)))
    print(f'\nagreement: {"ok" if ok else "FAILED"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
