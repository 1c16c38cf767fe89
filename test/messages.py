"""Messages and bags the tests feed the nodes: stn_node's output for one frame, a small synthetic bag."""

from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image, PointCloud2

from ros_harness import stamped
from stn_ros.bridge.camera_info import camera_info_message
from stn_ros.bridge.image_codec import encode_image
from stn_ros.bridge.mcap_bag import BagWriter
from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.perception.stn.transforms_record import build_record
from stn_ros.sim.prisms.camera_frames import synthetic_frame


def crop_pair(sec: int, crops: int = 2) -> tuple[Image, PointCloud2]:
    """What stn_node publishes for one frame: a 32FC1 tile of ``crops`` 32x32 crops and its record."""
    tile = np.full((32 * crops, 32), 0.7, np.float32)
    tile[:, 12:20] = 0.65  # a bar across each crop: something to grasp
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], crops, axis=0)
    record = build_record(homographies, np.zeros((crops, 4)), 2, np.tile([0, 0, 64, 64], (crops, 1)), (32, 32))
    image = stamped(tile, '32FC1', sec)
    return image, encode_pointcloud(record, header=image.header)


def small_bag(path: Path, topics: dict[str, str], frames: int = 1) -> None:
    """A bag with ``frames`` frames of a synthetic scene on each of ``topics`` (topic: encoding or 'camera_info')."""
    scene = synthetic_frame(1, 0, '16UC1')
    with BagWriter(path) as bag:
        for index in range(frames):
            header = encode_image(scene.depth, '16UC1').header
            header.stamp.sec, header.frame_id = 100 + index, 'cam'
            for topic, kind in topics.items():
                if kind == 'camera_info':
                    bag.write(topic, 'sensor_msgs/msg/CameraInfo', camera_info_message(scene.scene.camera, header), 1)
                else:
                    pixels = scene.depth if kind == '16UC1' else scene.bgr
                    bag.write(topic, 'sensor_msgs/msg/Image', encode_image(pixels, kind, header=header), 2 + index)
