"""What the canonicalizer makes of a decoded camera image: a sampling source and a grey view.

============  ==========================  ======================  =====================
encoding      crops are sampled from      tile encoding           grey view (loc net,
                                                                  intensity proposals)
============  ==========================  ======================  =====================
16UC1         depth in metres (mm/1000)   32FC1 metres            metres, no reading 0
32FC1         depth in metres             32FC1 metres            metres, no reading 0
mono8, 8UC1   the image as it came        same as input           grey / 255
mono16        the image as it came        mono16                  grey / 65535
bgr8, 8UC3,   the image as it came        same as input           grey (BT.601) / 255
rgb8, bgra8,                                                      (16UC3: / 65535)
rgba8, 8UC4,
16UC3
============  ==========================  ======================  =====================

Depth "no reading" (0 or NaN in the input) is NaN in the depth source and in the tiles; samples outside
the image are NaN for depth and 0 for intensity. Pure numpy/OpenCV: no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from stn_ros.bridge.image_codec import DEPTH_ENCODINGS, decode_depth_m, decode_image
from stn_ros.perception.visualize import to_bgr8

_TO_BGR = {
    'rgb8': cv2.COLOR_RGB2BGR,
    'bgra8': cv2.COLOR_BGRA2BGR,
    '8UC4': cv2.COLOR_BGRA2BGR,
    'rgba8': cv2.COLOR_RGBA2BGR,
}
_RGB_ORDER = ('rgb8', 'rgba8')  # every other colour encoding is in OpenCV's BGR(A) order
_TO_GREY = {
    (3, False): cv2.COLOR_BGR2GRAY,
    (3, True): cv2.COLOR_RGB2GRAY,
    (4, False): cv2.COLOR_BGRA2GRAY,
    (4, True): cv2.COLOR_RGBA2GRAY,
}


def bt601_grey(pixels: np.ndarray, rgb_order: bool = False) -> np.ndarray:
    """``(H, W)`` grey of ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` pixels, in their own scale.

    Colour is weighted by ITU-R BT.601 luma (OpenCV's ``COLOR_*2GRAY``), channels in BGR(A) order unless
    ``rgb_order``; alpha is dropped. The package's one grey: the localization net and intensity proposals
    both see it. uint8, uint16 and float32 keep their type; other types become float32.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f'image must be (H, W) or (H, W, C) with C in 1, 3, 4, got shape {pixels.shape}')
    if pixels.dtype not in (np.uint8, np.uint16, np.float32):
        pixels = pixels.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_GREY[pixels.shape[2], rgb_order])


@dataclass
class Frame:
    """One decoded camera image, ready for proposals, localization and sampling."""

    pixels: np.ndarray  # (H, W[, C]): depth float32 metres (NaN = no reading) or the image as it came
    encoding: str  # the input encoding
    is_depth: bool
    _grey: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tile_encoding(self) -> str:
        return '32FC1' if self.is_depth else self.encoding

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]

    @property
    def border_value(self) -> float:
        """What samples outside the image read: NaN (no reading) for depth, 0 otherwise."""
        return float('nan') if self.is_depth else 0.0

    def grey(self) -> np.ndarray:
        """``(H, W)`` float32: metres for depth (no reading -> 0), else :func:`bt601_grey` in ``[0, 1]``.

        Computed once per frame (proposals and the localization net share it); do not modify it.
        """
        if self._grey is None:
            if self.is_depth:
                self._grey = np.fmax(self.pixels, np.float32(0))  # NaN -> 0 in one pass (readings are > 0)
            else:
                pixels = bt601_grey(self.pixels, self.encoding in _RGB_ORDER)
                scale = 1.0 / np.iinfo(pixels.dtype).max if pixels.dtype.kind == 'u' else 1.0
                self._grey = pixels.astype(np.float32) * np.float32(scale)
        return self._grey

    def bgr8(self) -> np.ndarray:
        """A bgr8 picture of the frame for display (depth and 16-bit images min-max scaled)."""
        if self.is_depth or self.pixels.dtype != np.uint8:
            return to_bgr8(self.grey() if self.pixels.ndim == 3 else self.pixels)
        pixels = self.pixels
        return cv2.cvtColor(pixels, _TO_BGR[self.encoding]) if self.encoding in _TO_BGR else to_bgr8(pixels)


def decode_frame(msg: Any) -> Frame:
    """Decode a ``sensor_msgs/Image`` into a :class:`Frame` (raises ``ImageDecodeError``)."""
    if msg.encoding in DEPTH_ENCODINGS:
        return Frame(decode_depth_m(msg), msg.encoding, True)
    return Frame(decode_image(msg), msg.encoding, False)
