"""A stand-in for an upstream 2D detector (test_detections_topics.py runs it as a process of its own): it reads the
camera and, a little later (as a detector's inference takes time), publishes a ``vision_msgs/Detection2DArray`` with
the image's header. Its boxes depend on the stamp, so a frame paired with another frame's detections shows.

``python test/detector_stand_in.py [--delay S] [--none-from-sec N] --ros-args -r image:=... -r detections:=...``;
images stamped ``N`` s or later get no detections at all.
"""

from __future__ import annotations

import argparse
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, Detection2DArray

from stn_ros.ros.node_runtime import run_node


def boxes_for(sec: int) -> list[tuple[float, float, float, float]]:
    """The (x, y, w, h) boxes, in source pixels, detected in the image stamped ``sec`` s (largest first)."""
    return [(4.0 + sec, 6.0, 40.0, 40.0), (60.0, 20.0 + sec, 30.0, 50.0)]


def detections(header, boxes) -> Detection2DArray:
    msg = Detection2DArray(header=header)
    for x, y, w, h in boxes:
        detection = Detection2D(header=header)
        detection.bbox.center.position.x, detection.bbox.center.position.y = x + w / 2, y + h / 2
        detection.bbox.size_x, detection.bbox.size_y = w, h
        msg.detections.append(detection)
    return msg


def detector_node(delay: float, none_from_sec: int) -> Node:
    node = rclpy.create_node('detector_stand_in')
    publisher = node.create_publisher(Detection2DArray, 'detections', 10)

    def on_image(image: Image) -> None:
        if image.header.stamp.sec >= none_from_sec:
            return
        time.sleep(delay)  # the detector's inference
        publisher.publish(detections(image.header, boxes_for(image.header.stamp.sec)))

    node.create_subscription(Image, 'image', on_image, 10)
    return node


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--delay', type=float, default=0.08, help='seconds from an image to its detections')
    parser.add_argument('--none-from-sec', type=int, default=100, help='images stamped this late get no detections')
    options = parser.parse_args(remove_ros_args(sys.argv)[1:])
    return run_node(lambda: detector_node(options.delay, options.none_from_sec), 'detector_stand_in', sys.argv)


if __name__ == '__main__':
    sys.exit(main())
