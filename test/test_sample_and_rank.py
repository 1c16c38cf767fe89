"""Sample and rank without a ROS graph: several STN hypotheses per object, their record, the best grasp per object."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.pointcloud_codec import INT32, decode_pointcloud, encode_pointcloud
from stn_ros.core import SpatialTransformer, crop_transforms, localization_crops
from stn_ros.models.gqcnn import GQCNN
from stn_ros.perception.geometry.camera import metric_rois
from stn_ros.perception.grasps.grasp_quality import (
    GRASP_FIELDS,
    GraspScorer,
    best_per_object,
    grasps_to_publish,
    widths_m,
)
from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model
from stn_ros.perception.stn.frame import Frame
from stn_ros.perception.stn.transforms_record import build_record, mark_work, parse_record

CAMERA = PinholeCamera(300.0, 300.0, 79.5, 59.5, 160, 120)
ROIS = np.array([[10, 20, 60, 50], [95, 60, 45, 45]], np.float32)  # two objects, largest first


@pytest.fixture(scope='module')
def grasp_stn():
    """The shipped grasp STN (4 scored hypotheses) and its metric crop side."""
    model = load_model('')
    assert model.stn.localization.hypotheses == 4
    return model


def table_with_two_boxes() -> Frame:
    depth = np.full((120, 160), 0.75, np.float32)
    depth[30:62, 20:60] = 0.70
    depth[68:98, 102:132] = 0.68
    depth += np.random.default_rng(0).normal(0, 0.001, depth.shape).astype(np.float32)
    depth[5, 5] = np.nan
    return Frame(depth, '32FC1', True)


# --- the transforms record -----------------------------------------------------------------------------


def test_record_round_trips_the_hypothesis_fields(ros_installed):
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], 6, axis=0)
    record = build_record(
        homographies,
        np.zeros((6, 4)),
        2,
        np.tile([0, 0, 64, 64], (6, 1)),
        (32, 32),
        object_ids=[0, 0, 0, 1, 1, 1],
        hypotheses=[0, 1, 2, 0, 1, 2],
        scores=[0.5, 0.3, 0.2, 0.7, 0.2, 0.1],
    )
    cloud = encode_pointcloud(record)
    datatypes = {f.name: f.datatype for f in cloud.fields}
    assert datatypes['object_id'] == INT32 and datatypes['hypothesis'] == INT32
    parsed = parse_record(decode_pointcloud(cloud))
    np.testing.assert_array_equal(parsed.object_ids, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(parsed.hypotheses, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(parsed.scores, np.float32([0.5, 0.3, 0.2, 0.7, 0.2, 0.1]))
    assert parsed.object_ids.dtype == np.int32 and parsed.scores.dtype == np.float32
    assert parsed.params.shape == (6, 4)  # 'score' is not taken for a parameter
    default = parse_record(build_record(homographies[:2], np.zeros((2, 4)), 2, np.zeros((2, 4)), (32, 32)))
    np.testing.assert_array_equal(default.object_ids, [0, 1])
    assert (default.hypotheses == 0).all() and (default.scores == 1).all()


def test_an_older_record_without_the_hypothesis_fields_is_one_crop_per_object(ros_installed):
    record = build_record(np.repeat(np.eye(3)[None], 3, axis=0), np.zeros((3, 4)), 2, np.ones((3, 4)), (32, 32))
    older = record[[n for n in record.dtype.names if n not in ('object_id', 'hypothesis', 'score')]]
    cloud = encode_pointcloud(_packed(older))
    assert 'object_id' not in {f.name for f in cloud.fields}
    parsed = parse_record(decode_pointcloud(cloud))
    np.testing.assert_array_equal(parsed.object_ids, [0, 1, 2])
    np.testing.assert_array_equal(parsed.hypotheses, [0, 0, 0])
    np.testing.assert_array_equal(parsed.scores, [1.0, 1.0, 1.0])
    assert parsed.params.shape == (3, 4)
    empty = parse_record(decode_pointcloud(encode_pointcloud(_packed(older)[:0])))
    assert empty.object_ids.shape == empty.hypotheses.shape == empty.scores.shape == (0,)


def test_the_record_says_the_frames_work_and_an_older_record_reads_as_full_work(ros_installed):
    record = build_record(np.repeat(np.eye(3)[None], 2, axis=0), np.zeros((2, 4)), 2, np.ones((2, 4)), (32, 32))
    mark_work(record, 3, 1, 8)
    cloud = encode_pointcloud(record)
    datatypes = {f.name: f.datatype for f in cloud.fields}
    assert (datatypes['shed_level'], datatypes['hypotheses_limit'], datatypes['objects_limit']) == (2, 2, 4)
    assert all(f.offset % 4 == 0 for f in cloud.fields if f.name.startswith('p'))  # still 4-byte aligned
    parsed = parse_record(decode_pointcloud(cloud))
    assert parsed.shed_levels.tolist() == [3, 3] and parsed.hypotheses_limits.tolist() == [1, 1]
    assert parsed.objects_limits.tolist() == [8, 8] and parsed.params.shape == (2, 4)
    older = record[[n for n in record.dtype.names if n not in ('shed_level', 'hypotheses_limit', 'objects_limit')]]
    parsed = parse_record(decode_pointcloud(encode_pointcloud(_packed(older))))
    assert parsed.shed_levels.tolist() == [0, 0] and parsed.hypotheses_limits.tolist() == [0, 0]
    with pytest.raises(ValueError, match='out of range'):
        mark_work(record, 0, 1, 70000)


def _packed(points: np.ndarray) -> np.ndarray:
    """``points`` with its fields packed (a field selection keeps the full record's offsets)."""
    dtype = np.dtype([(name, points.dtype.fields[name][0]) for name in points.dtype.names])
    packed = np.zeros(len(points), dtype)
    for name in dtype.names:
        packed[name] = points[name]
    return packed


# --- the ranked hypotheses of the STN -----------------------------------------------------------------


def test_ranked_hypotheses_are_best_first_and_the_first_is_localize():
    torch.manual_seed(0)
    stn = SpatialTransformer('similarity', hypotheses=4).eval()
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        every, scores = stn.localize_all(images)
        tied, tied_probabilities = stn.localize_ranked(images, 3)  # an untrained scorer: every score ties
        torch.testing.assert_close(tied, every[:, :3], rtol=0, atol=0)  # ties keep the net's order
        torch.testing.assert_close(tied_probabilities, torch.full((3, 3), 0.25))
        stn.localization.scorer.weight.normal_(0, 1.0)
        every, scores = stn.localize_all(images)
        ranked, probabilities = stn.localize_ranked(images, 3)
        best = stn.localize(images)
        clamped, _ = stn.localize_ranked(images, 8)
    assert torch.equal(ranked[:, 0], best)
    assert (probabilities[:, :-1] >= probabilities[:, 1:]).all()
    torch.testing.assert_close(probabilities, scores.softmax(dim=1).sort(dim=1, descending=True).values[:, :3])
    assert clamped.shape == (3, 4, 4)
    single = SpatialTransformer('similarity').eval()
    params, ones = single.localize_ranked(images, 3)
    assert params.shape == (3, 1, 4) and (ones == 1).all()
    with pytest.raises(ValueError, match='at least 1'):
        single.localize_ranked(images, 0)


def test_several_hypotheses_are_object_major_best_first_and_the_first_is_the_single_crop(grasp_stn):
    frame = table_with_two_boxes()
    canonicalizer = Canonicalizer(grasp_stn.stn, torch.device('cpu'), (32, 32), grasp_stn.roi_side_m)
    single = canonicalizer.process(frame, ROIS, CAMERA)
    three = canonicalizer.process(frame, ROIS, CAMERA, hypotheses=3)
    assert three.crops.shape == (6, 32, 32) and three.tile.shape == (6 * 32, 32)
    assert three.hypotheses_per_object == 3 and single.hypotheses_per_object == 1
    np.testing.assert_array_equal(three.record['object_id'], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(three.record['hypothesis'], [0, 1, 2, 0, 1, 2])
    scores = three.record['score'].reshape(2, 3)
    assert (scores[:, :-1] >= scores[:, 1:]).all() and (scores > 0).all() and (scores.sum(axis=1) < 1).all()
    np.testing.assert_array_equal(three.record['roi_w'].reshape(2, 3), single.record['roi_w'][:, None].repeat(3, 1))
    # Hypothesis 0 of each object is, to the bit, the one crop of hypotheses_per_object 1.
    np.testing.assert_array_equal(three.crops[::3], single.crops)
    np.testing.assert_array_equal(three.homographies[::3], single.homographies)
    for name in single.record.dtype.names:
        np.testing.assert_array_equal(three.record[name][::3], single.record[name], err_msg=name)
    assert not np.allclose(three.homographies[1::3], single.homographies)  # the others are other crops
    on_cuda = canonicalizer._torch_crops(frame, three.transforms, (32, 32)).numpy()  # the sampling CUDA runs
    valid = np.isfinite(on_cuda) & np.isfinite(three.crops)
    assert on_cuda.shape == three.crops.shape and np.abs(on_cuda - three.crops)[valid].max() < 0.002
    every = canonicalizer.process(frame, ROIS, CAMERA, hypotheses=8)  # clamped to the model's 4
    assert len(every.crops) == 8 and every.hypotheses_per_object == 4
    np.testing.assert_allclose(every.record['score'].reshape(2, 4).sum(axis=1), 1.0, rtol=1e-5)


def test_one_hypothesis_per_object_is_the_best_scored_one_as_before(grasp_stn):
    """hypotheses_per_object 1 gives what the node gave before it had the parameter: localize's parameters."""
    frame = table_with_two_boxes()
    canonicalizer = Canonicalizer(grasp_stn.stn, torch.device('cpu'), (32, 32), grasp_stn.roi_side_m)
    result = canonicalizer.process(frame, ROIS, CAMERA)
    rois = torch.from_numpy(metric_rois(ROIS, frame.pixels, CAMERA.fx, CAMERA.fy, grasp_stn.roi_side_m))
    grey = torch.from_numpy(frame.grey())[None]
    with torch.no_grad():
        small = localization_crops(grey, rois, grasp_stn.stn.localization_size)
        expected = grasp_stn.stn.localize(small).numpy()
        _, scores = grasp_stn.stn.localize_all(small)
    params = np.stack([result.record[f'p{i}'] for i in range(expected.shape[1])], axis=-1)
    np.testing.assert_array_equal(params, expected)
    np.testing.assert_allclose(result.record['score'], scores.softmax(dim=1).max(dim=1).values.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(result.record['object_id'], [0, 1])
    assert (result.record['hypothesis'] == 0).all()


def test_a_single_hypothesis_model_gives_one_crop_per_object_with_score_one():
    frame = table_with_two_boxes()
    torch.manual_seed(0)
    canonicalizer = Canonicalizer(SpatialTransformer('affine'), torch.device('cpu'), (24, 24))
    result = canonicalizer.process(frame, ROIS, CAMERA, hypotheses=3)
    assert result.crops.shape == (2, 24, 24) and result.hypotheses_per_object == 1
    np.testing.assert_array_equal(result.record['score'], [1.0, 1.0])
    empty = canonicalizer.process(frame, np.zeros((0, 4), np.float32), CAMERA, hypotheses=3)
    assert empty.crops.shape == (0, 24, 24) and len(empty.record) == 0


def test_crop_transforms_repeat_each_roi_for_its_hypotheses_in_every_family():
    source = torch.rand(1, 80, 100, dtype=torch.float64)
    rois = torch.tensor([[5.0, 5.0, 40.0, 40.0], [50.0, 20.0, 30.0, 50.0]], dtype=torch.float64)
    for family in ('affine', 'tps'):
        torch.manual_seed(1)
        stn = SpatialTransformer(family, hypotheses=4).double().eval()
        with torch.no_grad():
            stn.localization.scorer.weight.normal_(0, 1.0)
            one = crop_transforms(stn, source, rois, (16, 16))
            three = crop_transforms(stn, source, rois, (16, 16), hypotheses=3)
        assert three.hypotheses_per_roi == 3 and three.homographies.shape == (6, 3, 3)
        torch.testing.assert_close(three.homographies[::3], one.homographies, rtol=0, atol=0)
        torch.testing.assert_close(three.source_grids((16, 16))[::3], one.source_grids((16, 16)), rtol=0, atol=0)
        assert (three.probabilities.reshape(2, 3).diff(dim=1) <= 0).all()


# --- the best grasp of each object ---------------------------------------------------------------------


def test_best_per_object_takes_each_objects_best_quality_crop_and_the_earlier_on_a_tie():
    quality = np.array([0.2, 0.9, 0.4, 0.6, 0.6, 0.1, 0.3])
    object_ids = np.array([0, 0, 0, 1, 1, 2, 3])  # object 1: a tie; objects 2 and 3: one crop each
    np.testing.assert_array_equal(best_per_object(quality, object_ids), [1, 3, 5, 6])
    np.testing.assert_array_equal(best_per_object(np.array([np.nan, 0.1]), np.array([0, 0])), [1])
    np.testing.assert_array_equal(best_per_object(np.array([0.5, 0.7]), np.array([4, 2])), [0, 1])  # tile order
    assert best_per_object(np.zeros(0), np.zeros(0, np.int32)).shape == (0,)


def grasp_record(quality, object_ids, hypotheses) -> np.ndarray:
    from stn_ros.perception.grasps.grasp_quality import GRASP_DTYPE

    record = np.zeros(len(quality), GRASP_DTYPE)
    record['quality'], record['object_id'], record['hypothesis'] = quality, object_ids, hypotheses
    record['u'] = np.arange(len(quality))
    return record


def test_grasps_to_publish_keep_the_best_per_object_or_every_crop_best_first():
    record = grasp_record([0.3, 0.8, 0.5, 0.4, 0.9, 0.2], [0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2])
    kept = grasps_to_publish(record)
    np.testing.assert_array_equal(kept['object_id'], [1, 0])  # ranked: object 1's 0.9 before object 0's 0.8
    np.testing.assert_array_equal(kept['hypothesis'], [1, 1])
    np.testing.assert_array_equal(kept['quality'], np.float32([0.9, 0.8]))
    np.testing.assert_array_equal(kept['rank'], [0, 1])
    every = grasps_to_publish(record, all_hypotheses=True)
    np.testing.assert_array_equal(every['quality'], np.float32([0.9, 0.8, 0.5, 0.4, 0.3, 0.2]))
    np.testing.assert_array_equal(every['rank'], np.arange(6))
    one_each = grasp_record([0.3, 0.1], [0, 1], [0, 0])
    for name in one_each.dtype.names:  # already best first: the same points
        np.testing.assert_array_equal(grasps_to_publish(one_each)[name], one_each[name])
    assert len(grasps_to_publish(grasp_record([], [], []))) == 0


def test_the_scorer_names_each_grasps_object_and_hypothesis_and_picks_the_best_over_all_crops(device):
    torch.manual_seed(0)
    scorer = GraspScorer(GQCNN().eval(), device)
    crops = np.full((4, 32, 32), 0.7, np.float32)
    for index, width in enumerate((4, 8, 12, 16)):
        crops[index, :, 16 - width // 2 : 16 + width // 2] = 0.65
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], 4, axis=0)
    scored = scorer.score(crops, homographies, CAMERA, 0.0, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert scored.record.dtype.names == (*GRASP_FIELDS, 'object_id', 'hypothesis')
    np.testing.assert_array_equal(scored.record['object_id'], [0, 0, 1, 1])
    np.testing.assert_array_equal(scored.record['hypothesis'], [0, 1, 0, 1])
    assert scored.best == int(np.argmax(scored.record['quality']))
    plain = scorer.score(crops, homographies, CAMERA, 0.0)
    np.testing.assert_array_equal(plain.record['object_id'], [0, 1, 2, 3])
    assert (plain.record['hypothesis'] == 0).all()
    assert scorer.score(crops, homographies, CAMERA, 1.1).best is None


def _width_one_crop(crop: np.ndarray, z: float, scale: float) -> float:
    """The run of object pixels (nearer than ``z``) through the centre of the crop's middle row, times ``scale``."""
    row = crop[crop.shape[0] // 2]
    middle = crop.shape[1] // 2
    solid = [bool(np.isfinite(v) and v < z) for v in row]
    if not solid[middle] or not np.isfinite(scale):
        return float('nan')
    left = middle
    while left > 0 and solid[left - 1]:
        left -= 1
    right = middle
    while right < len(row) and solid[right]:
        right += 1
    return (right - left) * scale


def test_widths_are_each_crops_run_through_its_centre():
    rng = np.random.default_rng(3)
    crops = rng.uniform(0.5, 0.8, (40, 32, 32)).astype(np.float32)
    crops[rng.random(crops.shape) < 0.1] = np.nan
    crops[0, 16] = 0.55  # a row all object: the run spans the crop
    z = rng.uniform(0.5, 0.8, 40)
    z[0], z[1] = 0.6, np.nan
    scale = rng.uniform(0.001, 0.003, 40)
    scale[2] = np.nan
    expected = [_width_one_crop(c, zi, si) for c, zi, si in zip(crops, z, scale, strict=True)]
    np.testing.assert_array_equal(widths_m(crops, z, scale), expected)
    assert (
        widths_m(crops, z, scale)[0] == pytest.approx(32 * scale[0]) and np.isnan(widths_m(crops, z, scale)[1:3]).all()
    )
    assert widths_m(np.zeros((0, 32, 32), np.float32), np.zeros(0), np.zeros(0)).shape == (0,)
