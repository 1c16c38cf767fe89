"""Crop sources: ROI parsing and checks, tile order, table-plane fit, depth and intensity proposals."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from stn_ros.perception.stn.frame import Frame
from stn_ros.perception.stn.proposals import (
    ProposalConfig,
    Proposals,
    check_rois_inside,
    depth_proposals,
    fit_table_plane,
    full_frame_roi,
    intensity_proposals,
    open_mask,
    order_and_limit,
    parse_rois,
    split_at_depth_edges,
)
from stn_ros.sim.prisms.scenes import Scene, SceneConfig, box_footprint, make_object, render_scene, view_pose

HEIGHT, WIDTH = 480, 640
FX = FY = 525.0
CX, CY = 319.5, 239.5
CONFIG = ProposalConfig()


def box(u: float, v: float, half_width: float, half_height: float) -> np.ndarray:
    """Footprint mask of an axis-aligned rectangle centred on pixel ``(u, v)``."""
    cols, rows = np.arange(WIDTH), np.arange(HEIGHT)[:, None]
    return (np.abs(cols - u) <= half_width) & (np.abs(rows - v) <= half_height)


def disc(u: float, v: float, radius: float) -> np.ndarray:
    """Footprint mask of a cylinder seen from above.

    The half-pixel extra radius makes the extreme rows and columns several pixels wide: the 3x3
    opening of the proposals would shave single-pixel tips off the bounding box.
    """
    cols, rows = np.arange(WIDTH), np.arange(HEIGHT)[:, None]
    return (cols - u) ** 2 + (rows - v) ** 2 <= (radius + 0.5) ** 2


def table_scene(
    objects: list[tuple[np.ndarray, float]],
    tilt_deg: tuple[float, float] = (4.0, -3.0),
    distance: float = 0.75,
    noise: float = 0.001,
    dropout: float = 0.02,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth ``(H, W)`` float32 metres of objects on a tilted table, and the noise-free table depth.

    ``objects`` are ``(footprint mask, height in metres)``: the object's top face is the table plane
    raised by ``height`` towards the camera, seen over the footprint.
    """
    tilt_x, tilt_y = np.radians(tilt_deg)
    normal = np.array([np.sin(tilt_y) * np.cos(tilt_x), np.sin(tilt_x), np.cos(tilt_x) * np.cos(tilt_y)])
    cols, rows = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    # n . K^-1 [u, v, 1]: the plane n . X = d is at depth d / along_normal.
    along_normal = normal[0] * (cols - CX) / FX + normal[1] * (rows - CY) / FY + normal[2]
    table = distance / along_normal
    depth = table.copy()
    for footprint, height in objects:
        depth[footprint] = ((distance - height) / along_normal)[footprint]
    rng = np.random.default_rng(seed)
    depth += rng.normal(0.0, noise, depth.shape)
    depth[rng.random(depth.shape) < dropout] = np.nan
    return depth.astype(np.float32), table


def bbox(footprint: np.ndarray) -> tuple[int, int, int, int]:
    """cv::Rect ``(left, top, width, height)`` of a mask."""
    rows, cols = np.nonzero(footprint)
    return cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1


def assert_square_rois_around(
    proposals: Proposals, footprints: list[np.ndarray], margin: float, tolerance: float = 1.0, grow: float = 0.0
) -> None:
    """One square ROI per footprint, centred on its bbox centre, side ``max(bw, bh) * (1 + 2 margin)``.

    ``grow``: pixels the segmentation is expected to add on each side of the footprint.
    """
    rois = proposals.rois
    assert rois.dtype == np.float32 and rois.shape == (len(footprints), 4)
    np.testing.assert_array_equal(rois[:, 2], rois[:, 3])
    centres = rois[:, :2] + (rois[:, 2:] - 1.0) / 2.0
    matched = []
    for footprint in footprints:
        left, top, width, height = bbox(footprint)
        centre = np.array([left + (width - 1) / 2.0, top + (height - 1) / 2.0])
        index = int(np.argmin(np.linalg.norm(centres - centre, axis=1)))
        x, y, w, h = rois[index]
        assert x <= centre[0] <= x + w - 1 and y <= centre[1] <= y + h - 1
        np.testing.assert_allclose(centres[index], centre, atol=tolerance)
        side = (max(width, height) + 2.0 * grow) * (1.0 + 2.0 * margin)
        np.testing.assert_allclose(w, side, atol=2.0 * tolerance * (1.0 + 2.0 * margin))
        matched.append(index)
    assert sorted(matched) == list(range(len(footprints)))


