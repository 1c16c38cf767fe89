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
from stn_ros.perception.visualize import (
    crop_quadrilaterals,
    crop_strip,
    draw_grasps,
    draw_quadrilaterals,
    stack_panels,
)
from stn_ros.ros.child_processes import ProcessGroup, node_command
from stn_ros.ros.loopback_env import apply_loopback_ros_env
from stn_ros.sim.physics.world import import_pybullet
from stn_ros.sim.prisms.scenes import MAX_VIEW_TILT_DEG

SOURCE_NAMES = {
    'physics': 'pybullet mesh scenes (validation meshes random_urdfs 400-499, procedural shapes; settled by physics)',
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


def start_pipeline(
    device: str, seed: int, log_dir: Path, source: str = 'prisms', tilt_deg: float = 0.0
) -> ProcessGroup:
    """The three node processes, each logging to ``log_dir/<executable>.log``; the camera tilted ``tilt_deg`` from
    vertical (0: the source's own camera)."""
    group = ProcessGroup()
    try:
        for executable, remaps in NODES:
            params = (
                [f'seed:={seed}', f'source:={source}', f'tilt_deg:={float(tilt_deg)!r}']
                if executable == 'synthetic_camera'
                else [f'device:={device}']
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


ZOOM_SIZE = (640, 480)  # the scene panel: the objects' part of the frame, enlarged to this size (width, height)
STRIP_SCALE = 3  # each 32x32 crop is shown 96x96


def zoom_window(points: np.ndarray, frame_size: tuple[int, int], margin: float = 40.0) -> tuple[float, float, float]:
    """``(x0, y0, scale)``: the part of a frame of ``(height, width)`` around ``points`` ``(N, 2)`` (source pixels,
    with ``margin`` pixels around them) with the aspect of :data:`ZOOM_SIZE`, enlarged to it; at most the whole
    frame, at least a third of it (an enlargement of 3)."""
    height, width = frame_size
    out_w, out_h = ZOOM_SIZE
    finite = points[np.isfinite(points).all(axis=1)]
    if not len(finite):
        return 0.0, 0.0, out_w / width
    low, high = finite.min(axis=0) - margin, finite.max(axis=0) + margin
    view_w = min(max(high[0] - low[0], (high[1] - low[1]) * out_w / out_h, width / 3), width, height * out_w / out_h)
    view_h = view_w * out_h / out_w
    centre = (low + high) / 2
    x0 = float(np.clip(centre[0] - view_w / 2, 0, width - view_w))
    y0 = float(np.clip(centre[1] - view_h / 2, 0, height - view_h))
    return x0, y0, out_w / view_w


def demo_picture(image: np.ndarray, record, grasps: np.ndarray, crops: np.ndarray, fx: float) -> np.ndarray:
    """The demo's picture of one frame: above, the scene (``image`` bgr8) zoomed to its objects, with each object's
    grasp of ``~/grasps`` (``grasps``, decoded) coloured by its quality (red 0 -> green 1) and labelled with it, the
    sampling quadrilateral of the crop it came from, and the best grasp in white, marked ``best``; below, every
    crop of the tile (``crops``, ``record`` its transforms record), labelled ``object.hypothesis``, the chosen
    ones with their quality."""
    count = len(grasps)
    best = int(np.argmax(grasps['quality'])) if count else None
    crop_of = {(int(o), int(h)): i for i, (o, h) in enumerate(zip(record.object_ids, record.hypotheses, strict=True))}
    chosen = [crop_of.get((int(o), int(h))) for o, h in zip(grasps['object_id'], grasps['hypothesis'], strict=True)]
    quads = crop_quadrilaterals(record.homographies[[c for c in chosen if c is not None]], crops.shape[1:3])
    centres = np.stack((grasps['u'], grasps['v']), 1).astype(np.float64)
    x0, y0, scale = zoom_window(np.concatenate([quads.reshape(-1, 2), centres]), image.shape[:2])
    to_view = np.array([[scale, 0, (0.5 - x0) * scale - 0.5], [0, scale, (0.5 - y0) * scale - 0.5]])
    view = cv2.warpAffine(image, to_view, ZOOM_SIZE, flags=cv2.INTER_LINEAR)
    view_point = lambda p: p @ to_view[:, :2].T + to_view[:, 2]  # noqa: E731
    scene = draw_quadrilaterals(view, view_point(quads), color=(200, 200, 200), thickness=1)
    widths_px = grasps['width'] * fx / np.where(grasps['z'] > 0, grasps['z'], np.nan) * scale
    centres_view = view_point(centres)
    draw_grasps(scene, centres_view, grasps['angle'], widths_px, grasps['quality'], best)
    for index, ((u, v), quality) in enumerate(zip(centres_view, grasps['quality'], strict=True)):
        if np.isfinite(u) and np.isfinite(v):
            label = f'best {quality:.2f}' if index == best else f'{quality:.2f}'
            colour = (255, 255, 255) if index == best else (0, int(255 * quality), int(255 * (1 - quality)))
            origin = (int(u) + 10, int(v) - 12)
            cv2.putText(scene, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(scene, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
    quality_of = {c: float(q) for c, q in zip(chosen, grasps['quality'], strict=True) if c is not None}
    labels = [
        f'{o}.{h}' + (f' q={quality_of[i]:.2f}' if i in quality_of else '')
        for i, (o, h) in enumerate(zip(record.object_ids.tolist(), record.hypotheses.tolist(), strict=True))
    ]
    return stack_panels(scene, crop_strip(crops, scale=STRIP_SCALE, labels=labels, max_width=scene.shape[1]))


def view_text(tilt_deg: float) -> str:
    """How the demo's camera looks at the table."""
    if tilt_deg > 0:
        return f'tilted {tilt_deg:g} deg from vertical (random azimuth and roll per scene)'
    return "the source's own view (looking down)"


def label_view(picture: np.ndarray, text: str) -> None:
    """Write ``text`` in the top-left corner of ``picture`` (bgr8, in place), legible on any background."""
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(picture, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, thickness, cv2.LINE_AA)


def run(args: argparse.Namespace) -> int:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from stn_ros.bridge.image_codec import decode_image
    from stn_ros.bridge.pointcloud_codec import decode_pointcloud
    from stn_ros.perception.stn.transforms_record import parse_record

    key = lambda msg: (msg.header.stamp.sec, msg.header.stamp.nanosec)  # noqa: E731
    received: dict[str, dict] = {name: {} for name in ('image', 'tile', 'record', 'grasps', 'best')}
    arrival: dict[tuple, float] = {}
    info: list = []
    source = scene_source(args.source)
    pipeline = start_pipeline(args.device, args.seed, args.output.parent / 'demo_logs', source, args.tilt_deg)
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
        print(f'scenes: {SOURCE_NAMES[source]}; camera: {view_text(args.tilt_deg)}', flush=True)
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
        # The picture: the frame with the most grasps (objects) of the run, the latest of those.
        stamp = max(complete, key=lambda s: (received['grasps'][s].width, s))  # one row: width = points
        image = decode_image(received['image'][stamp])
        record = parse_record(decode_pointcloud(received['record'][stamp]))
        grasps = decode_pointcloud(received['grasps'][stamp])
        tile = decode_image(received['tile'][stamp])
        crop_count = len(record.homographies)  # K crops per object
        crops = tile.reshape(crop_count, -1, tile.shape[1]) if crop_count else np.zeros((0, 32, 32), np.float32)
        fx = info[-1].k[0] if info else 525.0
        picture = demo_picture(image, record, grasps, crops, fx)
        if args.tilt_deg > 0:  # say on the picture that this is a tilted view
            label_view(picture, f'camera tilted {args.tilt_deg:g} deg from vertical')
        args.output.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.output), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
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
        print(
            f'picture: {args.output.resolve()} (the frame with the most objects: {len(grasps)} grasps, '
            f'{crop_count} crops)'
        )
        return 0
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()  # Ctrl-C may have shut rclpy down already
        pipeline.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Run synthetic_camera -> stn_node -> grasp_quality_node as separate processes over real ROS 2 '
        'topics (loopback only, shared-memory transport) for a few seconds, then write a picture of the frame '
        "with the most objects (the scene zoomed to them, each object's grasp with its quality and its crop's "
        'quadrilateral, the best grasp in white; below, every rectified crop) and print a summary.'
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
    parser.add_argument(
        '--tilt-deg',
        type=float,
        default=0.0,
        help="camera tilt from vertical, degrees (0 to 65), at a random azimuth and roll per scene, as a robot's head "
        "camera sees a table; the picture says so. 0: the source's own camera, looking down (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.tilt_deg <= MAX_VIEW_TILT_DEG:
        parser.error(f'--tilt-deg must be in [0, {MAX_VIEW_TILT_DEG:g}] degrees, got {args.tilt_deg:g}')
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
