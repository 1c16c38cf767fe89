"""The depth frame on the device: its pinned upload (an event per buffer), the plane fit and the object threshold in
torch against proposals' numpy, and the one upload a frame gets on the device path (StnPipeline).

Agreement asked for (measured on this CPU: the plane's inverse depth within 3e-14 relative, masks identical): the
plane's inverse depth over the frame within 1e-9 relative (float32 rounding is 6e-8), the masks equal but for
pixels whose ``(z + threshold) / plane depth`` is within 1e-6 of 1, the cuts and the proposals equal.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from images import CAMERA, depth_scene
from stn_ros.bridge.image_codec import encode_image
from stn_ros.core.cuda_graphs import PinnedUpload, StagingBuffer, host_synchronization
from stn_ros.perception.frame_report import FrameReport
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.perception.stn.device_proposals import depth_cut_torch, fit_table_plane_torch, object_mask_torch
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.proposals import (
    ProposalConfig,
    _object_mask,
    depth_proposals,
    fit_table_plane,
    ransac_draws,
    split_at_depth_edges,
)
from stn_ros.perception.stn.steps import StnPipeline
from stn_ros.ros.parameter_specs import default_values, gripper_from
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from test_proposals import OBJECTS, box, boxes_one_behind_the_other, table_scene

CPU = torch.device('cpu')
CONFIG = ProposalConfig()


def duck_image(image: np.ndarray, encoding: str) -> SimpleNamespace:
    """A ``sensor_msgs/Image`` stand-in from the camera frame ``camera`` (no ROS needed: the GPU machine has none)."""
    return encode_image(image, encoding, header=SimpleNamespace(frame_id='camera'), msg_cls=SimpleNamespace)


def millimetres(mm: np.ndarray) -> np.ndarray:
    """A 16UC1 image as the node decodes it: float32 metres, NaN where 0."""
    return decode_frame(duck_image(mm, '16UC1')).pixels


def boxes_mm(objects: int) -> np.ndarray:
    """``objects`` boxes 1 to 9 cm tall on a grid, 8 a row, on a flat table (uint16 mm, 1 % dropouts)."""
    return depth_scene([(20 + (i % 8) * 75, 30 + (i // 8) * 140, 45, 55, 0.01 + 0.005 * i) for i in range(objects)])


def bad_readings() -> np.ndarray:
    depth, _ = table_scene(OBJECTS[:2])
    depth[400:440, 50:100] = 0.0
    depth[20:60, 20:60] = np.inf
    depth[300:340, 560:600] = -np.inf
    return depth


def touching_boxes() -> np.ndarray:
    """Two boxes side by side, 3 and 10 cm tall: the cut at depth edges separates them."""
    return table_scene([(box(200, 200, 40, 40), 0.03), (box(281, 200, 40, 40), 0.1)])[0]


FRAMES = {
    'boxes on a flat table (mm)': lambda: millimetres(depth_scene([(80, 60, 90, 70, 0.05), (300, 220, 60, 120, 0.1)])),
    '16 boxes (mm)': lambda: millimetres(boxes_mm(16)),
    'tilted noisy table': lambda: table_scene(OBJECTS, noise=0.002)[0],
    'steep table, 10 % missing': lambda: table_scene(OBJECTS, tilt_deg=(15.0, -10.0), noise=0.003, dropout=0.1)[0],
    'mostly missing': lambda: table_scene(OBJECTS, dropout=0.85)[0],  # the draws' scan of every valid pixel
    'zero and inf readings': bad_readings,
    'touching boxes at two heights': touching_boxes,
    'a box hiding another at 50 deg': lambda: boxes_one_behind_the_other(50.0, 0.01).depth,
}


@pytest.fixture(params=list(FRAMES))
def depth(request) -> np.ndarray:
    return FRAMES[request.param]()


def inverse_plane(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return plane[0] * cols + plane[1] * rows + plane[2]


def test_the_torch_plane_fit_and_object_mask_give_numpys(depth, device):
    plane = fit_table_plane(depth, CONFIG)
    plane_t, found = fit_table_plane_torch(
        torch.from_numpy(depth).to(device), *ransac_draws(depth, CONFIG), 0.5 * CONFIG.table_threshold
    )
    assert found.item() and plane_t.dtype == torch.float64 and plane_t.shape == (3,)
    ours = plane_t.cpu().numpy()
    np.testing.assert_allclose(inverse_plane(ours, depth.shape), inverse_plane(plane, depth.shape), rtol=1e-9)

    mask = _object_mask(depth, plane, CONFIG.table_threshold)
    mask_t = object_mask_torch(torch.from_numpy(depth).to(device), plane_t, CONFIG.table_threshold).cpu().numpy()
    assert mask.any() or not mask_t.any()
    with np.errstate(invalid='ignore'):
        margin = np.abs((depth + np.float32(CONFIG.table_threshold)) * inverse_plane(plane, depth.shape) - 1.0)
    differ = mask.astype(bool) != mask_t
    assert (margin[differ] < 1e-6).all(), f'{differ.sum()} pixels differ away from the threshold'


def test_the_torch_cut_at_depth_edges_is_numpys(depth, device):
    mask = _object_mask(depth, fit_table_plane(depth, CONFIG), CONFIG.table_threshold)
    cut = depth_cut_torch(torch.from_numpy(mask.astype(bool)).to(device), torch.from_numpy(depth).to(device), 0.01)
    expected = split_at_depth_edges(mask, depth, 0.01)
    np.testing.assert_array_equal(cut.cpu().numpy(), expected.astype(bool))


@pytest.mark.parametrize(
    'config',
    [CONFIG, dataclasses.replace(CONFIG, decimation=2), dataclasses.replace(CONFIG, split_jump=0.0, seed=3)],
    ids=['default', 'decimation 2', 'no cut, seed 3'],
)
def test_depth_proposals_on_the_device_path_are_the_hosts(depth, config, device):
    expected = depth_proposals(depth, config, max_crops=12)
    found = depth_proposals(depth, config, max_crops=12, on_device=torch.from_numpy(depth).to(device))
    np.testing.assert_array_equal(found.rois, expected.rois)
    np.testing.assert_array_equal(found.areas, expected.areas)
    np.testing.assert_array_equal(found.labels, expected.labels)


@pytest.mark.parametrize(
    'config',
    [CONFIG, dataclasses.replace(CONFIG, decimation=2), dataclasses.replace(CONFIG, split_jump=0.0, seed=3)],
    ids=['default', 'decimation 2', 'no cut, seed 3'],
)
def test_depth_proposals_by_height_on_the_device_path_are_the_hosts(depth, config, device):
    """With the intrinsics: the height above the plane along its normal, the cut at height jumps, the plane and the
    grasp points; the device's distance to the plane is float64 as the host's, so the masks agree as without them."""
    expected = depth_proposals(depth, config, max_crops=12, camera=CAMERA)
    found = depth_proposals(depth, config, max_crops=12, on_device=torch.from_numpy(depth).to(device), camera=CAMERA)
    np.testing.assert_array_equal(found.rois, expected.rois)
    np.testing.assert_array_equal(found.areas, expected.areas)
    np.testing.assert_array_equal(found.labels, expected.labels)
    if expected.plane is None:
        assert found.plane is None and found.views is None
        return
    np.testing.assert_allclose(found.plane.normal, expected.plane.normal, atol=1e-12)
    assert found.plane.distance == pytest.approx(expected.plane.distance, rel=1e-12)
    np.testing.assert_allclose(found.views.centres, expected.views.centres, atol=1e-6)
    np.testing.assert_allclose(found.views.depths, expected.views.depths, atol=1e-9)


def test_the_device_path_cuts_touching_objects_apart(device):
    depth = touching_boxes()
    assert len(depth_proposals(depth, dataclasses.replace(CONFIG, split_jump=0.0)).rois) == 1  # without the cut
    assert len(depth_proposals(depth, CONFIG, on_device=torch.from_numpy(depth).to(device)).rois) == 2


def test_the_device_work_reads_no_value_on_the_host_before_its_one_download():
    """On CUDA a value read on the host (``.item()``, a tensor as an index, a mask's nonzero) waits for the stream:
    the fit, the threshold and the cut read none, found here on fake tensors (:func:`host_synchronization`)."""
    depth = touching_boxes()
    draws = ransac_draws(depth, CONFIG)

    def device_work(depth: torch.Tensor) -> tuple[torch.Tensor, ...]:
        plane, found = fit_table_plane_torch(depth, *draws, 0.5 * CONFIG.table_threshold)
        mask = object_mask_torch(depth, plane, CONFIG.table_threshold)
        return found, mask, depth_cut_torch(mask, depth, CONFIG.split_jump)

    assert host_synchronization(device_work, torch.from_numpy(depth)) is None
    assert 'nonzero' in host_synchronization(lambda depth: depth[depth > 0], torch.from_numpy(depth))


@pytest.mark.parametrize('readings', [0, 62])
def test_the_device_path_finds_nothing_where_the_host_finds_no_plane(readings, device):
    depth = np.full((480, 640), np.nan, np.float32)
    depth.reshape(-1)[:: 307200 // readings if readings else 1][:readings] = 0.7
    found = depth_proposals(depth, CONFIG, on_device=torch.from_numpy(depth).to(device))
    assert found.rois.shape == (0, 4) and found.labels.shape == depth.shape and not found.labels.any()


def test_the_device_path_wants_the_frame_itself():
    depth = table_scene(OBJECTS)[0]
    with pytest.raises(ValueError, match='on_device must be the frame'):
        depth_proposals(depth, CONFIG, on_device=torch.from_numpy(depth[::2]))


class WatchedEvent:
    """A ``torch.cuda.Event`` stand-in that logs its calls and what its buffer held when it was waited on."""

    def __init__(self, name: str, log: list, host: torch.Tensor):
        self.name, self.log, self.host = name, log, host

    def record(self, stream=None) -> None:
        self.log.append(('record', self.name, stream))

    def synchronize(self) -> None:
        self.log.append(('wait', self.name, self.host.clone()))


def test_a_pinned_buffer_waits_for_its_own_last_copy_before_it_is_overwritten():
    log = []

    def staging(array: np.ndarray) -> StagingBuffer:
        host = torch.from_numpy(np.zeros_like(array))
        return StagingBuffer(host, WatchedEvent(f'{array.shape}', log, host))

    upload = PinnedUpload(CPU, staging)
    first, second, other = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32), np.arange(4, dtype=np.uint16)
    assert torch.equal(upload(first), torch.from_numpy(first))
    upload(other)  # another shape: another buffer, no wait
    assert [entry[:2] for entry in log] == [('record', '(2, 3)'), ('record', '(4,)')]
    assert torch.equal(upload(second), torch.from_numpy(second))
    assert [entry[:2] for entry in log[2:]] == [('wait', '(2, 3)'), ('record', '(2, 3)')]
    assert torch.equal(log[2][2], torch.from_numpy(first))  # waited on before the second frame was written


def test_an_upload_is_not_changed_by_the_next_one(device):
    upload = PinnedUpload(device)
    arrays = [np.full((48, 64), value, np.float32) for value in (1.0, 2.0, 3.0)]
    uploaded = [upload(array) for array in arrays]
    for array, tensor in zip(arrays, uploaded, strict=True):
        assert tensor.device.type == device.type and torch.equal(tensor.cpu(), torch.from_numpy(array))


class CountedUpload:
    def __init__(self, upload: PinnedUpload):
        self.upload, self.arrays = upload, []

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        self.arrays.append(array)
        return self.upload(array)


@pytest.mark.parametrize('sampler', ['torch', 'opencv'])
def test_a_depth_frame_goes_to_the_device_once_on_the_device_path(sampler, device):
    """StnPipeline with depth proposals on the device: one upload of the frame, shared by the proposals, the
    localization and (torch sampler) the sampling, and one of its ROIs; the crops are the host path's."""
    values = dict(default_values(STN_PARAMETERS), crop_source='proposals', max_crops=16)
    model = load_model('')
    pipelines = [
        StnPipeline.for_gripper(model, device, values['output_size'], gripper_from(values), sampler=sampler)
        for _ in range(2)
    ]
    assert all(p.device_proposals == (device.type == 'cuda') for p in pipelines)
    host, on_device = pipelines[0], pipelines[1]
    host.device_proposals, on_device.device_proposals = False, True
    counted = on_device.canonicalizer._upload = CountedUpload(on_device.canonicalizer._upload)
    for objects in (3, 9):
        msg = duck_image(boxes_mm(objects), '16UC1')
        camera = (CAMERA, 'camera')
        expected = host.canonicalize(host.decode(msg, FrameReport()), msg, values, camera, FrameReport())
        counted.arrays.clear()
        frame = on_device.decode(msg, FrameReport())
        result = on_device.canonicalize(frame, msg, values, camera, FrameReport())
        # Three pinned uploads: the frame, once, the view's maps (view canonicalization: a table and camera_info) and
        # the ROIs (their matrices, on the CUDA-graph path).
        assert len(counted.arrays) == 3 and counted.arrays[0] is frame.pixels
        assert counted.arrays[1].shape == (4, 3)
        assert counted.arrays[2].shape in ((objects, 4), (objects, 3, 3))
        assert len(result.crops) == len(expected.crops) == objects * values['hypotheses_per_object']
        for field in ('roi_x', 'roi_y', 'roi_w', 'roi_h'):  # the same proposals
            np.testing.assert_array_equal(result.record[field], expected.record[field])
        # the same crops: identical on a CPU; on CUDA two canonicalizers' graphs may round apart
        np.testing.assert_allclose(result.homographies, expected.homographies, rtol=0, atol=1e-4)
        np.testing.assert_allclose(result.crops, expected.crops, rtol=0, atol=1e-5)
