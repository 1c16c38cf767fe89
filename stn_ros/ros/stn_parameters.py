"""``stn_node``'s parameters (:class:`~stn_ros.ros.parameter_specs.ParameterSpec` table) and the check of values that
do not go together. No rclpy: ``stn_replay`` and the evaluation read them without importing the node.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from stn_ros.perception.stn.proposals import check_rois_inside, parse_rois
from stn_ros.perception.stn.steps import proposal_config
from stn_ros.ros.parameter_specs import (
    GRIPPER_PARAMETERS,
    INFERENCE_BACKEND,
    TORCH_THREADS,
    ParameterSpec,
    check_backend_device,
    device_string,
    gripper_from,
    one_of,
)

CROP_SOURCES = ('full_frame', 'fixed_rois', 'proposals', 'detections')


def _output_size(value: Any) -> tuple[int, int]:
    value = list(value) if isinstance(value, (list, tuple, array.array)) else value
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024 for v in value)
    ):
        raise ValueError(f'must be [height, width], integers in [1, 1024]; got {value!r}')
    return int(value[0]), int(value[1])


def _rois(value: Any) -> np.ndarray:
    return parse_rois([] if value is None else list(value))


PARAMETERS = [
    ParameterSpec(
        'device',
        'auto',
        'where the STN runs: auto (CUDA if available), cpu, cuda, cuda:N',
        device_string,
        read_only=True,
    ),
    ParameterSpec('weights', '', 'STN checkpoint path; empty = the shipped default', read_only=True),
    ParameterSpec('output_size', [32, 32], '[height, width] of each canonical crop', _output_size),
    ParameterSpec(
        'crop_source',
        'proposals',
        'full_frame, fixed_rois, proposals or detections',
        one_of(*CROP_SOURCES),
        read_only=True,
    ),
    ParameterSpec('rois', None, 'fixed ROIs, flat [x, y, w, h, ...] in source pixels (fixed_rois)', _rois),
    ParameterSpec.integer('max_crops', 16, 'at most this many objects per frame (the largest are kept)', 1, 256),
    ParameterSpec.integer(
        'hypotheses_per_object',
        4,
        "crops per object: its best-scored STN hypotheses (at most the model's count); the tile has "
        'objects x this many crops',
        1,
        8,
    ),
    ParameterSpec.integer(
        'max_tile_pixels',
        1_048_576,
        'bound on max_crops x hypotheses_per_object x output height x width (a 4 MiB tile at 4 bytes a pixel): '
        'what 30 Hz allows',
        1024,
        67_108_864,
    ),
    ParameterSpec.integer('proposal_min_area', 60, 'proposals: smallest object, pixels', 1, 10_000_000),
    ParameterSpec.integer('proposal_max_area', 60000, 'proposals: largest object, pixels', 1, 10_000_000),
    ParameterSpec.number(
        'proposal_margin', 0.15, 'proposals: margin around each object, fraction of its size', 0.0, 2.0
    ),
    ParameterSpec.number(
        'table_threshold', 0.005, 'depth proposals: height above the table plane that is object, m', 0.0005, 1.0
    ),
    ParameterSpec.integer(
        'proposal_decimation',
        0,
        'depth proposals on every k-th pixel and row (crops still sampled at full resolution); 0: auto, '
        'k = round(width / 640), so 1280x720 costs what 640x360 does',
        0,
        16,
    ),
    ParameterSpec(
        'view_canonicalization',
        True,
        'depth proposals with camera_info: crop each object as a camera looking along the table normal sees it '
        '(projective H, depth along the normal, nx ny nz in the record); false: crops along the optical axis',
    ),
    ParameterSpec('publish_debug_image', False, 'publish ~/debug/image even when nobody subscribes to it'),
    ParameterSpec(
        'lazy',
        True,
        'subscribe to the camera only while someone listens to ~/rectified/image, ~/rectified/transforms or '
        '~/debug/image (as image_pipeline does); false: always',
    ),
    ParameterSpec(
        'shed_load',
        True,
        'when frames wait, shed work (fewer hypotheses per object, then fewer objects) and restore it when the node '
        'keeps up; said in /diagnostics (shedding, frames shed) and in each record (shed_level); false: full work',
    ),
    ParameterSpec.integer(
        'shed_restore_frames',
        30,
        'shed_load: frames that keep up (done within half the camera period) before one step of work is given back',
        1,
        10_000,
    ),
    ParameterSpec.number('diagnostics_period', 1.0, 'seconds between /diagnostics messages', 0.1, 60.0, read_only=True),
    TORCH_THREADS,
    INFERENCE_BACKEND,
    *GRIPPER_PARAMETERS,
]


def check_together(values: dict[str, Any], frame_size: tuple[int, int] | None = None) -> None:
    """Values that are each valid but do not go together (or not with frames of ``frame_size``, the last
    frame's ``(height, width)``) raise ValueError with the reason."""
    proposal_config(values).validate()
    gripper_from(values)
    check_backend_device(values)
    crops = values['max_crops'] * values['hypotheses_per_object']
    pixels = crops * values['output_size'][0] * values['output_size'][1]
    if pixels > values['max_tile_pixels']:
        raise ValueError(
            f'max_crops x hypotheses_per_object x output_size = {values["max_crops"]} x '
            f'{values["hypotheses_per_object"]} x {values["output_size"][0]} x {values["output_size"][1]} = '
            f'{pixels} pixels a tile, above max_tile_pixels {values["max_tile_pixels"]}: fewer or smaller '
            'crops, or raise max_tile_pixels knowingly'
        )
    if values['crop_source'] == 'fixed_rois' and values['rois'] is not None and frame_size is not None:
        try:
            check_rois_inside(values['rois'], *frame_size)
        except ValueError as exc:
            raise ValueError(f'rois: {exc} (the size of the last frame)') from None