def assert_empty(proposals: Proposals, shape: tuple[int, int] = (HEIGHT, WIDTH)) -> None:
    assert proposals.rois.shape == (0, 4) and proposals.rois.dtype == np.float32
    assert proposals.areas.shape == (0,) and proposals.areas.dtype == np.int64
    assert proposals.labels.shape == shape and proposals.labels.dtype == np.int32
    assert not proposals.labels.any()


def plane_depth(plane: np.ndarray) -> np.ndarray:
    cols, rows = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    return 1.0 / (plane[0] * cols + plane[1] * rows + plane[2])


OBJECTS = [
    (box(150, 120, 40, 30), 0.06),
    (disc(420, 300, 35), 0.10),
    (box(520, 110, 15, 25), 0.02),
    (disc(260, 360, 22), 0.04),
]


# Fixed ROIs.


def test_full_frame_roi_is_the_whole_image():
    roi = full_frame_roi(HEIGHT, WIDTH)
    assert roi.dtype == np.float32
    np.testing.assert_array_equal(roi, [[0, 0, WIDTH, HEIGHT]])
    check_rois_inside(roi, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match='positive'):
        full_frame_roi(0, WIDTH)


def test_parse_rois_reshapes_flat_lists():
    rois = parse_rois([0, 1, 20, 30, 5.5, 6.5, 10.0, 12.0])
    assert rois.dtype == np.float32
    np.testing.assert_array_equal(rois, [[0, 1, 20, 30], [5.5, 6.5, 10, 12]])
    assert parse_rois([]).shape == (0, 4) and parse_rois([]).dtype == np.float32
    np.testing.assert_array_equal(parse_rois(np.array([1, 2, 3, 4])), [[1, 2, 3, 4]])


@pytest.mark.parametrize(
    'flat, message',
    [
        ([0, 0, 10], 'length 3 is not a multiple of 4'),
        ([0, 0, 10, 10, 1, 2, 3], 'length 7 is not a multiple of 4'),
        ([0, 0, 0, 10], r'ROI 0 \(x, y, w, h\) = \(0, 0, 0, 10\).*positive'),
        ([0, 0, 10, 10, 3, 4, 5, -6], r'ROI 1 \(x, y, w, h\) = \(3, 4, 5, -6\).*positive'),
        ([0, 0, 10, 10, 0, 0, 10, 10, 1, float('nan'), 2, 2], r'ROI 2 .*\(1, nan, 2, 2\).*non-finite'),
        ([0, 0, float('inf'), 10], r'ROI 0 .*non-finite'),
        (['a', 0, 1, 1], 'flat list of numbers'),
        ([[0, 0, 1, 1]], r'flat list.*shape \(1, 4\)'),
    ],
)
def test_parse_rois_rejects_bad_lists_naming_the_roi(flat, message):
    with pytest.raises(ValueError, match=message):
        parse_rois(flat)


def test_check_rois_inside_names_the_first_roi_outside():
    check_rois_inside(np.array([[0, 0, WIDTH, HEIGHT], [10.5, 20, 100, 50]], np.float32), HEIGHT, WIDTH)
    check_rois_inside(np.zeros((0, 4), np.float32), HEIGHT, WIDTH)
    inside = [10, 10, 20, 20]
    for bad in ([-1, 0, 10, 10], [0, -0.5, 10, 10], [WIDTH - 10, 0, 10.5, 10], [0, HEIGHT - 9, 10, 10]):
        with pytest.raises(ValueError, match=r'ROI 1 \(x, y, w, h\) = .* is not inside the 640x480'):
            check_rois_inside(np.array([inside, bad, [-5, -5, 1, 1]], np.float32), HEIGHT, WIDTH)
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        check_rois_inside(np.zeros((2, 3)), HEIGHT, WIDTH)


# Tile order.


