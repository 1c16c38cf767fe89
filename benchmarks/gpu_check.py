"""The GPU machine's check: does the CUDA path agree with the CPU's, and how fast is it? No ROS needed.

For a machine with torch (a CUDA build), OpenCV, numpy, scipy and tqdm but no ROS (messages are duck-typed; the codecs
decode by attributes). It prints Markdown:

1. Agreement, CUDA against the CPU (:mod:`stn_ros.evaluation.device_agreement`), for every encoding the node
   reads and every transform family: the largest ``H`` difference in source pixels and crop difference;
   and the shipped GQ-CNN's quality difference. Exit status 1 when any is beyond its tolerance.
2. ``stn_node``'s compute per 640x480 16UC1 depth frame, stage by stage (:mod:`node_compute_benchmark`, the
   node's own code), on CUDA and on this machine's CPU, with 16 and 64 crops; medians (p90).
   On CUDA twice: replayed from captured CUDA graphs (the node's default) and op by op.
3. The GQ-CNN's forward at 64 crops on CUDA, from a CUDA graph and op by op.

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

from node_compute_benchmark import measure_stages, stage_table  # noqa: E402
from stn_ros.core import resolve_device  # noqa: E402
from stn_ros.core.cuda_graphs import GraphedFunction  # noqa: E402
from stn_ros.evaluation.device_agreement import TOLERANCES, canonicalizer_agreement, gqcnn_agreement  # noqa: E402
from stn_ros.models.gqcnn import load_gqcnn  # noqa: E402
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model  # noqa: E402


def gqcnn_forward_ms(device: torch.device, crops: int, repeats: int, graphs: bool = True) -> list[float]:
    """Times (ms) of the shipped GQ-CNN's quality of ``crops`` crops on ``device`` (after a warm-up), replayed from a
    CUDA graph as grasp_quality_node runs it, or (``graphs`` False) launched op by op."""
    model, _ = load_gqcnn(Path(__file__).resolve().parents[1] / 'weights' / 'gqcnn.pt')
    model = model.to(device).eval()
    quality = GraphedFunction(lambda images, z: (model.quality(images, z),), enabled=graphs)
    images, z = torch.randn(crops, 1, 32, 32, device=device) * 0.01, torch.full((crops,), 0.7, device=device)
    times = []
    with torch.no_grad():
        for index in range(repeats + 10):
            started = time.perf_counter()
            quality(images, z)[0].cpu()  # to the host, as the node takes it
            if index >= 10:
                times.append((time.perf_counter() - started) * 1e3)
    return times


def has_sensor_msgs() -> bool:
    """Whether ROS's ``sensor_msgs`` is importable (a GPU machine without ROS has none)."""
    try:
        import sensor_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


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

    encode = has_sensor_msgs()
    model = load_model('')
    cases = (
        [(device, True), (device, False), (torch.device('cpu'), False)] if device.type == 'cuda' else [(device, False)]
    )
    for timed, graphs in cases:
        canonicalizer = Canonicalizer(model.stn, timed, (32, 32), model.roi_side_m, cuda_graphs=graphs)
        rows = {n: measure_stages(canonicalizer, n, args.frames, progress=False, encode=encode) for n in args.crops}
        how = ', CUDA graphs' if graphs else (', op by op' if timed.type == 'cuda' else '')
        print(f'## stn_node compute on {timed}{how} ({torch.get_num_threads()} CPU threads), ms, median (p90)\n')
        print('\n'.join(stage_table(rows)) + ('' if encode else '\n\n(no sensor_msgs here: encode not timed)') + '\n')
        for failure in canonicalizer.graph_failures:
            print(f'CUDA graph not captured (that step ran op by op): {failure}\n')
    if device.type == 'cuda':
        for graphs in (True, False):
            times = gqcnn_forward_ms(device, 64, args.frames, graphs)
            print(f'GQ-CNN forward, 64 crops on {device} ({"CUDA graph" if graphs else "op by op"}): '
                  f'{statistics.median(times):.2f} ms median ({np.percentile(times, 90):.2f} p90)')  # fmt: skip
    ok = all(r.ok() for r in results) and quality <= TOLERANCES['quality']
    print(f'\nagreement: {"ok" if ok else "FAILED"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
