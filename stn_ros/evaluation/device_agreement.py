"""Do two devices canonicalize and score alike? The CUDA path's check against the CPU's (no rclpy, no ROS).

``stn_node`` samples crops on a CPU with OpenCV from the published ``H`` and on CUDA with torch's
``grid_sample``; the localization net and the GQ-CNN run on either. :func:`canonicalizer_agreement` runs the
same STN weights on the same frames on both devices, for every encoding the node reads and every transform
family, and reports how far the transforms and the crops differ; :func:`gqcnn_agreement` does the same for
the GQ-CNN's quality (against a float64 reference). ``test/test_device_agreement.py`` (on every device) and
``benchmarks/gpu_check.py`` (a GPU machine without ROS) run them; messages are duck-typed, so nothing here
needs ``sensor_msgs``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import encode_image
from stn_ros.core import FAMILIES, SpatialTransformer, inference_module
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.stn.canonicalizer import Canonicalizer
from stn_ros.perception.stn.frame import decode_frame

ENCODINGS = ('16UC1', '32FC1', 'mono8', 'mono16', 'bgr8', 'rgb8', 'bgra8', 'rgba8')
"""The encodings the agreement covers: depth in mm and m, grey, colour with and without alpha."""
CPU = torch.device('cpu')
TOLERANCES = {
    'homography_px': 0.01,
    'depth_m': 0.001,
    'grey_levels': 1.0,
    'nan_fraction': 1e-3,
    'quality': 1e-4,
}
"""Agreement asked for, with CUDA in IEEE fp32 (TF32 off: :func:`stn_ros.core.use_ieee_fp32`).

- ``homography_px``: where the two ``H`` put a crop pixel, in source pixels. In fp32 the localization nets
  differ by float rounding (~1e-6 relative), which moves a 60-pixel ROI's transform by ~1e-4 px; 0.01 leaves
  100x for reduction order and cuDNN's algorithms. TF32 (~1e-3) moved it by 0.025 px on an H200.