def test_order_is_area_descending_then_y_then_x_and_truncated():
    rois = np.array([[50, 10, 8, 8], [5, 40, 8, 8], [30, 10, 8, 8], [0, 0, 8, 8], [9, 9, 8, 8]], np.float32)
    areas = np.array([100, 300, 100, 100, 200])
    order = order_and_limit(rois, areas, 10)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, [1, 4, 3, 2, 0])
    np.testing.assert_array_equal(order_and_limit(rois, areas, 2), [1, 4])
    assert order_and_limit(rois, areas, 0).shape == (0,)
    fractional = np.array([[0, 50, 10.4, 10.6], [0, 0, 10.5, 10.5], [0, 9, 10.6, 10.4]], np.float32)
    np.testing.assert_array_equal(
        order_and_limit(fractional, fractional[:, 2] * fractional[:, 3], 3), [1, 2, 0]
    )  # 110.25 > 110.24, then ties by y
    np.testing.assert_array_equal(order_and_limit(rois, areas.astype(np.uint16), 2), [1, 4])
    assert order_and_limit(np.zeros((0, 4)), np.zeros(0, np.int64), 3).shape == (0,)
    with pytest.raises(ValueError, match='max_crops'):
        order_and_limit(rois, areas, -1)
    with pytest.raises(ValueError, match='areas'):
        order_and_limit(rois, areas[:3], 2)


# Config.


@pytest.mark.parametrize(
    'field, value',
    [
        ('min_area', 0),
        ('min_area', 1.5),
        ('max_area', 50),  # below min_area
        ('max_area', True),
        ('margin', -0.1),
        ('margin', float('nan')),
        ('margin', float('inf')),
        ('table_threshold', 0.0),
        ('table_threshold', float('nan')),
        ('ransac_iterations', 0),
        ('seed', -1),
        ('seed', 'zero'),
        ('split_jump', -0.01),
        ('split_jump', float('nan')),
        ('occlusion_jump', -0.005),
        ('occlusion_jump', float('inf')),
        ('decimation', 0),
        ('decimation', 1.5),
    ],
)
def test_config_validate_names_the_bad_field_and_value(field, value):
    config = dataclasses.replace(CONFIG, **{field: value})
    with pytest.raises(ValueError, match=rf'ProposalConfig\.{field} .*got {value!r}'):
        config.validate()
    with pytest.raises(ValueError, match=field):
        depth_proposals(np.full((8, 8), 0.7, np.float32), config)


def test_default_config_is_valid():
    CONFIG.validate()
    ProposalConfig(min_area=1, max_area=1, margin=0.0).validate()


# Table plane.


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_plane_fit_recovers_the_table_with_30_percent_objects(seed):
    # Three raised boxes over 30% of the frame, at different heights (top faces are planes too).
    objects = [(box(110, 130, 79, 95), 0.03), (box(330, 300, 79, 95), 0.05), (box(540, 200, 79, 95), 0.08)]
    covered = np.logical_or.reduce([footprint for footprint, _ in objects])
    assert covered.mean() == pytest.approx(0.30, abs=0.005)
    depth, table = table_scene(objects, tilt_deg=(6.0, -4.0), distance=0.78, seed=seed)
    plane = fit_table_plane(depth, dataclasses.replace(CONFIG, seed=seed))
    assert plane.shape == (3,) and plane.dtype == np.float64
    error = np.abs(plane_depth(plane) - table)[~covered]
    assert error.max() < 0.002
    assert np.median(error) < 0.0005


def test_plane_fit_is_deterministic_for_a_seed_and_none_without_readings():
    depth, _ = table_scene(OBJECTS)
    np.testing.assert_array_equal(fit_table_plane(depth, CONFIG), fit_table_plane(depth, CONFIG))
    assert fit_table_plane(np.full((HEIGHT, WIDTH), np.nan, np.float32), CONFIG) is None
    sparse = np.full((HEIGHT, WIDTH), np.nan, np.float32)
    sparse.reshape(-1)[::5000] = 0.7  # 62 readings
    assert fit_table_plane(sparse, CONFIG) is None


def test_plane_fit_on_a_mostly_missing_frame_uses_the_valid_pixels():
    depth, table = table_scene([], dropout=0.9)
    plane = fit_table_plane(depth, CONFIG)
    assert np.abs(plane_depth(plane) - table).max() < 0.002


