"""Pure compute: transform families, the Spatial Transformer, samplers, crops, devices (no rclpy)."""

from stn_ros.core.checkpoint import CheckpointError, load_spatial_transformer, save_spatial_transformer
from stn_ros.core.coords import ALIGN_CORNERS, PADDING_MODE
from stn_ros.core.crops import (
    CropTransforms,
    canonicalize_crops,
    canonicalize_crops_opencv,
    check_roi_sizes,
    crop_transforms,
    localization_crops,
    roi_matrix,
    sample_crops_opencv,
)
from stn_ros.core.device import (
    DEVICE_CHOICES,
    DeviceUnavailableError,
    device_memory_values,
    inference_module,
    resolve_device,
    use_ieee_fp32,
)
from stn_ros.core.families import FAMILIES, TransformFamily, homography_grid, make_family, pixel_homography
from stn_ros.core.localization import LocalizationNet
from stn_ros.core.sampler import remap_opencv, sample_grids, warp_perspective_opencv
from stn_ros.core.spatial_transformer import SpatialTransformer

__all__ = [
    'ALIGN_CORNERS',
    'DEVICE_CHOICES',
    'PADDING_MODE',
    'FAMILIES',
    'CheckpointError',
    'CropTransforms',
    'DeviceUnavailableError',
    'LocalizationNet',
    'device_memory_values',
    'SpatialTransformer',
    'TransformFamily',
    'canonicalize_crops',
    'canonicalize_crops_opencv',
    'check_roi_sizes',
    'crop_transforms',
    'homography_grid',
    'inference_module',
    'load_spatial_transformer',
    'localization_crops',
    'make_family',
    'pixel_homography',
    'remap_opencv',
    'resolve_device',
    'roi_matrix',
    'sample_crops_opencv',
    'sample_grids',
    'save_spatial_transformer',
    'use_ieee_fp32',
    'warp_perspective_opencv',
]
