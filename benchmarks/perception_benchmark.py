"""The benchmark command: stn_node's compute, the alternatives, end to end over real topics, load, memory.

One run measures everything, so ratios hold on a noisy machine, and writes ``docs/benchmarks.md``
(with the machine it ran on) plus the raw figures as JSON beside it:

1. Compute per 640x480 ``16UC1`` depth frame with 1, 16 and 64 crops, stage by stage (the node's own
   code without a graph; :mod:`node_compute_benchmark`), on the CPU and, when there is one, on CUDA.
2. The canonicalization stage beside what a user would write instead, on the same frames: an OpenCV
   loop (``minAreaRect`` of each proposal's mask + ``warpAffine``) and kornia's ``warp_affine`` /
   ``warp_perspective`` given the node's transforms (checked to give the same crops).
3. End to end over real topics, separate processes (:mod:`topic_endpoints`): camera publish ->
   ``stn_node`` ``~/rectified/transforms`` received, and -> ``grasp_quality_node`` ``~/grasps``, at
   30 Hz, beside the transport floor (the same frames to a subscriber that only receives them), with
   Fast DDS's default transports and with the shared-memory profile the package ships; then the same graph
   with the hand-written OpenCV node (:mod:`opencv_alignment_node`) in place of ``stn_node``.
4. Input rates upward: frames out, drops, latency; the highest rate with under 1 % dropped.
5. A soak at 30 Hz: the node's RSS (and CUDA memory from its diagnostics) over time.
6. 1280x720 frames at 30 Hz (stn_node alone).
7. Camera to grasps over shared memory, two processes (section 3's phase) and one (``perception_pipeline``); then
   both nodes beside a busy process (one core kept busy) with a D435-like 848x480 ``16UC1`` camera at 30 Hz: the
   frames that got grasps, every loss the nodes counted, and what stn_node shed (its ``frames shed`` and
   ``shedding`` diagnostics, where it has them).

Every ROS process runs on loopback only, in its own domain and ``ROS_HOME`` (:mod:`stn_ros.ros.loopback_env`).

Parts can be left out (``--transports``, ``--rates`` with no rate, ``--soak-seconds 0``, ``--large-seconds 0``,
``--busy-seconds 0``): their sections are then not written. Section 3's two transports and section 7 need their
phases in the same run for their ratios; section 7 runs with the shared-memory transport.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from bench_frames import CAMERA, depth_frame_mm
from node_compute_benchmark import measure_stages, stage_table
from opencv_alignment_node import CROP_SIDE_M
from opencv_alignment_node import node_command as opencv_node_command
from stn_ros.bridge.image_codec import encode_image
from stn_ros.core import resolve_device, warp_perspective_opencv
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.proposals import ProposalConfig, depth_proposals
from stn_ros.ros.child_processes import ProcessGroup, node_command, pipeline_command
from stn_ros.ros.loopback_env import loopback_ros_env

HERE = Path(__file__).resolve().parent
TRANSFORMS = '/stn_node/rectified/transforms'
OPENCV_NODE = 'opencv_alignment_node'
OPENCV_TRANSFORMS = f'/{OPENCV_NODE}/rectified/transforms'
GRASPS = '/grasp_quality_node/grasps'
WARM_UP_S = 2.0  # first seconds of each phase left out of the statistics (discovery, first inference)
BUSY_CAMERA = (848, 480)  # a D435's depth stream at 848x480 16UC1
BUSY_PROCESS = [sys.executable, '-c', 'while True: pass']  # keeps one core busy
LOSS_KEYS = {  # the diagnostics counters of frames a node lost, as the nodes name them
    'stn_node': ('frames dropped (latest wins)', 'lost before the node'),
    'grasp_quality_node': ('frames dropped (latest wins)', 'lost before the node', 'unpaired dropped'),
}
SHED_COUNT, SHED_LEVEL = 'frames shed', 'shedding'  # stn_node's load shedding, where it has it
TRANSPORTS = {'default': ('default', False), 'shared-memory': ('shared memory', True)}  # option -> (name, shm)
GRASPS_GOAL_MS = (15.0, 25.0)  # camera to grasps p50, p99 (issue 27)


# ----------------------------------------------------------------------------- in-process compute


def opencv_loop(depth: np.ndarray, labels: np.ndarray, rois: np.ndarray, size: int = 32) -> np.ndarray:
    """What a user writes instead of an STN: per proposal, ``minAreaRect`` of its mask's outer contours, then
    ``warpAffine`` of the rectangle (long side horizontal, with the proposals' margin) to a ``size`` x ``size`` crop."""
    crops = np.empty((len(rois), size, size), np.float32)
    for index, (x, y, w, h) in enumerate(rois):
        x0, y0 = max(int(x), 0), max(int(y), 0)
        window = labels[y0 : int(np.ceil(y + h)), x0 : int(np.ceil(x + w))] == index + 1
        # The outer contours' points, as a careful hand-written loop does: the same rectangle as every pixel's.
        contours, _ = cv2.findContours(window.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(np.concatenate(contours))
        scale = size / (max(rw, rh, 1.0) * 1.3)
        matrix = cv2.getRotationMatrix2D((cx + x0, cy + y0), angle if rw >= rh else angle + 90.0, scale)
        matrix[:, 2] += (size - 1) / 2.0 - np.array([cx + x0, cy + y0])
        crops[index] = cv2.warpAffine(depth, matrix, (size, size), flags=cv2.INTER_LINEAR)
    return crops


def compare_canonicalization(canonicalizer: Canonicalizer, objects: int, frames: int) -> dict[str, list[float]]:
    """Per frame (ms): ours (localization + sampling), our sampling alone, the OpenCV loop, kornia's
    ``warp_affine`` and ``warp_perspective`` on our transforms (their largest difference to our crops too)."""
    import kornia.geometry.transform as kornia_transform

    config = ProposalConfig(max_area=100_000)
    frames_in = [decode_frame(encode_image(depth_frame_mm(objects, seed), '16UC1')) for seed in range(4)]
    proposals = [depth_proposals(f.pixels, config, max_crops=objects) for f in frames_in]
    times: dict[str, list[float]] = {
        k: []
        for k in (
            'ours',
            'ours sampling',
            'opencv loop',
            'kornia warp_affine',
            'kornia warp_perspective',
            'kornia difference',
        )
    }
    size = canonicalizer.output_size
    for index in range(frames + 5):
        frame, found = frames_in[index % 4], proposals[index % 4]
        depth = np.nan_to_num(frame.pixels)
        result = canonicalizer.process(frame, found.rois, CAMERA)
        t1 = time.perf_counter()
        opencv_loop(depth, found.labels, found.rois, size[0])
        t2 = time.perf_counter()
        source = torch.from_numpy(depth)[None, None].expand(len(found.rois), 1, *depth.shape)
        to_crop = torch.linalg.inv(result.transforms.homographies.double()).float()  # kornia maps source -> crop
        t3 = time.perf_counter()
        by_kornia = kornia_transform.warp_affine(source, to_crop[:, :2], size, align_corners=True)
        t4 = time.perf_counter()
        kornia_transform.warp_perspective(source, to_crop, size, align_corners=True)
        t5 = time.perf_counter()
        if index < 5:
            continue
        reference = warp_perspective_opencv(depth, result.transforms.homographies.numpy(), size)
        times['kornia difference'].append(float(np.abs(by_kornia[:, 0].numpy() - reference)[:, 1:-1, 1:-1].max()))
        times['ours'].append(result.timings_ms['localization'] + result.timings_ms['sampling'])
        times['ours sampling'].append(result.timings_ms['sampling'])
        times['opencv loop'].append((t2 - t1) * 1e3)
        times['kornia warp_affine'].append((t4 - t3) * 1e3)
        times['kornia warp_perspective'].append((t5 - t4) * 1e3)
    return times


# ----------------------------------------------------------------------------- processes over topics

STN_NODE_REMAPS = ['image:=/camera/depth', 'camera_info:=/camera/camera_info']  # the OpenCV node's too


def grasp_node_remaps(upstream: str = 'stn_node') -> list[str]:
    """grasp_quality_node reading the outputs of ``upstream`` (stn_node, or the OpenCV node in its place)."""
    return [
        f'rectified/image:=/{upstream}/rectified/image',
        f'rectified/transforms:=/{upstream}/rectified/transforms',
        'camera_info:=/camera/camera_info',
    ]


GRASP_NODE_REMAPS = grasp_node_remaps()


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """The next stdout line of ``process`` within ``timeout`` seconds ('' on timeout or exit)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline().strip() if ready else ''


def rss_mib(pid: int) -> float:
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def run_phase(
    name: str,
    *,
    rate: float,
    seconds: float,
    shared_memory: bool,
    nodes: tuple[str, ...],
    topics: list[str],
    device: str,
    log_dir: Path,
    sample_rss: float = 0.0,
    pipeline_options: Sequence[str] = (),
    size: tuple[int, int] = (640, 480),
    on_started: Callable[[ProcessGroup], None] | None = None,
) -> dict:
    """Receiver, then ``nodes``, then the camera for ``seconds`` at ``rate``; the receiver's record, the
    camera's, and (with ``sample_rss``) stn_node's RSS every ``sample_rss`` seconds. ``nodes`` may name
    ``perception_pipeline`` (both nodes in one process, started with ``pipeline_options``), and
    ``opencv_alignment_node`` (the hand-written OpenCV node in place of stn_node: grasp_quality_node reads its
    outputs). ``on_started(group)`` runs once the camera has started (e.g. to attach a profiler to the nodes)."""
    env = loopback_ros_env(shared_memory=shared_memory)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, (str(HERE), env.get('PYTHONPATH'))))
    endpoints = [sys.executable, str(HERE / 'topic_endpoints.py')]
    rss: list[tuple[float, float]] = []
    with ProcessGroup() as group:
        records = Path(tempfile.mkdtemp(prefix=f'stn_ros_benchmark_{name}_'))
        receiver = group.start(
            'receiver',
            endpoints
            + ['receiver', '--out', str(records / 'receiver.json')]
            + [a for t in topics for a in ('--topic', t)],
            env=env,
            stdout_pipe=True,
        )
        if 'stn_node' in nodes:
            group.start(
                'stn_node',
                node_command('stn_node', [f'device:={device}'], STN_NODE_REMAPS),
                log=log_dir / f'{name}_stn_node.log',
                env=env,
            )
        if OPENCV_NODE in nodes:
            group.start(
                OPENCV_NODE, opencv_node_command(STN_NODE_REMAPS), log=log_dir / f'{name}_{OPENCV_NODE}.log', env=env
            )
        if 'grasp_quality_node' in nodes:
            upstream = OPENCV_NODE if OPENCV_NODE in nodes else 'stn_node'
            group.start(
                'grasp_quality_node',
                node_command('grasp_quality_node', [f'device:={device}'], grasp_node_remaps(upstream)),
                log=log_dir / f'{name}_grasp_quality_node.log',
                env=env,
            )
        if 'perception_pipeline' in nodes:  # both nodes in one process, with the same files, device and topics
            group.start(
                'perception_pipeline',
                pipeline_command(
                    {node: [f'device:={device}'] for node in ('stn_node', 'grasp_quality_node')},
                    STN_NODE_REMAPS + GRASP_NODE_REMAPS,
                    pipeline_options,
                ),
                log=log_dir / f'{name}_perception_pipeline.log',
                env=env,
            )
        if nodes and read_line(receiver, 120) != 'ready':
            group.check_alive(nodes)
            raise RuntimeError(f'{name}: the nodes did not come up within 120 s (logs in {log_dir})')
        camera = group.start(
            'camera',
            endpoints
            + ['camera', '--rate', str(rate), '--seconds', str(seconds), '--out', str(records / 'camera.json')]
            + ['--size', str(size[0]), str(size[1])],
            env=env,
            log=log_dir / f'{name}_camera.log',
        )
        started = time.monotonic()
        if on_started is not None:
            on_started(group)
        while camera.poll() is None:
            if (
                sample_rss
                and 'stn_node' in group.processes
                and (not rss or time.monotonic() - started - rss[-1][0] >= sample_rss)
            ):
                rss.append((time.monotonic() - started, rss_mib(group.processes['stn_node'].pid)))
            time.sleep(0.2)
            group.check_alive(nodes)
        if camera.returncode != 0:
            raise RuntimeError(f'{name}: the camera failed (code {camera.returncode}; log in {log_dir})')
        time.sleep(1.0)  # the last frames' outputs
        receiver.terminate()
        try:
            receiver.wait(timeout=30)
        except subprocess.TimeoutExpired:  # it writes its record before it leaves the graph: that may hang
            if not (records / 'receiver.json').exists():
                raise RuntimeError(f'{name}: no record from the receiver, still running 30 s after SIGTERM') from None
            receiver.kill()
            receiver.wait()
        received = json.loads((records / 'receiver.json').read_text())
        sent = json.loads((records / 'camera.json').read_text())
    return {'camera': sent, **received, 'rss_mib': rss, 'rate': rate}


def latency_stats(phase: dict, topic: str) -> dict[str, float]:
    """p50/p99 latency (ms) of ``topic`` after warm-up, and the share of the camera's frames it carried."""
    stamps = phase['camera']['stamps']
    since = stamps[0] + WARM_UP_S if stamps else 0.0
    sent = [s for s in stamps if s >= since]
    arrivals = [(stamp, arrival) for stamp, arrival in phase['arrivals'].get(topic, []) if stamp >= since]
    latencies = np.array([(arrival - stamp) * 1e3 for stamp, arrival in arrivals])
    delivered = len({round(stamp, 6) for stamp, _ in arrivals})
    if not len(latencies):
        return {'p50': float('nan'), 'p99': float('nan'), 'max': float('nan'), 'delivered': 0.0, 'sent': len(sent)}
    return {
        'p50': float(np.median(latencies)),
        'p99': float(np.percentile(latencies, 99)),
        'max': float(latencies.max()),
        'delivered': delivered / max(len(sent), 1),
        'sent': len(sent),
    }


def diagnostics_history(phase: dict, node: str) -> list[tuple[float, dict[str, str]]]:
    """``node``'s ``/diagnostics`` values in the phase, with their arrival times."""
    # status names are '<fully qualified node name>: <label>'
    return next((h for name, h in phase['diagnostics'].items() if name.partition(':')[0].endswith('/' + node)), [])


def diagnostics_of(phase: dict, node: str) -> dict[str, str]:
    """``node``'s last ``/diagnostics`` values of the phase."""
    history = diagnostics_history(phase, node)
    return history[-1][1] if history else {}


def counted_after_warm_up(phase: dict, node: str, key: str) -> float:
    """How much ``node``'s cumulative diagnostics counter ``key`` grew after the warm-up."""
    history = diagnostics_history(phase, node)
    stamps = phase['camera']['stamps']
    after = [values for arrival, values in history if stamps and arrival >= stamps[0] + WARM_UP_S]
    if not after:
        return float('nan')
    before = [values for arrival, values in history if arrival < stamps[0] + WARM_UP_S]
    return number(after[-1], key) - (number(before[-1], key) if before else 0.0)


def number(values: dict[str, str], key: str) -> float:
    try:
        return float(values.get(key, 'nan'))
    except ValueError:
        return float('nan')


# ----------------------------------------------------------------------------- report


def machine() -> str:
    model = next(
        (
            line.split(':', 1)[1].strip()
            for line in Path('/proc/cpuinfo').read_text().splitlines()
            if line.startswith('model name')
        ),
        platform.processor() or 'unknown CPU',
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    memory = next(
        (
            int(line.split()[1]) / 1024**2
            for line in Path('/proc/meminfo').read_text().splitlines()
            if line.startswith('MemTotal')
        ),
        float('nan'),
    )
    return (
        f'{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {memory:.0f} GiB; GPU: {gpu}; '
        f'{platform.system()} {platform.release()}, Python {platform.python_version()}, torch {torch.__version__}, '
        f'OpenCV {cv2.__version__}'
    )


def median(values) -> float:
    return float(statistics.median(values)) if len(values) else float('nan')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', type=Path, default=Path('docs/benchmarks.md'), help='(default: %(default)s)')
    parser.add_argument('--crops', type=int, nargs='+', default=[1, 16, 64], help='(default: %(default)s)')
    parser.add_argument(
        '--frames', type=int, default=200, help='timed frames per in-process case (default: %(default)s)'
    )
    parser.add_argument('--e2e-seconds', type=float, default=20.0, help='each end-to-end phase (default: %(default)s)')
    parser.add_argument(
        '--transports',
        nargs='+',
        choices=list(TRANSPORTS),
        default=list(TRANSPORTS),
        help="section 3's transports; section 7 needs shared-memory (default: both)",
    )
    parser.add_argument(
        '--rates',
        type=float,
        nargs='*',
        default=[30, 45, 60, 90, 120],
        help='input rates to try, Hz; none skips section 4 (default: %(default)s)',
    )
    parser.add_argument('--rate-seconds', type=float, default=10.0, help='each rate (default: %(default)s)')
    parser.add_argument(
        '--soak-seconds', type=float, default=600.0, help='the 30 Hz soak; 0 skips it (default: %(default)s)'
    )
    parser.add_argument(
        '--large-seconds',
        type=float,
        default=None,
        help='the 1280x720 phase; 0 skips it (default: --e2e-seconds)',
    )
    parser.add_argument(
        '--busy-seconds',
        type=float,
        default=None,
        help='the phase beside a busy process; 0 skips it (default: --e2e-seconds)',
    )
    parser.add_argument('--device', default='auto', help='device of the nodes over topics (default: %(default)s)')
    args = parser.parse_args(argv)
    transports = dict(TRANSPORTS[option] for option in dict.fromkeys(args.transports))
    shared_memory = 'shared memory' in transports
    busy_seconds = (args.e2e_seconds if args.busy_seconds is None else args.busy_seconds) if shared_memory else 0
    large_seconds = args.e2e_seconds if args.large_seconds is None else args.large_seconds
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix='stn_ros_benchmark_logs_'))
    figures: dict = {
        'machine': machine(),
        'command': ' '.join(['python benchmarks/perception_benchmark.py'] + (argv or sys.argv[1:])),
    }
    model = load_model('')
    devices = [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])
    steps = tqdm(
        total=len(devices) * len(args.crops)
        + len(args.crops)
        + 3 * len(transports)
        + (1 if shared_memory else 0)
        + len(args.rates)
        + (1 if large_seconds else 0)
        + (1 if args.soak_seconds else 0)
        + (1 if busy_seconds else 0),
        desc='benchmark',
        unit='step',
        file=sys.stderr,
    )

    stages = {}
    for device in devices:
        canonicalizer = Canonicalizer(model.stn, device, (32, 32), model.roi_side_m)
        for count in args.crops:
            stages[(str(device), count)] = measure_stages(canonicalizer, count, args.frames, progress=False)
            steps.update()
    canonicalizer = Canonicalizer(model.stn, torch.device('cpu'), (32, 32), model.roi_side_m)
    alternatives = {}
    for count in args.crops:
        alternatives[count] = compare_canonicalization(canonicalizer, count, args.frames)
        steps.update()

    device = str(resolve_device(args.device))
    phases = {}
    for transport, shm in transports.items():
        phases[('floor', transport)] = run_phase(
            f'floor_{transport}',
            rate=30,
            seconds=args.e2e_seconds,
            shared_memory=shm,
            nodes=(),
            topics=['/camera/depth:image'],
            device=device,
            log_dir=log_dir,
        )
        steps.update()
        phases[('pipeline', transport)] = run_phase(
            f'pipeline_{transport}',
            rate=30,
            seconds=args.e2e_seconds,
            shared_memory=shm,
            nodes=('stn_node', 'grasp_quality_node'),
            topics=[f'{TRANSFORMS}:pointcloud', f'{GRASPS}:pointcloud'],
            device=device,
            log_dir=log_dir,
        )
        steps.update()
        phases[('opencv', transport)] = run_phase(  # the same graph, the OpenCV node in place of stn_node
            f'opencv_{transport}',
            rate=30,
            seconds=args.e2e_seconds,
            shared_memory=shm,
            nodes=(OPENCV_NODE, 'grasp_quality_node'),
            topics=[f'{OPENCV_TRANSFORMS}:pointcloud', f'{GRASPS}:pointcloud'],
            device=device,
            log_dir=log_dir,
        )
        steps.update()
    if shared_memory:  # camera to grasps: both nodes in one process (two processes: ('pipeline', 'shared memory'))
        phases[('one process', 'shared memory')] = run_phase(
            'one_process',
            rate=30,
            seconds=args.e2e_seconds,
            shared_memory=True,
            nodes=('perception_pipeline',),
            topics=[f'{TRANSFORMS}:pointcloud', f'{GRASPS}:pointcloud'],
            device=device,
            log_dir=log_dir,
        )
        steps.update()
    busy = None
    if busy_seconds:  # both nodes beside a process that keeps one core busy, a D435-like camera
        busy = run_phase(
            'busy',
            rate=30,
            seconds=busy_seconds,
            shared_memory=True,
            nodes=('stn_node', 'grasp_quality_node'),
            topics=[f'{TRANSFORMS}:pointcloud', f'{GRASPS}:pointcloud'],
            device=device,
            log_dir=log_dir,
            size=BUSY_CAMERA,
            on_started=lambda group: group.start('busy', BUSY_PROCESS),
        )
        steps.update()
    # the rate sweep, the large frames and the soak: stn_node alone over shared memory, its transforms received
    stn_node_alone = functools.partial(
        run_phase,
        shared_memory=True,
        nodes=('stn_node',),
        topics=[f'{TRANSFORMS}:pointcloud'],
        device=device,
        log_dir=log_dir,
    )
    sweep = {}
    for rate in args.rates:
        sweep[rate] = stn_node_alone(f'rate_{rate:g}', rate=rate, seconds=args.rate_seconds)
        steps.update()
    large = None
    if large_seconds:
        large = stn_node_alone('large_frames', rate=30, seconds=large_seconds, size=(1280, 720))
        steps.update()
    soak = None
    if args.soak_seconds:
        soak = stn_node_alone('soak', rate=30, seconds=args.soak_seconds, sample_rss=5.0)
        steps.update()
    steps.close()

    figures['minutes'] = (time.monotonic() - started) / 60
    text = report(figures, model.description, stages, alternatives, phases, sweep, soak, device, large, busy)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