# Depth proposals.


def test_depth_proposals_find_each_object_on_a_tilted_noisy_table():
    depth, _ = table_scene(OBJECTS)
    proposals = depth_proposals(depth, CONFIG)
    footprints = [footprint for footprint, _ in OBJECTS]
    assert_square_rois_around(proposals, footprints, CONFIG.margin)
    assert np.all(np.diff(proposals.areas) <= 0)
    assert proposals.areas.dtype == np.int64
    true_areas = sorted((int(footprint.sum()) for footprint in footprints), reverse=True)
    np.testing.assert_allclose(proposals.areas, true_areas, rtol=0.05)  # ~2% dropouts are not counted
    labels = proposals.labels
    assert labels.dtype == np.int32 and labels.shape == (HEIGHT, WIDTH) and labels.max() == len(footprints)
    for k, area in enumerate(proposals.areas, start=1):
        assert (labels == k).sum() == area


@pytest.mark.parametrize('step', [2, 3])
def test_decimated_depth_proposals_find_the_same_objects_in_the_frames_pixels(step):
    depth, _ = table_scene(OBJECTS)
    full = depth_proposals(depth, CONFIG)
    decimated = depth_proposals(depth, dataclasses.replace(CONFIG, decimation=step))
    footprints = [footprint for footprint, _ in OBJECTS]
    # a decimated pixel stands for a step x step block: edges move by up to a block
    assert_square_rois_around(decimated, footprints, CONFIG.margin, tolerance=float(step))
    np.testing.assert_allclose(decimated.areas, full.areas, rtol=0.1)
    assert decimated.labels.shape == depth.shape and decimated.labels.max() == len(footprints)
    for footprint in footprints:  # each object's label covers it as the full-resolution one does
        ours, theirs = (
            decimated.labels == np.bincount(decimated.labels[footprint]).argmax(),
            full.labels == np.bincount(full.labels[footprint]).argmax(),
        )
        assert (ours & theirs).sum() > 0.8 * (ours | theirs).sum()


def test_depth_labels_match_the_roi_order():
    depth, _ = table_scene(OBJECTS)
    proposals = depth_proposals(depth, CONFIG)
    for k, (x, y, w, h) in enumerate(proposals.rois, start=1):
        rows, cols = np.nonzero(proposals.labels == k)
        assert x <= cols.mean() <= x + w - 1 and y <= rows.mean() <= y + h - 1


@pytest.mark.parametrize('margin', [0.0, 0.15, 0.5])
def test_roi_side_follows_the_margin(margin):
    objects = [(box(200, 200, 30, 10), 0.05), (box(450, 300, 12, 40), 0.05)]
    depth, _ = table_scene(objects, noise=0.0, dropout=0.0)
    proposals = depth_proposals(depth, dataclasses.replace(CONFIG, margin=margin))
    assert_square_rois_around(proposals, [footprint for footprint, _ in objects], margin, tolerance=1e-4)
    side = 81 * (1 + 2 * margin)  # the larger (25 x 81 pixels) box comes first
    np.testing.assert_allclose(proposals.rois[0], [450 - (side - 1) / 2, 300 - (side - 1) / 2, side, side], atol=1e-4)


def test_area_filters_are_inclusive():
    objects = [(box(100, 100, 4, 4), 0.05), (box(300, 100, 9, 9), 0.05), (box(500, 300, 30, 30), 0.05)]
    areas = [81, 361, 3721]
    depth, _ = table_scene(objects, noise=0.0, dropout=0.0)
    assert depth_proposals(depth, ProposalConfig(min_area=150)).areas.tolist() == [3721, 361]
    assert depth_proposals(depth, ProposalConfig(min_area=81)).areas.tolist() == [3721, 361, 81]
    assert depth_proposals(depth, ProposalConfig(min_area=82)).areas.tolist() == [3721, 361]
    assert depth_proposals(depth, ProposalConfig(min_area=81, max_area=361)).areas.tolist() == [361, 81]
    assert depth_proposals(depth, ProposalConfig(min_area=81, max_area=360)).areas.tolist() == [81]
    only = depth_proposals(depth, ProposalConfig(min_area=300, max_area=1000))
    assert_square_rois_around(only, [objects[1][0]], CONFIG.margin, tolerance=1e-4)
    assert (only.labels == 1).sum() == areas[1] and only.labels.max() == 1


