"""stn_export: both nets as ONNX with a dynamic batch, equal to torch under onnxruntime (CPU); the localization net
ranks its hypotheses as stn_node does."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from stn_ros.apps.export import GraspQuality, Localization
from stn_ros.bridge.image_codec import encode_image
from stn_ros.core import homography_grid, roi_matrix
from stn_ros.core.crops import sample_localization_crops, scale_by_field
from stn_ros.core.spatial_transformer import median_of_nonzero, median_of_nonzero_sorted
from stn_ros.models.gqcnn import load_gqcnn
from stn_ros.perception.frame_report import FrameReport
from stn_ros.perception.geometry.table_view import TablePlane
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.perception.stn.object_views import FrameView
from stn_ros.perception.stn.steps import StnPipeline
from stn_ros.ros.parameter_specs import default_values, gripper_from
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.sim.prisms.camera_frames import synthetic_frame

WEIGHTS = Path(__file__).resolve().parents[1] / 'weights'
NODE_VALUES = default_values(STN_PARAMETERS)  # stn_node's values when nothing is set
NODE_HYPOTHESES = NODE_VALUES['hypotheses_per_object']


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> Path:
    """The folder ``stn_export`` (defaults) wrote; it checked both nets against torch itself."""
    for exporter in ('onnx', 'onnxscript'):  # not on a GPU machine, which has onnxruntime only
        pytest.importorskip(exporter, reason=f'stn_export needs {exporter}')
    out = tmp_path_factory.mktemp('onnx')
    result = subprocess.run(
        [str(Path(sys.executable).parent / 'stn_export'), '--out', str(out)],
        capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count('(ok)') == 2, result.stdout
    assert f'the {NODE_HYPOTHESES} best-scored of its 4 hypotheses' in result.stdout, result.stdout
    return out


def run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, inputs)


@pytest.mark.timeout(240)
def test_the_export_command_writes_both_nets_and_they_match_torch(exported):
    import onnx

    rng = np.random.default_rng(7)
    stn = load_model('').stn.eval()
    crops = (0.5 + 0.4 * rng.random((7, 1, *stn.localization_size))).astype(np.float32)
    crops[rng.random(crops.shape) < 0.2] = 0.0  # holes
    images = (0.03 * rng.standard_normal((7, 1, 32, 32))).astype(np.float32)
    z = np.full(7, 0.66, np.float32)
    cases = [
        ('localization.onnx', Localization(stn, NODE_HYPOTHESES), {'crops': crops}),
        ('gqcnn.onnx', GraspQuality(load_gqcnn(WEIGHTS / 'gqcnn.pt')[0].eval()), {'images': images, 'z': z}),
    ]
    for name, module, inputs in cases:
        model = onnx.load(exported / name)
        assert all(i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input), f'{name}: fixed batch'
        actual = run_onnx(exported / name, inputs)
        with torch.no_grad():
            expected = module(*(torch.from_numpy(v) for v in inputs.values()))
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert len(actual) == len(expected), name
        for a, e in zip(actual, expected, strict=True):
            np.testing.assert_allclose(a, e.numpy(), atol=1e-4, rtol=0)
    params, scores = run_onnx(exported / 'localization.onnx', {'crops': crops})
    assert params.shape == (7, NODE_HYPOTHESES, 4) and scores.shape == (7, NODE_HYPOTHESES)
    assert (np.diff(scores, axis=1) <= 0).all(), scores  # best first


@pytest.mark.timeout(240)
def test_the_exported_ranking_is_what_stn_node_publishes(exported):
    """stn_node's own steps (defaults, shipped weights) on a frame of several objects: localization.onnx, fed the
    localization crops of the ROIs the node's record names, gives each object's hypotheses in the record's order
    (object-major, best first), with its parameters and scores."""
    from std_msgs.msg import Header

    model = load_model('')
    values = NODE_VALUES
    pipeline = StnPipeline.for_gripper(model, torch.device('cpu'), values['output_size'], gripper_from(values))
    synthetic = synthetic_frame(1, 0, '16UC1')  # 5 prisms
    msg = encode_image(synthetic.depth, '16UC1', header=Header(frame_id='camera'))
    frame = pipeline.decode(msg, FrameReport())
    result = pipeline.canonicalize(frame, msg, values, (synthetic.scene.camera, 'camera'), FrameReport())
    record, k = result.record, NODE_HYPOTHESES
    objects = len(record) // k
    assert result.hypotheses_per_object == k and objects >= 3 and len(record) == objects * k
    assert (record['hypothesis'].reshape(objects, k) == np.arange(k)).all()
    assert (record['object_id'].reshape(objects, k) == np.arange(objects)[:, None]).all()
    rois = np.stack([record[f] for f in ('roi_x', 'roi_y', 'roi_w', 'roi_h')], axis=1)[::k]
    grey = torch.from_numpy(frame.grey())[None]
    normal = np.stack([record[f] for f in ('nx', 'ny', 'nz')], axis=1)[0]
    assert np.isfinite(normal).all()  # the defaults canonicalize depth with camera_info to the table's view
    crops = view_localization_crops(grey, rois, model.stn.localization_size, normal, synthetic.scene.camera)
    params, scores = run_onnx(exported / 'localization.onnx', {'crops': crops})
    node_params = np.stack([record[f'p{i}'] for i in range(params.shape[-1])], axis=1).reshape(objects, k, -1)
    np.testing.assert_allclose(params, node_params, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores, record['score'].reshape(objects, k), atol=1e-5, rtol=0)
    assert (np.diff(scores, axis=1) < 0).all(), scores  # distinct scores: the order is the ranking, not a tie


def view_localization_crops(grey: torch.Tensor, rois: np.ndarray, size, normal: np.ndarray, camera) -> np.ndarray:
    """What the localization net looked at, from a view-canonicalized record (transforms_record's docstring): the ROIs
    are squares in the pixels of the view along ``normal``, ``K R K^-1`` maps them to the source, and the readings are
    re-expressed along the normal."""
    view = FrameView.of(camera, TablePlane(normal.astype(np.float64) / np.linalg.norm(normal), 1.0))
    # composed as the node composes it: float32 ROI maps, the view's map cast to float32
    to_source = torch.from_numpy(view.view_to_source_normalized).float() @ roi_matrix(
        torch.from_numpy(rois), grey.shape[-2:]
    )
    grids = homography_grid(to_source, *size)
    return scale_by_field(
        sample_localization_crops(grey, grids), grids, torch.from_numpy(view.factor_normalized)
    ).numpy()


def test_the_exportable_median_is_torch_nanmedian_of_the_nonzero_values():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        images = torch.randint(0, 6, (5, 1, 8, 8), generator=generator).float() * 0.1  # ties and zeros
        images[0] = 0.0  # no reading at all: 0
        nonzero = torch.where(images != 0, images, torch.nan).flatten(1)
        expected = torch.nan_to_num(nonzero.nanmedian(dim=1).values, nan=0.0)
        assert torch.equal(median_of_nonzero(images), expected)
        assert torch.equal(median_of_nonzero_sorted(images), expected)  # the path ONNX export takes


def test_the_exported_quality_is_the_nodes_quality_temperature_included():
    from stn_ros.models.gqcnn import GQCNN

    torch.manual_seed(0)
    model = GQCNN(temperature=2.0).eval()
    images, z = 0.02 * torch.randn(4, 1, 32, 32), torch.full((4,), 0.7)
    torch.testing.assert_close(GraspQuality(model)(images, z), model.quality(images, z))
