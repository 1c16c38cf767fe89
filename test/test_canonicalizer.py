"""The node's compute without a ROS graph: frames, camera, canonicalizer, transforms record, health."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from images import smooth_image
from stn_ros.bridge.camera_info import PinholeCamera
from stn_ros.bridge.image_codec import encode_image
from stn_ros.bridge.pointcloud_codec import decode_pointcloud, encode_pointcloud
from stn_ros.core import CheckpointError, SpatialTransformer, save_spatial_transformer
from stn_ros.evaluation.device_agreement import DuckImage
from stn_ros.perception.geometry.camera import depth_at
from stn_ros.perception.stn.canonicalizer import Canonicalizer, identity_model, load_model, tile_crops
from stn_ros.perception.stn.frame import Frame, decode_frame
from stn_ros.perception.stn.transforms_record import H_FIELDS, build_record, parse_record
from stn_ros.ros.health import OK, WARN, LogThrottle, NodeHealth
from stn_ros.training.prisms.grasp_stn import ROI_SIDE_M, grasp_stn

ROIS = np.array([[10, 12, 40, 40], [50, 30, 36, 44]], np.float32)


def perturbed_stn(family='affine') -> SpatialTransformer:
    torch.manual_seed(0)
    stn = SpatialTransformer(family, output_size=(24, 24))
    with torch.no_grad():
        stn.localization.regressor.weight.normal_(0, 0.01)
        stn.localization.regressor.bias.add_(0.1 * torch.randn_like(stn.localization.regressor.bias))
    return stn


@pytest.mark.parametrize(
    'encoding,dtype,channels',
    [
        ('mono8', np.uint8, 0),
        ('bgr8', np.uint8, 3),
        ('rgba8', np.uint8, 4),
        ('mono16', np.uint16, 0),
        ('16UC1', np.uint16, 0),
        ('32FC1', np.float32, 0),
    ],
)
def test_frames_sample_as_they_came_and_see_grey(encoding, dtype, channels):
    image = smooth_image(40, 50, channels)
    image = (
        (image / 300 + 0.5).astype(dtype)
        if dtype == np.float32
        else (image * (257 if dtype == np.uint16 else 1)).astype(dtype)
    )
    frame = decode_frame(encode_image(image, encoding, msg_cls=DuckImage))
    grey = frame.grey()
    assert grey.shape == (40, 50) and grey.dtype == np.float32
    if encoding == '16UC1':
        assert frame.is_depth and frame.tile_encoding == '32FC1'
        np.testing.assert_allclose(frame.pixels, image / 1000.0, rtol=1e-6)
        assert np.isnan(frame.border_value)
    elif encoding == '32FC1':
        assert frame.is_depth and frame.tile_encoding == '32FC1'
    else:
        assert not frame.is_depth and frame.tile_encoding == encoding and frame.border_value == 0
        np.testing.assert_array_equal(frame.pixels, image)
        assert 0.0 <= grey.min() and grey.max() <= 1.0
    assert frame.bgr8().shape == (40, 50, 3) and frame.bgr8().dtype == np.uint8


def test_depth_no_reading_is_zero_in_the_grey_view():
    depth = np.full((4, 4), 0.8, np.float32)
    depth[1, 1] = np.nan
    frame = Frame(depth, '32FC1', True)
    assert frame.grey()[1, 1] == 0 and frame.grey()[0, 0] == pytest.approx(0.8)


@pytest.mark.parametrize('family', ['similarity', 'projective', 'tps'])
@pytest.mark.parametrize('encoding', ['bgr8', '16UC1'])
def test_torch_and_opencv_paths_of_the_canonicalizer_agree(family, encoding, device):
    """The CPU's OpenCV sampling against the torch path (what CUDA runs) on each device."""
    image = smooth_image(100, 120, 3 if encoding == 'bgr8' else 0)
    image = image.astype(np.uint8) if encoding == 'bgr8' else (image * 4 + 300).astype(np.uint16)
    frame = decode_frame(encode_image(image, encoding, msg_cls=DuckImage))
    expected = Canonicalizer(perturbed_stn(family), torch.device('cpu'), (24, 24)).process(frame, ROIS)
    torch_crops = Canonicalizer(perturbed_stn(family), device, (24, 24), sampler='torch').process(frame, ROIS).crops
    assert torch_crops.dtype == expected.crops.dtype and torch_crops.shape == expected.crops.shape
    valid = ~np.isnan(expected.crops.astype(np.float64)) & ~np.isnan(torch_crops.astype(np.float64))
    difference = np.abs(torch_crops.astype(np.float64) - expected.crops.astype(np.float64))[valid]
    assert difference.max() <= (1 if encoding == 'bgr8' else 0.002)  # grey levels / metres