def test_max_crops_keeps_the_largest():
    depth, _ = table_scene(OBJECTS)
    everything = depth_proposals(depth, CONFIG)
    two = depth_proposals(depth, CONFIG, max_crops=2)
    np.testing.assert_array_equal(two.rois, everything.rois[:2])
    np.testing.assert_array_equal(two.areas, everything.areas[:2])
    assert two.labels.max() == 2 and (two.labels == 0).sum() > (everything.labels == 0).sum()
    assert_empty(depth_proposals(depth, CONFIG, max_crops=0))
    assert len(depth_proposals(depth, CONFIG, max_crops=10).rois) == len(OBJECTS)


def test_objects_touching_the_border_get_rois_beyond_the_image():
    objects = [(box(10, 200, 40, 30), 0.05), (disc(600, 470, 40), 0.05), (box(320, 240, 30, 30), 0.05)]
    depth, _ = table_scene(objects)
    proposals = depth_proposals(depth, CONFIG)
    assert_square_rois_around(proposals, [footprint for footprint, _ in objects], CONFIG.margin)
    x, y, w, h = proposals.rois.T
    assert ((x < 0) | (x + w > WIDTH) | (y + h > HEIGHT)).sum() == 2
    with pytest.raises(ValueError, match='is not inside'):
        check_rois_inside(proposals.rois, HEIGHT, WIDTH)


def test_dropout_holes_and_zero_or_inf_readings_are_not_objects():
    objects = [(box(200, 200, 40, 40), 0.05), (disc(450, 260, 40), 0.03)]
    depth, _ = table_scene(objects)
    depth[195:205, 190:210] = np.nan  # a hole inside an object
    depth[50:90, 400:460] = np.nan  # a hole in the table
    depth[400:440, 50:100] = 0.0  # no-reading conventions
    depth[20:60, 20:60] = np.inf
    depth[300:340, 560:600] = -np.inf
    proposals = depth_proposals(depth, CONFIG)
    assert_square_rois_around(proposals, [footprint for footprint, _ in objects], CONFIG.margin)


@pytest.mark.parametrize('frame', ['nan', 'zero', 'inf', 'table', 'flat_table', 'tiny'])
def test_frames_without_objects_give_no_proposals(frame):
    if frame in ('nan', 'zero', 'inf'):
        depth = np.full((HEIGHT, WIDTH), {'nan': np.nan, 'zero': 0.0, 'inf': np.inf}[frame], np.float32)
    elif frame == 'table':
        depth, _ = table_scene([], tilt_deg=(8.0, 5.0), noise=0.002, dropout=0.05)
    elif frame == 'flat_table':
        depth = np.full((HEIGHT, WIDTH), 0.7, np.float32)
    else:
        depth = np.full((HEIGHT, WIDTH), np.nan, np.float32)
        depth[:5, :5] = 0.5
    assert_empty(depth_proposals(depth, CONFIG))


def test_depth_proposals_are_deterministic_for_a_seed():
    depth, _ = table_scene(OBJECTS, noise=0.002)
    first, second = depth_proposals(depth, CONFIG), depth_proposals(depth, CONFIG)
    np.testing.assert_array_equal(first.rois, second.rois)
    np.testing.assert_array_equal(first.areas, second.areas)
    np.testing.assert_array_equal(first.labels, second.labels)
    other = depth_proposals(depth, dataclasses.replace(CONFIG, seed=7))
    assert len(other.rois) == len(OBJECTS)


def test_depth_proposals_reject_bad_depth():
    with pytest.raises(ValueError, match='float metres'):
        depth_proposals(np.full((HEIGHT, WIDTH), 700, np.uint16), CONFIG)
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        depth_proposals(np.zeros((4, 4, 1), np.float32), CONFIG)


# Intensity proposals.


