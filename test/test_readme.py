"""The README's consumer snippet reads a real transforms record correctly."""

import re
from pathlib import Path

import numpy as np
import torch

from stn_ros.bridge.pointcloud_codec import encode_pointcloud
from stn_ros.perception.stn.canonicalizer import Canonicalizer, identity_model
from stn_ros.perception.stn.frame import Frame

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_consumer_snippet_reads_the_record(ros_installed):
    text = README.read_text()
    snippet = re.search(r'<!-- consumer-snippet -->\s*```python\n(.*?)```', text, re.S).group(1)
    assert len(snippet.strip().splitlines()) <= 12
    namespace = {}
    exec(snippet, namespace)
    frame = Frame(np.full((60, 80), 0.5, np.float32), '32FC1', True)
    rois = np.array([[5, 5, 30, 30], [40, 10, 20, 40]], np.float32)
    result = Canonicalizer(identity_model(), torch.device('cpu'), (32, 32)).process(frame, rois)
    points, homographies = namespace['read_transforms'](encode_pointcloud(result.record))
    np.testing.assert_array_equal(homographies, result.transforms.homographies.numpy())
    np.testing.assert_array_equal(points['roi_w'], [30, 20])