def test_tiles_stack_crops_in_order_and_empty_tiles_keep_their_width():
    crops = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(tile_crops(crops)[3:], crops[1])
    assert tile_crops(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 32, 3)


def test_record_round_trips_through_pointcloud2_and_gives_centres_and_metres(ros_installed):
    frame = Frame(np.full((100, 120), 0.9, np.float32), '32FC1', True)
    camera = PinholeCamera(200.0, 210.0, 59.5, 49.5, 120, 100)
    result = Canonicalizer(perturbed_stn('similarity'), torch.device('cpu'), (24, 24)).process(frame, ROIS, camera)
    record = parse_record(decode_pointcloud(encode_pointcloud(result.record)))
    np.testing.assert_array_equal(record.homographies, result.transforms.homographies.numpy())
    np.testing.assert_array_equal(record.rois, ROIS)
    assert record.params.shape == (2, 4) and (record.family == 2).all()
    centre = record.homographies @ np.array([11.5, 11.5, 1.0])
    np.testing.assert_allclose(record.centres_uv, centre[:, :2] / centre[:, 2:], atol=1e-4)
    np.testing.assert_allclose(record.xyz[:, 2], 0.9, atol=1e-6)
    np.testing.assert_allclose(record.xyz[:, 0], (record.centres_uv[:, 0] - 59.5) * 0.9 / 200.0, atol=1e-5)
    with pytest.raises(ValueError, match='not a transforms record'):
        parse_record(np.zeros(1, dtype=[('x', np.float32)]))
    assert set(H_FIELDS) <= set(result.record.dtype.names)


def test_empty_record_keeps_its_fields(ros_installed):
    record = build_record(np.zeros((0, 3, 3)), np.zeros((0, 4)), 2, np.zeros((0, 4)), (32, 32))
    cloud = encode_pointcloud(record)
    assert cloud.width == 0 and {f.name for f in cloud.fields} >= {'x', 'u', 'h00', 'family', 'p3'}


def test_camera_info_intrinsics_scale_with_binning_and_reject_bad_calibration():
    info = SimpleNamespace(k=[500.0, 0, 319.5, 0, 500.0, 239.5, 0, 0, 1], width=640, height=480)
    camera = PinholeCamera.from_camera_info(info).for_image(240, 320)
    assert (camera.fx, camera.cx, camera.cy) == (250.0, 159.5, 119.5)
    with pytest.raises(ValueError, match='uncalibrated'):
        PinholeCamera.from_camera_info(SimpleNamespace(k=[0.0] * 9, width=640, height=480))
    with pytest.raises(ValueError, match='640x480 but the image is 320x100'):
        PinholeCamera.from_camera_info(info).for_image(100, 320)


def test_depth_at_takes_the_median_of_readings_near_a_pixel():
    depth = np.full((10, 10), 1.0, np.float32)
    depth[4:7, 4:7] = np.nan
    depth[2, 2] = 0.5
    values = depth_at(depth, np.array([[5.0, 5.0], [2.0, 2.0], [50.0, 5.0], [np.nan, 1.0]]), radius=1)
    assert np.isnan(values[0]) and values[1] == 1.0 and np.isnan(values[2]) and np.isnan(values[3])


