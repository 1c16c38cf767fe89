"""The demo: synthetic_camera -> stn_node -> grasp_quality_node as separate processes over real ROS 2
topics (loopback only), for a few seconds; then a picture of what they did and a short summary.

Run by ``bash scripts/demo.sh`` (the README's first command), or ``stn_demo --help``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from stn_ros.core.package_files import package_file
from stn_ros.ros.child_processes import ProcessGroup, node_command
from stn_ros.ros.loopback_env import apply_loopback_ros_env
from stn_ros.sim.physics.world import import_pybullet

SOURCE_NAMES = {
    'physics': 'pybullet mesh scenes (held-out random_urdfs meshes and procedural shapes, settled by physics)',
    'prisms': 'analytic prism scenes',
}
NODES = (  # executable, remappings
    ('synthetic_camera', ['depth:=/camera/depth', 'image:=/camera/image', 'camera_info:=/camera/camera_info']),
    ('stn_node', ['image:=/camera/depth', 'camera_info:=/camera/camera_info']),
    (
        'grasp_quality_node',
        [
            'rectified/image:=/stn_node/rectified/image',
            'rectified/transforms:=/stn_node/rectified/transforms',
            'camera_info:=/camera/camera_info',
        ],
    ),
)


def scene_source(requested: str) -> str:
    """``physics`` (pybullet mesh scenes) if requested, or for ``auto`` with pybullet installed; else ``prisms``."""
    if requested != 'auto':
        return requested
    try:
        import_pybullet()
    except ImportError:
        return 'prisms'
    return 'physics'


def start_pipeline(device: str, seed: int, log_dir: Path, source: str = 'prisms') -> ProcessGroup:
    """The three node processes, each logging to ``log_dir/<executable>.log``."""
    group = ProcessGroup()
    try:
        for executable, remaps in NODES:
            params = (
                [f'seed:={seed}', f'source:={source}'] if executable == 'synthetic_camera' else [f'device:={device}']
            )
            group.start(executable, node_command(executable, params, remaps), log=log_dir / f'{executable}.log')
    except BaseException:
        group.stop()
        raise
    return group


def shipped_models() -> str:
    """Which default weights the nodes load (the untrained fall-backs are said, not hidden)."""
    stn = package_file('weights', 'grasp_stn.pt')
    gqcnn = package_file('weights', 'gqcnn.pt')
    return (
        f'grasp STN {"trained (" + stn.name + ")" if stn.is_file() else "untrained (identity: each crop is its ROI)"}, '
        f'GQ-CNN {"trained (" + gqcnn.name + ")" if gqcnn.is_file() else "untrained (qualities are meaningless)"}'
    )


def run(args: argparse.Namespace) -> int:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from stn_ros.bridge.image_codec import decode_image
    from stn_ros.bridge.pointcloud_codec import decode_pointcloud
    from stn_ros.perception.stn.transforms_record import parse_record
    from stn_ros.perception.visualize import (
        crop_quadrilaterals,
        crop_strip,
        draw_grasps,
        draw_quadrilaterals,
        stack_panels,
    )

    key = lambda msg: (msg.header.stamp.sec, msg.header.stamp.nanosec)  # noqa: E731
    received: dict[str, dict] = {name: {} for name in ('image', 'tile', 'record', 'grasps', 'best')}
    arrival: dict[tuple, float] = {}
    info: list = []
    source = scene_source(args.source)
    pipeline = start_pipeline(args.device, args.seed, args.output.parent / 'demo_logs', source)
    rclpy.init()
    probe = rclpy.create_node('stn_demo')
    try:

        def keep(name):
            def store(msg):
                received[name][key(msg)] = msg
                if name == 'grasps':
                    arrival[key(msg)] = time.time()

            return store

        probe.create_subscription(Image, '/camera/image', keep('image'), 5)
        probe.create_subscription(CameraInfo, '/camera/camera_info', info.append, 5)
        probe.create_subscription(Image, '/stn_node/rectified/image', keep('tile'), 10)
        probe.create_subscription(PointCloud2, '/stn_node/rectified/transforms', keep('record'), 10)
        probe.create_subscription(PointCloud2, '/grasp_quality_node/grasps', keep('grasps'), 10)
        probe.create_subscription(PoseStamped, '/grasp_quality_node/best_grasp', keep('best'), 10)
        started = time.monotonic()
        first_grasps = None
        print(
            f'demo: 3 nodes started (loopback, ROS_DOMAIN_ID={os.environ["ROS_DOMAIN_ID"]}); running '
            f'{args.duration:.0f} s after the first grasps...',
            flush=True,
        )
        print(f'models: {shipped_models()}', flush=True)
        print(f'scenes: {SOURCE_NAMES[source]}', flush=True)
        while time.monotonic() - started < args.timeout:
            rclpy.spin_once(probe, timeout_sec=0.05)
            pipeline.check_alive()
            if first_grasps is None and received['grasps']:
                first_grasps = time.monotonic()
            if first_grasps is not None and time.monotonic() - first_grasps >= args.duration:
                break
        complete = [
            s
            for s in received['grasps']
            if s in received['image'] and s in received['record'] and s in received['tile']
        ]
        if not complete:
            print(
                f'demo: no grasps within {args.timeout:.0f} s; node logs in {args.output.parent / "demo_logs"}',
                file=sys.stderr,
            )
            return 1
        stamp = complete[-1]
        image = decode_image(received['image'][stamp])
        record = parse_record(decode_pointcloud(received['record'][stamp]))
        grasps = decode_pointcloud(received['grasps'][stamp])
        tile_msg = received['tile'][stamp]
        tile = decode_image(tile_msg)
        count, crop_count = len(grasps), len(record.homographies)  # a grasp per object; K crops per object
        crops = tile.reshape(crop_count, -1, tile.shape[1]) if crop_count else np.zeros((0, 32, 32), np.float32)
        best = int(np.argmax(grasps['quality'])) if count else None
        fx = info[-1].k[0] if info else 525.0
        widths_px = grasps['width'] * fx / np.where(grasps['z'] > 0, grasps['z'], np.nan)
        scene = draw_quadrilaterals(image, crop_quadrilaterals(record.homographies, crops.shape[1:3]))
        draw_grasps(scene, np.stack((grasps['u'], grasps['v']), 1), grasps['angle'], widths_px, grasps['quality'], best)
        chosen = {
            (int(o), int(h)): float(q)
            for o, h, q in zip(grasps['object_id'], grasps['hypothesis'], grasps['quality'], strict=True)
        }
        labels = [  # object.hypothesis, and the quality of the crop each object's grasp came from
            f'{o}.{h}' + (f' q={chosen[(o, h)]:.2f}' if (o, h) in chosen else '')
            for o, h in zip(record.object_ids.tolist(), record.hypotheses.tolist(), strict=True)
        ]
        picture = stack_panels(scene, crop_strip(crops, scale=4, labels=labels, max_width=scene.shape[1]))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.output), picture)
        latencies = [(arrival[s] - (s[0] + s[1] * 1e-9)) * 1e3 for s in received['grasps'] if s in arrival]
        crops_per_frame = [received['record'][s].width for s in received['record']]
        print(
            f'frames with grasps: {len(received["grasps"])} (camera frames seen: {len(received["image"])}); '
            f'crops per frame: median {statistics.median(crops_per_frame):.0f}'
        )
        print(
            f'latency camera stamp -> grasps received: median {statistics.median(latencies):.1f} ms, '
            f'max {max(latencies):.1f} ms'
        )
        if not received['best']:
            print('best grasp: none reached the quality threshold (grasp_quality_node quality_threshold)')
        else:
            best_stamp = max(received['best'])
            pose, p = received['best'][best_stamp], received['best'][best_stamp].pose.position
            of_frame = decode_pointcloud(received['grasps'][best_stamp]) if best_stamp in received['grasps'] else None
            quality = f'quality {of_frame["quality"].max():.2f} ' if of_frame is not None and len(of_frame) else ''
            angle = np.degrees(of_frame['angle'][np.argmax(of_frame['quality'])]) if quality else float('nan')
            print(
                f'best grasp (latest frame that had one): {quality}at ({p.x:+.3f}, {p.y:+.3f}, {p.z:.3f}) m in '
                f'{pose.header.frame_id}, axis {angle:+.0f} deg in the image; '
                f'{len(received["best"])} of {len(received["grasps"])} frames had a grasp above the threshold'
            )
        print(f'picture: {args.output.resolve()}')
        return 0
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()  # Ctrl-C may have shut rclpy down already
        pipeline.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Run synthetic_camera -> stn_node -> grasp_quality_node as separate processes over real ROS 2 '
        'topics (loopback only, shared-memory transport) for a few seconds, then write a picture of '
        "the scene with each crop's quadrilateral and the grasps, and the rectified crops with their "
        'qualities, and print a summary.'
    )
    parser.add_argument(
        '--duration', type=float, default=6.0, help='seconds to run after the first grasps (default: %(default)s)'
    )
    parser.add_argument(
        '--timeout', type=float, default=90.0, help='give up after this many seconds (default: %(default)s)'
    )
    parser.add_argument('--output', type=Path, default=Path('out/demo.png'), help='the picture (default: %(default)s)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic scenes (default: %(default)s)')
    parser.add_argument(
        '--source',
        choices=('auto', 'prisms', 'physics'),
        default='auto',
        help='scenes: pybullet mesh scenes (physics), analytic prisms, or auto: physics when pybullet is '
        'installed (default: %(default)s)',
    )
    args = parser.parse_args(argv)
    apply_loopback_ros_env()
    from rclpy.executors import ExternalShutdownException

    try:
        return run(args)
    except (KeyboardInterrupt, ExternalShutdownException):  # which one depends on where Ctrl-C lands
        print('demo: interrupted; all nodes stopped', file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f'demo: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
