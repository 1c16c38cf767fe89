"""The transforms record: one point per canonical crop, in tile order (``~/rectified/transforms``).

Tile order is object-major: each object's (ROI's) crops are its best-scored STN hypotheses in descending
score, object 0's first, then object 1's, ...; with one hypothesis per object, one crop per object.

Fields of each point (a ``sensor_msgs/PointCloud2`` of height 1, width N):

==================  ========  ===================================================================
field               type      meaning
==================  ========  ===================================================================
x, y, z             float32   crop centre in metres in the camera frame: the point seen at it (NaN when
                              depth or camera_info is unknown); with view canonicalization the grasp
                              point on the object's top (its top's depth where the centre has no reading)
u, v                float32   crop centre in source pixels (col, row)
h00 ... h22         float64   row-major 3x3 ``H``: crop pixel (col, row, 1) -> source pixel, so
                              ``cv2.warpPerspective(source, H, (w, h), flags=cv2.INTER_LINEAR |
                              cv2.WARP_INVERSE_MAP)`` reproduces the crop
family              int32     transform family code (translation 0, attention 1, similarity 2,
                              affine 3, projective 4, tps 5)
roi_x ... roi_h     float32   the region of interest the localization net looked at (source px); view-
                              canonicalized, the square it looked at in the view's pixels (the view:
                              the camera turned to look along ``n``; ``K R K^-1`` maps it to the source)
object_id           int32     the crop's object: its index in the frame (0, 1, ... in tile order)
hypothesis          int32     the crop's rank among its object's hypotheses: 0 = the best-scored
score               float32   the hypothesis' probability among the model's K hypotheses (softmax of
                              the localization net's scores); 1 for a single-hypothesis model
shed_level          uint8     the node's load-shedding level for this frame: 0 = full work, more =
                              work shed (``stn_ros.perception.load_shedding``); the same in every
                              crop of a frame
hypotheses_limit    uint8     the hypotheses per object asked for this frame (the configured
                              ``hypotheses_per_object`` capped at the model's K, fewer when shed);
                              0 = not said (an older record)
objects_limit       uint16    at most this many objects were taken in this frame (``max_crops``,
                              fewer when shed): a frame with this many objects may have had more;
                              0 = not said
nx, ny, nz          float32   the unit normal the crops were canonicalized to, in the camera frame,
                              from the camera towards the table: the approach direction; NaN when the
                              crops are not view-canonicalized (no table plane, no camera_info, an
                              intensity image, or ``view_canonicalization`` off)
p0 ... p{P-1}       float32   raw STN parameters (normalized coordinates; for TPS the control-point
                              offsets), P = the family's parameter count
==================  ========  ===================================================================

For TPS, ``H`` is the least-squares affine fit of the spline (the exact map is the spline of ``p*``).

View-canonicalized depth crops (``nx, ny, nz`` finite) look along the normal ``n``: ``H`` is projective (the view's
``K R K^-1`` composed with the crop's ROI and STN maps) and each crop pixel holds metres along ``n``, not along the
optical axis. A consumer with the camera's ``K`` reproduces a crop as

.. code-block:: python

    crop = cv2.warpPerspective(depth_m, H, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    p = H @ np.stack((cols.ravel(), rows.ravel(), np.ones(w * h)))
    crop *= (n @ np.linalg.inv(K) @ (p / p[2])).reshape(h, w)  # optical-axis depth -> depth along n

(the factor ``n . K^-1 (u, v, 1)`` is affine in the source pixel ``(u, v)``). The ROI fields are then in the view's
pixels: ``R`` is :func:`~stn_ros.perception.geometry.table_view.view_rotation` of ``n`` (the smallest rotation taking
the optical axis to it), so ``K R K^-1`` composed with the ROI gives what the localization net looked at. Without
them, crops hold the source's values (depth along the optical axis) and the ROIs are in source pixels.
A record without ``object_id``, ``hypothesis`` and ``score`` (an older bag) parses as one crop per object:
``object_id`` = the crop's index, ``hypothesis`` 0, ``score`` 1; one without ``shed_level``, ``hypotheses_limit``
and ``objects_limit`` as full work, limits not said (0); one without ``nx, ny, nz`` as not view-canonicalized (NaN).
The three shedding fields take 4 bytes, so every field after them stays 4-byte aligned. Pure numpy: no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H_FIELDS = tuple(f'h{r}{c}' for r in range(3) for c in range(3))
ROI_FIELDS = ('roi_x', 'roi_y', 'roi_w', 'roi_h')
HYPOTHESIS_FIELDS = (('object_id', np.int32), ('hypothesis', np.int32), ('score', np.float32))
SHED_FIELDS = (('shed_level', np.uint8), ('hypotheses_limit', np.uint8), ('objects_limit', np.uint16))
NORMAL_FIELDS = ('nx', 'ny', 'nz')


def record_dtype(num_params: int) -> np.dtype:
    """Structured dtype of one transforms-record point for a family with ``num_params`` parameters."""
    fields = [(name, np.float32) for name in ('x', 'y', 'z', 'u', 'v')]
    fields += [(name, np.float64) for name in H_FIELDS]
    fields += [('family', np.int32)] + [(name, np.float32) for name in ROI_FIELDS]
    fields += list(HYPOTHESIS_FIELDS) + list(SHED_FIELDS) + [(name, np.float32) for name in NORMAL_FIELDS]
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
    object_ids: np.ndarray | None = None,
    hypotheses: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    normal: np.ndarray | None = None,
) -> np.ndarray:
    """Structured array of ``N`` record points (see the module docstring), one ROI per crop.

    ``xyz`` defaults to NaN; ``object_ids``, ``hypotheses`` and ``scores`` to one crop per object
    (``object_id`` = index, ``hypothesis`` 0, ``score`` 1); ``normal`` ``(3,)``, the view the crops were
    canonicalized to, to NaN (none).
    """
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
    record['object_id'] = np.arange(len(record)) if object_ids is None else object_ids
    record['hypothesis'] = 0 if hypotheses is None else hypotheses
    record['score'] = 1.0 if scores is None else scores
    normal = np.full(3, np.nan) if normal is None else np.asarray(normal, np.float64).reshape(3)
    record['nx'], record['ny'], record['nz'] = normal
    for index in range(params.shape[1]):
        record[f'p{index}'] = params[:, index]
    return record


def mark_work(record: np.ndarray, shed_level: int, hypotheses: int, max_crops: int) -> np.ndarray:
    """Write the frame's work into every point of ``record`` (in place; returned): its load-shedding level (0: full
    work), the hypotheses per object and the objects at most it was made with."""
    if not (0 <= shed_level <= 255 and 0 <= hypotheses <= 255 and 0 <= max_crops <= 65535):
        raise ValueError(f'shed_level, hypotheses and max_crops out of range: {shed_level}, {hypotheses}, {max_crops}')
    record['shed_level'], record['hypotheses_limit'], record['objects_limit'] = shed_level, hypotheses, max_crops
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
    object_ids: np.ndarray  # (N,) int32, the crop's object (index in the frame)
    hypotheses: np.ndarray  # (N,) int32, 0 = the object's best-scored hypothesis
    scores: np.ndarray  # (N,) float32, the hypothesis' probability among the model's K
    shed_levels: np.ndarray  # (N,) uint8, the node's load-shedding level of the frame: 0 = full work
    hypotheses_limits: np.ndarray  # (N,) uint8, hypotheses per object asked for the frame; 0 = not said
    objects_limits: np.ndarray  # (N,) uint16, objects at most taken in the frame; 0 = not said
    normals: np.ndarray  # (N, 3) float32, the normal the crops were canonicalized to (the approach); NaN: none


def parse_record(points: np.ndarray) -> TransformsRecord:
    """Split a structured array (e.g. from ``decode_pointcloud``) into a :class:`TransformsRecord`.

    A record without the hypothesis fields (an older bag) is one crop per object; one without the shedding fields is
    full work, limits not said (0); one without the normal is not view-canonicalized (NaN).
    """
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
        object_ids=_field_or(points, 'object_id', np.int32, np.arange(len(points))),
        hypotheses=_field_or(points, 'hypothesis', np.int32, np.zeros(len(points))),
        scores=_field_or(points, 'score', np.float32, np.ones(len(points))),
        shed_levels=_field_or(points, 'shed_level', np.uint8, np.zeros(len(points))),
        hypotheses_limits=_field_or(points, 'hypotheses_limit', np.uint8, np.zeros(len(points))),
        objects_limits=_field_or(points, 'objects_limit', np.uint16, np.zeros(len(points))),
        normals=np.stack(
            [_field_or(points, name, np.float32, np.full(len(points), np.nan)) for name in NORMAL_FIELDS], -1
        ).reshape(len(points), 3),
    )


def _field_or(points: np.ndarray, name: str, dtype: type, default: np.ndarray) -> np.ndarray:
    """The field ``name`` of ``points`` as ``dtype``, or ``default`` where the record has no such field."""
    return np.asarray(points[name] if name in (points.dtype.names or ()) else default).astype(dtype)