def test_load_model_default_is_the_shipped_grasp_stn_and_checks_checkpoints(tmp_path):
    model = load_model('')
    assert model.warning is None and 'grasp_stn.pt' in model.description and model.modality == 'depth'
    assert model.roi_side_m == ROI_SIDE_M and model.stn.config() == grasp_stn().config()
    path = tmp_path / 'rgb.pt'
    save_spatial_transformer(SpatialTransformer('affine', in_channels=3), path)
    with pytest.raises(ValueError, match='3-channel localization net'):
        load_model(str(path))
    save_spatial_transformer(SpatialTransformer('affine'), path, metadata={'modality': 'thermal'})
    with pytest.raises(ValueError, match="modality 'thermal'"):
        load_model(str(path))
    with pytest.raises(CheckpointError, match='does not exist'):
        load_model(str(tmp_path / 'missing.pt'))


def test_health_reports_rates_drops_bad_inputs_and_gaps():
    health = NodeHealth(stale_after_s=1.0)
    assert health.report(now=0.0).level == WARN  # no input yet
    for i in range(30):
        health.on_input(now=i / 30)
        health.on_processed(5.0 + i % 3, 12.0)
    report = health.report(now=1.0)
    assert report.level == OK and report.values['input rate (Hz)'] == '30.00'
    assert report.values['processing median (ms)'] == '6.00'
    health.on_bad_input('short_data')
    health.on_bad_input('short_data')
    health.on_input(now=3.5)  # a 2.5 s gap
    report = health.report(now=3.6)
    assert report.level == WARN and 'bad input' in report.message
    assert report.values['bad input: short_data'] == '2' and report.values['input gaps'] == '1'
    assert report.values['longest input gap (s)'] == '2.53'
    assert health.report(now=3.7).level == OK  # the bad inputs were in the last period only
    assert 'no input for' in health.report(now=10.0).message


def test_log_throttle_allows_one_line_per_reason_per_period():
    throttle = LogThrottle(5.0)
    assert throttle.allow('a', now=0.0) and throttle.allow('b', now=0.1)
    assert not throttle.allow('a', now=4.9) and throttle.allow('a', now=5.1)


def test_a_metric_crop_stn_scales_rois_from_depth_and_needs_camera_info():
    from stn_ros.perception.stn.canonicalizer import MissingCameraInfo

    frame = Frame(np.full((100, 120), 0.5, np.float32), '32FC1', True)
    camera = PinholeCamera(200.0, 200.0, 59.5, 49.5, 120, 100)
    canonicalizer = Canonicalizer(identity_model(), torch.device('cpu'), (32, 32), roi_side_m=0.1)
    result = canonicalizer.process(frame, ROIS, camera)
    side = 0.1 * 200 / 0.5  # 40 px
    np.testing.assert_allclose(result.record['roi_w'], side, rtol=1e-5)
    np.testing.assert_allclose(result.record['roi_x'] + (side - 1) / 2, ROIS[:, 0] + (ROIS[:, 2] - 1) / 2, atol=1e-4)
    with pytest.raises(MissingCameraInfo, match='camera_info'):
        canonicalizer.process(frame, ROIS, None)
    assert len(canonicalizer.process(frame, np.zeros((0, 4), np.float32), None).record) == 0


def test_a_metric_crop_stn_falls_back_to_the_plain_rois_without_depth_or_camera_info():
    camera = PinholeCamera(200.0, 200.0, 59.5, 49.5, 120, 100)
    trained = perturbed_stn('similarity')  # not the identity: the fallback must not use it
    canonicalizer = Canonicalizer(trained, torch.device('cpu'), (32, 32), roi_side_m=0.1, identity_fallback=True)
    grey = Frame(np.random.default_rng(0).integers(0, 255, (100, 120), dtype=np.uint8), 'mono8', False)
    depth = Frame(np.full((100, 120), 0.5, np.float32), '32FC1', True)
    for frame, cam, reason in ((grey, camera, 'not a depth image'), (depth, None, 'no camera_info')):
        result = canonicalizer.process(frame, ROIS, cam)
        assert reason in result.fallback
        np.testing.assert_allclose(result.record['roi_w'], ROIS[:, 2])  # the plain ROIs, not metric squares
        identity = Canonicalizer(identity_model(), torch.device('cpu'), (32, 32)).process(frame, ROIS, cam)
        np.testing.assert_allclose(result.transforms.homographies, identity.transforms.homographies, atol=1e-6)
    assert canonicalizer.process(depth, ROIS, camera).fallback is None