- ``depth_m``: depth crops, metres. A crop pixel's depth moves by the depth step it sits on times how far its
  sampling point moved: the frames' largest step (0.1 m, block to table) times ``homography_px`` is 1 mm.
  The samplers themselves agree to 2e-6 m (grid_sample against OpenCV's remap, measured on the CPU).
- ``grey_levels``: 8- and 16-bit crops are rounded to integers, so a value on a rounding edge may land one
  level apart.
- ``nan_fraction``: crop pixels NaN on one device only, as a fraction of the crop's pixels. A sampling point
  next to a hole (no reading) is NaN on the side of the boundary it lands; one that moved by float rounding
  can cross it. Expected ~1e-5 (an H200 with TF32 saw 1 of 131,072 pixels); 1e-3 allows one such pixel in
  an agreement's 1,152 while a hole's mask shifted by a pixel (~4 % of pixels with 1 % holes) fails.
- ``quality``: the GQ-CNN's quality (0..1) against a float64 CPU reference. fp32 rounding and cuDNN's
  algorithm choice give ~1e-6..1e-5; TF32 gives ~1e-3, 10x beyond this.
"""


class DuckImage(SimpleNamespace):
    """A ``sensor_msgs/Image`` stand-in (the codecs read attributes only)."""


@dataclass
class Agreement:
    """How far ``other`` is from ``reference`` for one encoding and family."""

    encoding: str
    family: str
    homography_px: float  # the largest distance between where the two H put a crop pixel
    crops: float  # the largest crop difference (metres for depth, grey levels otherwise), NaN-aware
    nan_mismatch: int  # crop pixels NaN on one device only
    pixels: int  # crop pixels compared

    def ok(self) -> bool:
        """Within :data:`TOLERANCES`."""
        limit = TOLERANCES['depth_m'] if self.encoding in ('16UC1', '32FC1') else TOLERANCES['grey_levels']
        nan_ok = self.nan_mismatch <= TOLERANCES['nan_fraction'] * self.pixels
        return self.homography_px <= TOLERANCES['homography_px'] and self.crops <= limit and nan_ok


def agreement_frame(encoding: str, height: int = 120, width: int = 160, seed: int = 0) -> tuple[object, np.ndarray]:
    """A duck-typed Image of smooth content (a tilted table with two blocks for depth) and two ROIs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    smooth = 127.5 + 40 * (np.sin(0.05 * cols + 0.03 * rows) + np.sin(0.04 * rows - 0.02 * cols + 1.0))
    if encoding in ('16UC1', '32FC1'):
        depth = 0.7 + 0.0003 * rows
        depth[30:70, 40:80] -= 0.05
        depth[60:100, 100:140] -= 0.08 + 0.0005 * (cols[60:100, 100:140] - 100)
        depth[rng.random(depth.shape) < 0.01] = 0.0  # no reading
        image = np.round(depth * 1000).astype(np.uint16) if encoding == '16UC1' else depth.astype(np.float32)
    else:
        channels = {'mono8': 1, 'mono16': 1, 'bgr8': 3, 'rgb8': 3, 'bgra8': 4, 'rgba8': 4}[encoding]
        planes = [np.roll(smooth, 7 * c, axis=1) for c in range(channels)]
        image = np.stack(planes, axis=-1) if channels > 1 else planes[0]
        image = (image * 257).astype(np.uint16) if encoding == 'mono16' else image.astype(np.uint8)
    rois = np.array([[30, 20, 60, 60], [90, 50, 56, 60]], np.float32)
    return encode_image(image, encoding, msg_cls=DuckImage), rois


def perturbed_stn(family: str, seed: int = 0) -> SpatialTransformer:
    """An STN of ``family`` whose transforms are away from the identity (a trained net's are); the same weights
    for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stn = SpatialTransformer(family, output_size=(24, 24))
    with torch.no_grad():
        regressor = stn.localization.regressor
        regressor.weight.copy_(0.01 * torch.randn(regressor.weight.shape, generator=generator))
        regressor.bias.add_(0.1 * torch.randn(regressor.bias.shape, generator=generator))
    return stn


def canonicalizer_agreement(
    other: torch.device,
    reference: torch.device = CPU,
    encodings: tuple[str, ...] = ENCODINGS,
    families: tuple[str, ...] = tuple(FAMILIES),
    other_sampler: str = 'auto',
) -> list[Agreement]:
    """One :class:`Agreement` per encoding and family: the same perturbed STN on ``reference`` (its default
    sampler) and ``other`` (``other_sampler``: :class:`~stn_ros.perception.stn.canonicalizer.Canonicalizer`'s)."""
    out = []
    camera = PinholeCamera(150.0, 150.0, 79.5, 59.5, 160, 120)
    for family in families:
        stn = perturbed_stn(family)
        ours = Canonicalizer(copy.deepcopy(stn), reference, (24, 24))
        theirs = Canonicalizer(stn, other, (24, 24), sampler=other_sampler)
        for encoding in encodings:
            msg, rois = agreement_frame(encoding)
            frame = decode_frame(msg)
            a = ours.process(frame, rois, camera if frame.is_depth else None)
            b = theirs.process(frame, rois, camera if frame.is_depth else None)
            out.append(Agreement(encoding, family, homography_distance(a.homographies, b.homographies, (24, 24)),
                                 *crop_difference(a.crops, b.crops)))  # fmt: skip
    return out


def homography_distance(first: np.ndarray, second: np.ndarray, size: tuple[int, int]) -> float:
    """The largest distance in source pixels between where ``first`` and ``second`` ``(N, 3, 3)`` put the
    corners and centre of a crop of ``size`` ``(h, w)``."""
    height, width = size
    points = np.array(
        [[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1], [width / 2, height / 2, 1]],
        np.float64,
    )
    mapped = [points @ np.asarray(h, np.float64).transpose(0, 2, 1) for h in (first, second)]
    a, b = (m[..., :2] / m[..., 2:] for m in mapped)
    return float(np.abs(a - b).max(initial=0.0))


def crop_difference(first: np.ndarray, second: np.ndarray) -> tuple[float, int, int]:
    """The largest difference of two devices' crops where both have a value, how many values only one has
    (NaN on the other), and how many values were compared."""
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(a - b)[both].max(initial=0.0)), int((np.isfinite(a) != np.isfinite(b)).sum()), a.size


def gqcnn_agreement(model: GQCNN, other: torch.device) -> float:
    """The largest difference over 64 random crops of ``model``'s float32 quality on ``other``, set up for
    inference as the node does (:func:`~stn_ros.core.inference_module`), from its float64 quality on the CPU."""
    generator = torch.Generator().manual_seed(0)
    images = 0.01 * torch.randn(64, 1, 32, 32, generator=generator)
    z = 0.5 + 0.3 * torch.rand(64, generator=generator)
    with torch.no_grad():
        expected = copy.deepcopy(model).double().eval().quality(images.double(), z.double())
        actual = inference_module(copy.deepcopy(model).float(), other).quality(images.to(other), z.to(other))
    return float((expected - actual.cpu().double()).abs().max())
