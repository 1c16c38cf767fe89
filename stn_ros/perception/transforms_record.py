"""The transforms record: one point per canonical crop, in tile order (``~/rectified/transforms``).

Fields of each point (a ``sensor_msgs/PointCloud2`` of height 1, width N):

==================  ========  ===================================================================
field               type      meaning
==================  ========  ===================================================================
x, y, z             float32   crop centre in metres in the camera frame (NaN when depth or
                              camera_info is unknown)
u, v                float32   crop centre in source pixels (col, row)
h00 ... h22         float64   row-major 3x3 ``H``: crop pixel (col, row, 1) -> source pixel, so
                              ``cv2.warpPerspective(source, H, (w, h), flags=cv2.INTER_LINEAR |
                              cv2.WARP_INVERSE_MAP)`` reproduces the crop
family              int32     transform family code (translation 0, attention 1, similarity 2,
                              affine 3, projective 4, tps 5)
roi_x ... roi_h     float32   the region of interest the localization net looked at (source px)
p0 ... p{P-1}       float32   raw STN parameters (normalized coordinates; for TPS the control-point
                              offsets), P = the family's parameter count
==================  ========  ===================================================================

For TPS, ``H`` is the least-squares affine fit of the spline (the exact map is the spline of ``p*``).
Pure numpy: no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H_FIELDS = tuple(f'h{r}{c}' for r in range(3) for c in range(3))
ROI_FIELDS = ('roi_x', 'roi_y', 'roi_w', 'roi_h')


def record_dtype(num_params: int) -> np.dtype:
    """Structured dtype of one transforms-record point for a family with ``num_params`` parameters."""
    fields = [(name, np.float32) for name in ('x', 'y', 'z', 'u', 'v')]
    fields += [(name, np.float64) for name in H_FIELDS]
    fields += [('family', np.int32)] + [(name, np.float32) for name in ROI_FIELDS]
    fields += [(f'p{i}', np.float32) for i in range(num_params)]
    return np.dtype(fields)


def crop_centres(homographies: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Source pixel ``(N, 2)`` of each crop's centre, ``H @ ((w - 1) / 2, (h - 1) / 2, 1)``."""
    height, width = output_size
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0, 1.0])
    mapped = np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3) @ centre
    return mapped[:, :2] / mapped[:, 2:]


def build_record(
    homographies: np.ndarray,
    params: np.ndarray,
    family_code: int,
    rois: np.ndarray,
    output_size: tuple[int, int],
    xyz: np.ndarray | None = None,
) -> np.ndarray:
    """Structured array of ``N`` record points (see the module docstring); ``xyz`` defaults to NaN."""
    homographies = np.asarray(homographies, dtype=np.float64).reshape(-1, 3, 3)
    params = np.asarray(params, dtype=np.float32)
    if params.ndim != 2 or len(params) != len(homographies):
        raise ValueError(f'params must be (N, P) for N = {len(homographies)} crops, got {params.shape}')
    record = np.zeros(len(homographies), dtype=record_dtype(params.shape[1]))
    centres = crop_centres(homographies, output_size)
    record['u'], record['v'] = centres[:, 0], centres[:, 1]
    xyz = np.full((len(record), 3), np.nan, np.float32) if xyz is None else np.asarray(xyz)
    record['x'], record['y'], record['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    for index, name in enumerate(H_FIELDS):
        record[name] = homographies[:, index // 3, index % 3]
    record['family'] = family_code
    for index, name in enumerate(ROI_FIELDS):
        record[name] = np.asarray(rois, dtype=np.float32).reshape(-1, 4)[:, index]
    for index in range(params.shape[1]):
        record[f'p{index}'] = params[:, index]
    return record


@dataclass
class TransformsRecord:
    """A decoded transforms record: arrays in tile order."""

    homographies: np.ndarray  # (N, 3, 3) float64, crop pixel -> source pixel
    centres_uv: np.ndarray  # (N, 2) source pixels
    xyz: np.ndarray  # (N, 3) metres, NaN when unknown
    family: np.ndarray  # (N,) int32
    rois: np.ndarray  # (N, 4) x, y, w, h
    params: np.ndarray  # (N, P)


def parse_record(points: np.ndarray) -> TransformsRecord:
    """Split a structured array (e.g. from ``decode_pointcloud``) into a :class:`TransformsRecord`."""
    names = points.dtype.names or ()
    missing = [n for n in ('x', 'y', 'z', 'u', 'v', 'family', *H_FIELDS, *ROI_FIELDS) if n not in names]
    if missing:
        raise ValueError(f'not a transforms record: fields {missing} are missing')
    stack = lambda fields: np.stack([points[f].astype(np.float64) for f in fields], axis=-1)  # noqa: E731
    params = sorted((n for n in names if n[0] == 'p' and n[1:].isdigit()), key=lambda n: int(n[1:]))
    return TransformsRecord(
        homographies=stack(H_FIELDS).reshape(-1, 3, 3),
        centres_uv=stack(('u', 'v')),
        xyz=stack(('x', 'y', 'z')),
        family=points['family'].astype(np.int32),
        rois=stack(ROI_FIELDS),
        params=stack(params) if params else np.zeros((len(points), 0)),
    )