def opencv_node_table(phases: dict) -> list[str]:
    """Section 3's comparison: the hand-written OpenCV node in place of stn_node, in the same run."""
    out = [
        'The same graph with the hand-written OpenCV node in place of `stn_node` '
        '(`benchmarks/opencv_alignment_node.py`: the same depth proposals, then per object `minAreaRect` of its mask '
        f'and a 32x32 `warpAffine` crop {CROP_SIDE_M} m wide, one crop per object; `stn_node` publishes '
        '`hypotheses_per_object` crops per object), `grasp_quality_node` reading its outputs; the same camera, '
        'frames, rate and transport, measured in the same run.\n',
        '| transport | OpenCV node transforms p50 / p99 | frames with transforms | stn_node transforms p50 (above) '
        '| stn_node p50 / OpenCV node p50 | grasps p50 / p99 after the OpenCV node |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for transport in ('default', 'shared memory'):
        if ('opencv', transport) not in phases:
            continue
        opencv = latency_stats(phases[('opencv', transport)], OPENCV_TRANSFORMS)
        grasps = latency_stats(phases[('opencv', transport)], GRASPS)
        stn = latency_stats(phases[('pipeline', transport)], TRANSFORMS)
        out.append(
            f'| {transport} | {opencv["p50"]:.1f} / {opencv["p99"]:.1f} ms | {opencv["delivered"]:.1%} | '
            f'{stn["p50"]:.1f} ms | {stn["p50"] / opencv["p50"]:.2f} | {grasps["p50"]:.1f} / {grasps["p99"]:.1f} ms |'
        )
    out.append('\nGoal: stn_node transforms p50 / OpenCV node transforms p50 at most 0.75.\n')
    return out


def grasps_tables(phases: dict, busy: dict | None) -> list[str]:
    """Section 7: camera to grasps over shared memory, two processes and one; then the phase beside a busy process."""
    out = [
        '## 7. Camera to grasps (shared memory, 30 Hz, 640x480 16UC1, 16 boxes)\n\n'
        "Latency is the receipt of `~/grasps` minus the frame's stamp. Two processes: section 3's phase; one process: "
        '`perception_pipeline` (both nodes in one process, its default executor), the same camera, files and topics. '
        '"compute" is each node\'s decode-to-publish median from its `/diagnostics`.\n',
        '| setup | grasps p50 / p99 | transforms p50 / p99 | frames with grasps '
        '| stn_node / grasp_quality_node compute |',
        '|---|---:|---:|---:|---:|',
    ]
    for setup, key in (
        ('two processes', ('pipeline', 'shared memory')),
        ('one process', ('one process', 'shared memory')),
    ):
        if key not in phases:
            continue
        phase = phases[key]
        grasps, transforms = latency_stats(phase, GRASPS), latency_stats(phase, TRANSFORMS)
        compute = [number(diagnostics_of(phase, node), 'processing median (ms)') for node in LOSS_KEYS]
        out.append(
            f'| {setup} | {grasps["p50"]:.1f} / {grasps["p99"]:.1f} ms | {transforms["p50"]:.1f} / '
            f'{transforms["p99"]:.1f} ms | {grasps["delivered"]:.1%} | {compute[0]:.1f} / {compute[1]:.1f} ms |'
        )
    out.append(f'\nGoal: grasps p50 at most {GRASPS_GOAL_MS[0]:g} ms, p99 at most {GRASPS_GOAL_MS[1]:g} ms.\n')
    if busy is None:
        return out
    width, height = BUSY_CAMERA
    out += [
        f'Beside a busy process: a D435-like {width}x{height} 16UC1 camera (16 boxes) at 30 Hz, both nodes in two '
        'processes, and one more process keeping one core busy (`while True: pass`). After the warm-up: the frames '
        'that got grasps, the losses each node counted in its `/diagnostics` (replaced before processing, lost before '
        'the node, unpaired), the frames stn_node shed and its shedding level at the end ("-": the node does not '
        'report it).\n',
        '| frames sent | frames with grasps | grasps p50 / p99 | missing | counted losses | stn_node dropped / lost '
        'before | grasp_quality_node dropped / lost before / unpaired | frames shed | shedding |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ]
    grasps = latency_stats(busy, GRASPS)
    counts = {node: [counted_after_warm_up(busy, node, key) for key in keys] for node, keys in LOSS_KEYS.items()}
    counted = sum(c for values in counts.values() for c in values if c == c)  # nan: not reported
    missing = grasps['sent'] - round(grasps['delivered'] * grasps['sent'])
    shed = counted_after_warm_up(busy, 'stn_node', SHED_COUNT)
    level = diagnostics_of(busy, 'stn_node').get(SHED_LEVEL, '-')
    cells = {node: ' / '.join('-' if c != c else f'{c:.0f}' for c in values) for node, values in counts.items()}
    shed_cell = '-' if shed != shed else f'{shed:.0f}'
    out.append(
        f'| {grasps["sent"]} | {grasps["delivered"]:.1%} | {grasps["p50"]:.1f} / {grasps["p99"]:.1f} ms | {missing} | '
        f'{counted:.0f} | {cells["stn_node"]} | {cells["grasp_quality_node"]} | {shed_cell} | {level or "-"} |'
    )
    out.append('')
    return out


def end_to_end_tables(phases: dict, device: str) -> list[str]:
    """Section 3: end to end over real topics at 30 Hz, each transport of the run, then the OpenCV node's table."""
    out = []
    out.append(
        f'## 3. End to end over real topics at 30 Hz ({device}, 16 boxes per frame)\n\n'
        'Separate processes: a camera publishing 640x480 16UC1 depth + camera_info, `stn_node`, '
        "`grasp_quality_node`, and a receiver. Latency is receipt time minus the frame's stamp (set just "
        'before publishing). The transport floor is the same camera to a receiver of the image alone. '
        '"compute" is the node\'s own decode-to-publish median from its `/diagnostics` in the same phase.\n'
    )
    out.append(
        '| transport | floor p50 / p99 | stn_node compute | transforms p50 / p99 | p50 / (floor + compute) '
        '| grasp_quality_node compute | grasps p50 / p99 | frames with transforms |'
    )
    out.append('|---|---:|---:|---:|---:|---:|---:|---:|')
    for transport in dict.fromkeys(t for kind, t in phases if kind == 'pipeline'):
        floor = latency_stats(phases[('floor', transport)], '/camera/depth')
        pipeline = phases[('pipeline', transport)]
        transforms, grasps = latency_stats(pipeline, TRANSFORMS), latency_stats(pipeline, GRASPS)
        compute = number(diagnostics_of(pipeline, 'stn_node'), 'processing median (ms)')
        grasp_compute = number(diagnostics_of(pipeline, 'grasp_quality_node'), 'processing median (ms)')
        ratio = transforms['p50'] / (floor['p50'] + compute)
        out.append(
            f'| {transport} | {floor["p50"]:.1f} / {floor["p99"]:.1f} ms | {compute:.1f} ms | '
            f'{transforms["p50"]:.1f} / {transforms["p99"]:.1f} ms | {ratio:.2f} | {grasp_compute:.1f} ms | '
            f'{grasps["p50"]:.1f} / {grasps["p99"]:.1f} ms | {transforms["delivered"]:.1%} |'
        )
    out.append('\nGoal: transforms p50 at most 1.25 x (floor + compute).\n')
    if any(kind == 'opencv' for kind, _ in phases):
        out += opencv_node_table(phases)
    return out


def rate_table(sweep: dict) -> list[str]:
    """Section 4: the input rates tried, stn_node alone over shared memory."""
    out = []
    out.append(
        '## 4. Input rate (shared memory, stn_node alone)\n\nDrops are frames the node replaced before '
        'processing them (latest frame wins), counted in its `/diagnostics` after the warm-up; "out" is the '
        "share of the camera's frames (after the warm-up) whose transforms arrived.\n"
    )
    out.append(
        '| input rate | frames sent | out | dropped by the node | transforms p50 / p99 / max | stn_node compute |'
    )
    out.append('|---:|---:|---:|---:|---:|---:|')
    sustained = None
    for rate, phase in sweep.items():
        stats = latency_stats(phase, TRANSFORMS)
        values = diagnostics_of(phase, 'stn_node')
        received = counted_after_warm_up(phase, 'stn_node', 'frames received')
        drop = (
            counted_after_warm_up(phase, 'stn_node', 'frames dropped (latest wins)') / received
            if received
            else float('nan')
        )
        if drop < 0.01 and stats['delivered'] >= 0.99:
            sustained = rate if sustained is None else max(sustained, rate)
        out.append(
            f'| {rate:g} Hz | {phase["camera"]["published"]} | {stats["delivered"]:.1%} | {drop:.1%} | '
            f'{stats["p50"]:.1f} / {stats["p99"]:.1f} / {stats["max"]:.1f} ms | '
            f'{number(values, "processing median (ms)"):.1f} ms |'
        )
    out.append(
        f'\nHighest rate tried with under 1 % dropped: {f"{sustained:g} Hz" if sustained else "none"}. Above it '
        'the node keeps only the latest frame: drops are counted, latency stays bounded by about one '
        'processing time plus the transport.\n'
    )
    return out


def report(figures, model_description, stages, alternatives, phases, sweep, soak, device, large=None, busy=None) -> str:
    out = [
        f'# Benchmarks\n\nMachine: {figures["machine"]}.\n\nCommand: `{figures["command"]}` '
        f'(writes this file; this run took {figures["minutes"]:.0f} minutes). STN: {model_description}. '
        f'Medians unless said; every figure below comes from this one run.\n'
    ]
    out.append(
        "## 1. stn_node compute per 640x480 16UC1 depth frame\n\nThe node's own code without a graph, "
        'median (p90) ms: decode the Image, depth proposals, localization (localization crops + the net), '
        'sampling (the canonical crops), encode (tile + transforms messages).\n'
    )
    for device in dict.fromkeys(d for d, _ in stages):
        out.append(f'On {device}:\n')
        out += stage_table({c: t for (d, c), t in stages.items() if d == device})
        out.append('')
    out.append(
        '## 2. The canonicalization stage beside the alternatives (CPU, ms per frame)\n\n'
        '"ours" is localization + sampling (what learning the transform costs end to end); the OpenCV loop '
        "is `minAreaRect` of each proposal's mask + `warpAffine` (a fixed rule, no learning); kornia "
        'samples the crops from our transforms (the same crops: largest difference shown).\n'
    )
    out.append(
        '| crops | ours (STN + sampling) | ours: sampling only | OpenCV minAreaRect + warpAffine loop | '
        'kornia warp_affine | kornia warp_perspective | ours / OpenCV loop | kornia vs ours, max abs diff (m) |'
    )
    out.append('|---:|---:|---:|---:|---:|---:|---:|---:|')
    for count, t in alternatives.items():
        out.append(
            f'| {count} | {median(t["ours"]):.2f} | {median(t["ours sampling"]):.2f} | '
            f'{median(t["opencv loop"]):.2f} | '
            f'{median(t["kornia warp_affine"]):.2f} | {median(t["kornia warp_perspective"]):.2f} | '
            f'{median(t["ours"]) / median(t["opencv loop"]):.1f} | {max(t["kornia difference"]):.1e} |'
        )
    out.append('')

    if any(kind == 'pipeline' for kind, _ in phases):
        out += end_to_end_tables(phases, device)
    if sweep:
        out += rate_table(sweep)

    if soak:
        out.append(
            f'## 5. Soak: {soak["camera"]["seconds"] / 60:.1f} minutes at 30 Hz (shared memory, stn_node alone)\n'
        )
        rss = soak['rss_mib']
        warm = [m for t, m in rss if t >= 60.0] or [m for _, m in rss]
        growth = (warm[-1] - warm[0]) / warm[0]
        stats = latency_stats(soak, TRANSFORMS)
        values = diagnostics_of(soak, 'stn_node')
        out.append(
            f'stn_node RSS: {rss[0][1]:.0f} MiB at start, {warm[0]:.0f} MiB after 1 min of warm-up, {warm[-1]:.0f} MiB '
            f'at the end, peak {max(m for _, m in rss):.0f} MiB; growth after warm-up {growth:+.1%} (goal: under 5 %). '
            f'Frames sent {soak["camera"]["published"]}, transforms out {stats["delivered"]:.1%}, dropped by the node '
            f'{counted_after_warm_up(soak, "stn_node", "frames dropped (latest wins)"):.0f} after the warm-up, '
            f'latency p50 {stats["p50"]:.1f} ms / p99 '
            f'{stats["p99"]:.1f} ms. GPU memory allocated at the end: '
            f'{values.get("gpu memory allocated (MiB)", "n/a (CPU)")} MiB.\n'.replace('n/a (CPU) MiB', 'n/a (CPU)')
        )
        out.append('| minute | ' + ' | '.join(f'{t / 60:.0f}' for t, _ in rss[::12]) + ' |')
        out.append('|---|' + '---:|' * len(rss[::12]))
        out.append('| RSS (MiB) | ' + ' | '.join(f'{m:.0f}' for _, m in rss[::12]) + ' |\n')
    if large is not None:
        stats = latency_stats(large, TRANSFORMS)
        received = counted_after_warm_up(large, 'stn_node', 'frames received')
        dropped = counted_after_warm_up(large, 'stn_node', 'frames dropped (latest wins)')
        out.append(
            '## 6. 1280x720 16UC1 at 30 Hz (shared memory, stn_node alone, 16 boxes, proposal_decimation auto)\n\n'
            f'Frames sent {large["camera"]["published"]}; transforms out {stats["delivered"]:.1%} of them after the '
            f'warm-up; dropped by the node {dropped:.0f} of {received:.0f}; latency p50 {stats["p50"]:.1f} ms / p99 '
            f'{stats["p99"]:.1f} ms; stn_node compute '
            f'{number(diagnostics_of(large, "stn_node"), "processing median (ms)"):.1f} ms. '
            'Goal: at least 99 % answered, p99 at most 60 ms.\n'
        )
    if any(kind == 'one process' for kind, _ in phases) or busy is not None:
        out += grasps_tables(phases, busy)
    return '\n'.join(out) + '\n'


if __name__ == '__main__':
    sys.exit(main())
