"""The two ends of the end-to-end benchmark, each run as its own process by perception_benchmark.py.

``camera``: publishes 640x480 ``16UC1`` depth frames of N boxes on a table (and a ``camera_info`` with
the same header) at a fixed rate, stamped with the wall clock just before publishing; waits for its
subscribers first. Writes ``--out`` (JSON): how many frames it published and their stamps.

``receiver``: subscribes to topics and records, per message, its stamp and how long after that stamp it
arrived (the same machine's wall clock, so the difference is the latency), and each node's
``/diagnostics`` values with their arrival times. Prints ``ready`` once every topic has a publisher, then runs until
SIGTERM/SIGINT and writes ``--out`` (JSON).

Run inside the loopback ROS environment perception_benchmark.py sets (``stn_ros.ros.loopback_env``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from bench_frames import camera_for, depth_frame_mm
from stn_ros.bridge.image_codec import encode_image

MESSAGE_TYPES = {'image': Image, 'pointcloud': PointCloud2}


def camera_info(header, width: int = 640, height: int = 480) -> CameraInfo:
    camera = camera_for(width, height)
    info = CameraInfo(header=header, width=width, height=height, distortion_model='plumb_bob')
    info.k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    info.p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    return info


def run_camera(args: argparse.Namespace) -> int:
    node = rclpy.create_node('benchmark_camera')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, args.topic, qos)
    info_pub = node.create_publisher(CameraInfo, args.info_topic, qos)
    frames = [encode_image(depth_frame_mm(args.objects, seed, *args.size), '16UC1') for seed in range(8)]
    deadline = time.monotonic() + args.wait_subscribers_s
    while image_pub.get_subscription_count() < args.subscribers and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if image_pub.get_subscription_count() < args.subscribers:
        print(
            f'camera: {image_pub.get_subscription_count()} of {args.subscribers} subscribers after '
            f'{args.wait_subscribers_s} s',
            file=sys.stderr,
        )
        return 1
    period, stamps = 1.0 / args.rate, []
    started = time.monotonic()
    for index in range(int(round(args.seconds * args.rate))):
        delay = started + index * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg = frames[index % len(frames)]
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        msg.header.frame_id = 'camera_depth_optical_frame'
        info_pub.publish(camera_info(msg.header, *args.size))
        image_pub.publish(msg)
        stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
    elapsed = time.monotonic() - started
    Path(args.out).write_text(json.dumps({'published': len(stamps), 'seconds': elapsed, 'stamps': stamps}))
    node.destroy_node()
    return 0


def run_receiver(args: argparse.Namespace) -> int:
    node = rclpy.create_node('benchmark_receiver')
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    arrivals: dict[str, list[tuple[float, float]]] = {}
    diagnostics: dict[str, list[tuple[float, dict[str, str]]]] = {}

    def record(topic):
        arrivals[topic] = []

        def callback(msg):
            now = time.time()
            arrivals[topic].append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, now))

        return callback

    def keep_diagnostics(msg: DiagnosticArray):
        now = time.time()
        for status in msg.status:
            diagnostics.setdefault(status.name, []).append((now, {kv.key: kv.value for kv in status.values}))

    for spec in args.topic:
        topic, kind = spec.rsplit(':', 1)
        node.create_subscription(
            MESSAGE_TYPES[kind], topic, record(topic), QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
    node.create_subscription(DiagnosticArray, '/diagnostics', keep_diagnostics, 10)
    topics = [spec.rsplit(':', 1)[0] for spec in args.topic]
    ready = False
    while not stopping:
        rclpy.spin_once(node, timeout_sec=0.02)
        if not ready and all(node.count_publishers(t) > 0 for t in topics):
            ready = True
            print('ready', flush=True)
    Path(args.out).write_text(json.dumps({'arrivals': arrivals, 'diagnostics': diagnostics}))
    node.destroy_node()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest='role', required=True)
    camera = roles.add_parser('camera', help='publish depth frames at a fixed rate')
    camera.add_argument('--topic', default='/camera/depth')
    camera.add_argument('--info-topic', default='/camera/camera_info')
    camera.add_argument('--rate', type=float, default=30.0, help='frames per second (default: %(default)s)')
    camera.add_argument('--seconds', type=float, default=10.0, help='(default: %(default)s)')
    camera.add_argument('--objects', type=int, default=16, help='boxes per frame (default: %(default)s)')
    camera.add_argument('--size', type=int, nargs=2, default=[640, 480], metavar=('W', 'H'), help='(default: 640 480)')
    camera.add_argument('--subscribers', type=int, default=1, help='wait for this many (default: %(default)s)')
    camera.add_argument('--wait-subscribers-s', type=float, default=30.0, help='(default: %(default)s)')
    receiver = roles.add_parser('receiver', help='record arrival times until SIGTERM')
    receiver.add_argument(
        '--topic', action='append', required=True, help='TOPIC:image or TOPIC:pointcloud (repeatable)'
    )
    for role in (camera, receiver):
        role.add_argument('--out', required=True, help='JSON file to write the record to')
    args = parser.parse_args(argv)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        return run_camera(args) if args.role == 'camera' else run_receiver(args)
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
