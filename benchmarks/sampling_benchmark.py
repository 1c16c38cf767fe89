"""Micro-benchmark: sampling N crops from one 640x480 image, our samplers vs an OpenCV loop.

For each crop count and size, the same pixel-space homographies are sampled by
  * torch: our batched ``grid_sample`` path (grid built from the normalized maps, one call),
  * ours (OpenCV): ``stn_ros.core.warp_perspective_opencv``, the CPU inference path,
  * OpenCV loop: a plain ``cv2.warpPerspective`` loop, what a user would write.
Measurements are interleaved round-robin so that the ratios hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from stn_ros.core import homography_grid, make_family, pixel_homography, resolve_device, roi_matrix
from stn_ros.core.sampler import sample_grids, warp_perspective_opencv

SOURCE_SIZE = (480, 640)


def crop_maps(count: int, seed: int = 0) -> torch.Tensor:
    """Normalized crop -> source maps of ``count`` rotated, scaled crops spread over the image."""
    generator = torch.Generator().manual_seed(seed)
    sides = 40 + 80 * torch.rand(count, generator=generator)
    xs = (SOURCE_SIZE[1] - sides) * torch.rand(count, generator=generator)
    ys = (SOURCE_SIZE[0] - sides) * torch.rand(count, generator=generator)
    rois = torch.stack((xs, ys, sides, sides), dim=1).double()
    angles = np.pi * (2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1)
    scales = 0.8 + 0.2 * torch.rand(count, generator=generator, dtype=torch.float64)
    params = torch.stack((scales * angles.cos(), scales * angles.sin(), 0 * scales, 0 * scales), dim=1)
    return roi_matrix(rois, SOURCE_SIZE) @ make_family('similarity').matrix(params)


def time_ms(function) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1e3


def run(counts: list[int], sizes: list[int], repeats: int, device: torch.device) -> list[dict]:
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, SOURCE_SIZE, dtype=np.uint8)
    source_tensor = torch.from_numpy(source).to(device).float()[None]
    rows = []
    cases = [(count, size) for size in sizes for count in counts]
    for count, size in tqdm(cases, desc='sampling benchmark', unit='case', file=sys.stderr):
        maps = crop_maps(count)
        homographies = pixel_homography(maps, SOURCE_SIZE, (size, size)).numpy()
        maps_device = maps.float().to(device)

        def torch_path():
            with torch.no_grad():
                out = sample_grids(source_tensor, homography_grid(maps_device, size, size))
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            return out

        def ours_opencv():
            return warp_perspective_opencv(source, homographies, (size, size))

        def opencv_loop():
            return [
                cv2.warpPerspective(source, h, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
                for h in homographies
            ]

        paths = {'torch': torch_path, 'ours (OpenCV)': ours_opencv, 'OpenCV loop': opencv_loop}
        for path in paths.values():  # warm-up
            path()
        samples = {name: [] for name in paths}
        for _ in range(repeats):
            for name, path in paths.items():
                samples[name].append(time_ms(path))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        rows.append({'crops': count, 'size': size, **medians})
    return rows


def markdown(rows: list[dict], device: torch.device, repeats: int) -> str:
    lines = [
        f'Sampling crops from one 640x480 mono8 image; median of {repeats} interleaved runs, ms.',
        f'Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch '
        f'threads, torch {torch.__version__} on {device}, OpenCV {cv2.__version__}.',
        '',
        '| crops | size | torch grid_sample | ours (OpenCV from H) | OpenCV loop | torch / loop | ours / loop |',
        '|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        loop = r['OpenCV loop']
        lines.append(
            f'| {r["crops"]} | {r["size"]}x{r["size"]} | {r["torch"]:.3f} | {r["ours (OpenCV)"]:.3f} '
            f'| {loop:.3f} | {r["torch"] / loop:.2f} | {r["ours (OpenCV)"] / loop:.2f} |'
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Time sampling 1/16/64 crops of 32x32 and 64x64 from one 640x480 image: our torch '
        'and OpenCV samplers against a plain cv2.warpPerspective loop over the same H. '
        'Prints a Markdown table of medians and ratios.'
    )
    parser.add_argument('--crops', type=int, nargs='+', default=[1, 16, 64], help='crop counts (default: %(default)s)')
    parser.add_argument(
        '--sizes', type=int, nargs='+', default=[32, 64], help='crop sides in pixels (default: %(default)s)'
    )
    parser.add_argument('--repeats', type=int, default=300, help='timed runs per path and case (default: %(default)s)')
    parser.add_argument(
        '--device', default='cpu', help='device of the torch path: auto, cpu, cuda, cuda:N (default: %(default)s)'
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    print(markdown(run(args.crops, args.sizes, args.repeats, device), device, args.repeats))
    return 0


if __name__ == '__main__':
    sys.exit(main())