def intensity_scene(noise: float = 2.0, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dark background (60) with bright (230, 140) and dark (10) shapes, float64 0..255."""
    footprints = [box(150, 120, 40, 30), disc(420, 300, 35), box(520, 110, 15, 25), disc(250, 360, 22)]
    image = np.full((HEIGHT, WIDTH), 60.0)
    for footprint, level in zip(footprints, (230.0, 10.0, 140.0, 20.0), strict=True):
        image[footprint] = level
    image += np.random.default_rng(seed).normal(0.0, noise, image.shape)
    return np.clip(image, 0, 255), footprints


def test_intensity_proposals_find_bright_and_dark_shapes():
    image, footprints = intensity_scene()
    proposals = intensity_proposals(image.astype(np.uint8), CONFIG)
    # The blur adds a 1-2 pixel halo to the components.
    assert_square_rois_around(proposals, footprints, CONFIG.margin, grow=1.5)
    assert np.all(np.diff(proposals.areas) <= 0)
    halo = np.ones((5, 5), np.uint8)
    for footprint in footprints:
        rows, cols = np.nonzero(footprint)
        k = proposals.labels[int(rows.mean()), int(cols.mean())]
        grown = cv2.dilate(footprint.view(np.uint8), halo).astype(bool)
        assert footprint.sum() <= proposals.areas[k - 1] <= grown.sum()
        assert np.all(grown[proposals.labels == k])


@pytest.mark.parametrize('layout', ['grey_f32', 'grey_u16', 'hw1', 'bgr', 'bgra', 'rgb_f64'])
def test_intensity_proposals_of_any_layout_match_grey(layout):
    image, footprints = intensity_scene()
    grey = image.astype(np.uint8)
    converted = {
        'grey_f32': grey.astype(np.float32) / 255.0,
        'grey_u16': grey.astype(np.uint16) * 257,
        'hw1': grey[..., None],
        'bgr': np.repeat(grey[..., None], 3, axis=2),
        'bgra': np.dstack((grey, grey, grey, np.zeros_like(grey))),
        'rgb_f64': np.repeat(grey[..., None], 3, axis=2).astype(np.float64),
    }[layout]
    expected = intensity_proposals(grey, CONFIG)
    proposals = intensity_proposals(converted, CONFIG)
    np.testing.assert_allclose(proposals.rois, expected.rois, atol=1.0)
    assert len(proposals.areas) == len(footprints)


def test_intensity_proposals_treat_nan_as_background_and_respect_max_crops():
    image, footprints = intensity_scene()
    image = image.astype(np.float32)
    image[0, :50] = np.nan
    image[200:210, 300:310] = np.nan
    proposals = intensity_proposals(image, CONFIG, max_crops=2)
    assert len(proposals.rois) == 2
    assert_square_rois_around(proposals, footprints[:2], CONFIG.margin, grow=1.5)


@pytest.mark.parametrize(
    'image',
    [
        np.zeros((HEIGHT, WIDTH), np.uint8),
        np.full((HEIGHT, WIDTH, 3), 128, np.uint8),
        np.full((HEIGHT, WIDTH), 0.25, np.float32),
        np.full((HEIGHT, WIDTH), np.nan, np.float32),
        np.clip(np.random.default_rng(0).normal(100.0, 2.0, (HEIGHT, WIDTH)), 0, 255).astype(np.uint8),
    ],
    ids=['black', 'grey_bgr', 'float', 'nan', 'noise_only'],
)
def test_uniform_images_give_no_proposals(image):
    assert_empty(intensity_proposals(image, CONFIG))


def test_intensity_proposals_reject_bad_layouts():
    with pytest.raises(ValueError, match=r'C in 1, 3, 4'):
        intensity_proposals(np.zeros((8, 8, 2), np.uint8), CONFIG)


def test_intensity_proposals_see_colour_as_the_frame_s_one_grey_does():
    """Red on green of equal channel mean: a channel-mean grey sees one flat image, BT.601 sees the object."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[...] = (0, 255, 0)  # bgr8: green background
    image[100:160, 200:280] = (0, 0, 255)  # a red box
    proposals = intensity_proposals(image, CONFIG)
    assert len(proposals.rois) == 1
    np.testing.assert_allclose(proposals.rois, intensity_proposals(Frame(image, 'bgr8', False).grey(), CONFIG).rois)
    x, y, w, h = proposals.rois[0]
    assert x <= 200 and y <= 100 and x + w >= 280 and y + h >= 160


# Touching objects.


def test_touching_objects_at_different_heights_become_two_proposals():
    lower, higher = box(250, 240, 30, 20), box(311, 240, 30, 20)  # columns 220-280 and 281-341: touching
    depth, _ = table_scene([(lower, 0.03), (higher, 0.06)])
    split = depth_proposals(depth, CONFIG)
    joined = depth_proposals(depth, dataclasses.replace(CONFIG, split_jump=0.0))  # before the cut
    assert len(joined.rois) == 1
    assert len(split.rois) == 2
    assert split.areas.sum() == joined.areas.sum()  # the cut pixels go back to their objects
    for footprint in (lower, higher):
        shares = [((split.labels == k) & footprint).sum() / footprint.sum() for k in (1, 2)]
        assert max(shares) > 0.95  # each object is (almost) all in one proposal


def test_touching_objects_at_the_same_height_stay_one_proposal():
    """No depth edge between them: the cut cannot see the seam (a documented limit)."""
    depth, _ = table_scene([(box(250, 240, 30, 20), 0.04), (box(311, 240, 30, 20), 0.04)])
    assert len(depth_proposals(depth, CONFIG).rois) == 1


def boxes_one_behind_the_other(tilt_deg: float, gap: float) -> Scene:
    """Two 6 cm boxes 4 cm tall, ``gap`` metres apart one behind the other as a camera 0.7 m away and tilted
    ``tilt_deg`` from vertical sees them (rendered with the sensor model's noise and dropouts)."""
    pose = view_pose(0.7, tilt_deg, azimuth=0.4)
    away = pose[:2, 2] / np.linalg.norm(pose[:2, 2])  # the optical axis on the table: from the near box to the far
    yaw, offset = math.atan2(away[1], away[0]), (0.03 + gap / 2) * away
    boxes = [make_object('box', box_footprint(0.06, 0.06), 0.04, *(sign * offset), yaw) for sign in (-1, 1)]
    return render_scene(SceneConfig(), boxes, pose, 0)


def test_an_oblique_view_cuts_where_a_near_object_hides_a_far_one_at_about_its_height():
    """At 50 deg the near box hides the gap and the far box's face up to 3.2 cm: a height jump of 8 mm, under
    ``split_jump``, but 13 mm along the rays."""
    scene = boxes_one_behind_the_other(50.0, 0.01)
    joined = depth_proposals(scene.depth, dataclasses.replace(CONFIG, occlusion_jump=0.0), camera=scene.camera)
    split = depth_proposals(scene.depth, CONFIG, camera=scene.camera)
    assert len(joined.rois) == 1
    assert len(split.rois) == 2
    proposal_of = []
    for body in (1, 2):
        seen = (scene.labels == body) & np.isfinite(scene.depth)  # its pixels with a reading
        shares = [((split.labels == k) & seen).sum() / seen.sum() for k in (1, 2)]
        assert max(shares) > 0.9, shares  # the rest: the faces' lowest 5 mm, under table_threshold
        proposal_of.append(int(np.argmax(shares)))
    assert proposal_of[0] != proposal_of[1]


def test_split_at_depth_edges_cuts_the_far_side_only():
    depth = np.full((3, 6), 0.70, np.float32)
    depth[:, 3:] = 0.65  # the right half stands 5 cm higher
    mask = np.ones((3, 6), np.uint8)
    cut = split_at_depth_edges(mask, depth, 0.01)
    assert cut[:, 2].sum() == 0 and cut[:, [0, 1, 3, 4, 5]].all()


@pytest.mark.parametrize('width,setting,expected', [(640, 0, 1), (848, 0, 1), (1280, 0, 2), (1920, 0, 3), (1280, 1, 1)])
def test_stn_nodes_proposal_decimation_is_automatic_by_width_unless_set(width, setting, expected):
    from stn_ros.perception.stn.steps import proposal_config

    values = {'proposal_min_area': 60, 'proposal_max_area': 60000, 'proposal_margin': 0.15, 'table_threshold': 0.005}
    assert proposal_config({**values, 'proposal_decimation': setting}, width).decimation == expected


def test_components_grown_across_cuts_have_the_boxes_and_areas_of_their_pixels():
    """The statistics (scipy's boxes, OpenCV's histogram) are each label's own pixels', as a plain loop finds them."""
    from stn_ros.perception.stn.proposals import _components_across_cuts

    rng = np.random.default_rng(5)
    for _ in range(20):
        depth = np.full((90, 120), 0.8, np.float32)
        for _ in range(int(rng.integers(1, 6))):  # touching boxes of different heights: cuts between them
            x, y = (int(v) for v in rng.integers(0, 100, 2))
            w, h = (int(v) for v in rng.integers(5, 40, 2))
            depth[y : y + h, x : x + w] = 0.8 - rng.uniform(0.02, 0.1)
        mask = (depth < 0.79).view(np.uint8)
        count, labels, stats = _components_across_cuts(mask, split_at_depth_edges(mask, depth, 0.01))
        assert labels.dtype == np.int32 and labels.max() == count - 1
        for label in range(1, count):
            rows, cols = np.nonzero(labels == label)
            box = [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1, len(rows)]
            assert stats[label].tolist() == box, label


def porous(footprint: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """``footprint``'s pixels, a ``fraction`` of them chosen at random: where a small object's readings drop out."""
    rng = np.random.default_rng(seed)
    return footprint & (rng.random(footprint.shape) < fraction)


def test_opening_lets_no_reading_pixels_not_erode_an_object_but_still_removes_table_speckle():
    small = box(300, 200, 9, 9)  # 19 x 19 = 361 pixels, a 25 mm object at 0.7 m
    unread = porous(small, 0.2)
    mask = (small & ~unread).astype(np.uint8)
    mask[100, 100] = mask[400, 500] = mask[400, 501] = 1  # speckle: table pixels above the threshold
    plain, aware = open_mask(mask), open_mask(mask, unread)
    assert aware[100, 100] == aware[400, 500] == aware[400, 501] == 0  # speckle removed either way
    assert not (aware & ~mask).any()  # never more than the mask
    assert aware[small].sum() == mask[small].sum()  # every read pixel of the object kept
    assert cv2.connectedComponents(aware)[0] == 2  # one object (and the background)
    assert plain[small].sum() < 0.6 * mask[small].sum()  # what the plain opening leaves of it


def test_a_small_object_with_a_fifth_of_its_readings_missing_is_still_proposed():
    small = box(300, 200, 9, 9)
    depth, _ = table_scene([(small, 0.03)], dropout=0.0)
    depth[porous(small, 0.2)] = np.nan
    assert_square_rois_around(depth_proposals(depth, CONFIG), [small], CONFIG.margin)


def test_an_object_8_mm_tall_is_proposed_and_a_noisy_table_gives_none():
    flat = box(300, 200, 30, 20)
    depth, _ = table_scene([(flat, 0.008)], noise=0.0015)
    proposals = depth_proposals(depth, CONFIG)
    # one proposal on it (a 3 mm margin over the threshold, two standard deviations of the noise: a ragged rim)
    assert len(proposals.rois) == 1 and proposals.areas[0] > 0.5 * flat.sum()
    assert (proposals.labels[flat] == 1).mean() > 0.5 and not proposals.labels[~flat].any()
    for seed in range(5):
        table_only, _ = table_scene([], noise=0.0015, seed=seed)  # the sensor model's noise at 0.8 m
        assert_empty(depth_proposals(table_only, CONFIG))


def test_an_upright_object_with_a_small_footprint_and_many_dropouts_is_proposed():
    """A thin object standing upright seen from above at 0.7 m: 12 x 12 pixels, half its rim without a reading (a
    quarter of its pixels), as the objects that ended clutter-removal rounds unproposed were (`stn_evaluate clutter`,
    packed, top view)."""
    standing = box(300, 200, 6, 6)
    rim = standing & ~box(300, 200, 4, 4)
    depth, _ = table_scene([(standing, 0.06)], dropout=0.0)
    depth[porous(rim, 0.5, seed=3)] = np.nan
    proposals = depth_proposals(depth, CONFIG)
    assert len(proposals.rois) == 1 and CONFIG.min_area <= proposals.areas[0] < 0.8 * standing.sum()
    assert (proposals.labels[standing] == 1).mean() > 0.6  # its pixels with a reading, nearly all
    assert len(depth_proposals(depth, dataclasses.replace(CONFIG, min_area=150)).rois) == 0  # the old floor
