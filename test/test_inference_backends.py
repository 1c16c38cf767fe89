"""The inference backends (stn_ros.models.backends): torch and onnxruntime agree on the two nets, in the canonicalizer,
in the grasp scorer and over real topics; the ``inference_backend`` parameter; the GQ-CNN runs once per frame.

Tolerances: the localization's params and scores within 1e-4 (onnxruntime measured ~6e-7 from torch), its ranking
identical; the GQ-CNN's quality within 1e-5 (measured ~2e-7); over topics the published H's crop corners within
1e-3 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stn_ros.core import inference_module
from stn_ros.models import backends
from stn_ros.models.backends import (
    AUTO_CPU,
    BACKENDS,
    Localizer,
    QualityNet,
    gqcnn_probe,
    localization_probe,
    resolve_backend,
)
from stn_ros.perception.grasps.grasp_quality import GraspScorer
from stn_ros.perception.grasps.steps import load_gqcnn_model
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.ros.grasp_parameters import PARAMETERS as GRASP_PARAMETERS
from stn_ros.ros.grasp_parameters import check_together as grasp_check_together
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.ros.stn_parameters import check_together as stn_check_together

pytest.importorskip('onnxscript', reason='the onnxruntime backend exports with onnx and onnxscript')
pytest.importorskip('onnxruntime')

CPU = torch.device('cpu')
PARAMS_TOLERANCE = 1e-4
QUALITY_TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('onnx_cache')


@pytest.fixture(scope='module')
def stn():
    return inference_module(load_model('').stn, CPU)


@pytest.fixture(scope='module')
def gqcnn():
    return inference_module(load_gqcnn_model('')[0], CPU)


@pytest.fixture(scope='module')
def localizers(stn, cache):
    return Localizer(stn, 'torch'), Localizer(stn, 'onnxruntime', CPU, 1, cache)


@pytest.fixture(scope='module')
def quality_nets(gqcnn, cache):
    return QualityNet(gqcnn, 'torch'), QualityNet(gqcnn, 'onnxruntime', CPU, 2, cache)


@pytest.mark.parametrize('batch', [1, 5, 16, 64])
@pytest.mark.parametrize('count', [1, 3, 4])
def test_the_localization_backends_agree(localizers, stn, batch, count):
    torch_net, onnx_net = localizers
    assert (torch_net.name, onnx_net.name) == ('torch', 'onnxruntime')
    crops = localization_probe(stn, batch, torch.Generator().manual_seed(batch))['crops']
    expected = stn.localize_ranked(crops, count)
    for net in (torch_net, onnx_net):
        params, probabilities = net.localize_ranked(crops, count)
        assert params.shape == (batch, count, 4) and probabilities.shape == (batch, count)
        torch.testing.assert_close(params, expected[0], atol=PARAMS_TOLERANCE, rtol=0)
        torch.testing.assert_close(probabilities, expected[1], atol=PARAMS_TOLERANCE, rtol=0)
    assert torch.equal(torch_net.localize_ranked(crops, count)[0], expected[0])  # torch: the module itself, bit for bit


def test_the_localization_backends_rank_alike_and_take_an_empty_batch(localizers, stn):
    torch_net, onnx_net = localizers
    crops = localization_probe(stn, 64, torch.Generator().manual_seed(3))['crops']
    params, scores = stn.localization.forward_all(stn._localization_input(crops))
    ranked = onnx_net.localize_ranked(crops, 4)[0]
    order = scores.argsort(dim=1, descending=True, stable=True)
    torch.testing.assert_close(ranked, params.gather(1, order[..., None].expand(-1, -1, 4)), atol=1e-4, rtol=0)
    empty = torch.zeros(0, 1, *stn.localization_size)
    assert onnx_net.localize_ranked(empty, 4)[0].shape == (0, 4, 4)


@pytest.mark.parametrize('batch', [1, 16, 64, 256])
def test_the_gqcnn_backends_agree(quality_nets, gqcnn, batch):
    probe = gqcnn_probe(gqcnn, batch, torch.Generator().manual_seed(batch))
    expected = gqcnn.quality(probe['images'], probe['z'])
    for net in quality_nets:
        quality = net.quality(probe['images'], probe['z'])
        assert quality.shape == (batch,)
        torch.testing.assert_close(quality, expected, atol=QUALITY_TOLERANCE, rtol=0)


def test_the_export_is_cached_by_the_weights_hash(stn, cache, monkeypatch):
    """A second session of the same weights reads the cached file; other weights get a file of their own."""
    files = sorted(cache.glob('localization-*.onnx'))
    assert len(files) == 1 and not list(cache.glob('*.part'))
    monkeypatch.setattr(backends, 'export_onnx', lambda *a, **k: pytest.fail('exported again'))
    Localizer(stn, 'onnxruntime', CPU, 1, cache)
    other = load_model('').stn
    with torch.no_grad():
        other.localization.regressor.bias.add_(0.01)
    assert backends.module_digest(backends.Localization(other)) != backends.module_digest(backends.Localization(stn))


def test_a_session_that_disagrees_with_torch_is_refused(stn, monkeypatch):
    monkeypatch.setattr(backends, 'TOLERANCE', -1.0)  # nothing agrees
    with pytest.raises(ValueError, match='onnxruntime disagrees with torch'):
        Localizer(stn, 'onnxruntime', CPU, 1)


def test_which_backend_each_choice_means():
    # auto on a CPU, as measured (benchmarks/inference_backend_benchmark.py); a budget not measured is torch
    assert resolve_backend('auto', 'localization', CPU, 1) == resolve_backend('auto', 'localization', CPU, 2) == 'torch'
    assert resolve_backend('auto', 'gqcnn', CPU, 1) == 'onnxruntime'
    assert resolve_backend('auto', 'gqcnn', CPU, 2) == resolve_backend('auto', 'gqcnn', CPU, 8) == 'torch'
    for net in backends.NETS:
        for threads in (1, 2):
            assert resolve_backend('auto', net, torch.device('cuda'), threads) == 'torch'  # its CUDA graphs
            assert resolve_backend('auto', net, CPU, threads) == AUTO_CPU[net, threads]
        assert resolve_backend('torch', net, CPU) == 'torch'
        assert resolve_backend('onnxruntime', net, CPU) == 'onnxruntime'
        with pytest.raises(ValueError, match='CPU only'):
            resolve_backend('onnxruntime', net, torch.device('cuda:0'))
    with pytest.raises(ValueError, match='must be one of auto, torch, onnxruntime'):
        resolve_backend('tensorrt', 'gqcnn', CPU)


def test_auto_is_torch_where_onnxruntime_cannot_be_built(monkeypatch):
    monkeypatch.setattr(backends, 'onnxruntime_available', lambda: False)
    assert AUTO_CPU['gqcnn', 1] == 'onnxruntime'
    assert resolve_backend('auto', 'gqcnn', CPU, 1) == 'torch'


def test_the_scorer_on_auto_runs_what_auto_picks(gqcnn, cache):
    for threads in (1, 2):
        scorer = GraspScorer(gqcnn, CPU, inference_backend='auto', threads=threads, cache_dir=cache)
        assert scorer.quality_net.name == AUTO_CPU['gqcnn', threads]
        expected = f'{AUTO_CPU["gqcnn", threads]} (auto' + (f', {threads} thread' if threads == 1 else '')
        assert backends.describe(scorer.quality_net, 'auto').startswith(expected)


@pytest.mark.parametrize(
    'table,check', [(STN_PARAMETERS, stn_check_together), (GRASP_PARAMETERS, grasp_check_together)]
)
def test_the_inference_backend_parameter(table, check):
    (spec,) = [s for s in table if s.name == 'inference_backend']
    assert spec.default == 'auto' and spec.read_only
    assert [spec.check(name) for name in BACKENDS] == list(BACKENDS)
    for bad in ('tensorrt', '', 1, None):
        with pytest.raises(ValueError, match='must be one of auto, torch, onnxruntime'):
            spec.check(bad)
    values = default_values(table)
    check(values | {'inference_backend': 'onnxruntime', 'device': 'cpu'})
    check(values | {'inference_backend': 'torch', 'device': 'cuda:1'})
    with pytest.raises(ValueError, match='runs on the CPU only'):
        check(values | {'inference_backend': 'onnxruntime', 'device': 'cuda'})


def crops_and_homographies(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Depth crops of a bar on a table (metres), bars of different widths, and their H (a 2x scale)."""
    rng = np.random.default_rng(seed)
    crops = (0.7 + 0.001 * rng.standard_normal((count, 32, 32))).astype(np.float32)
    for index in range(count):
        width = 2 + (index * 5) % 20
        crops[index, :, 16 - width // 2 : 16 + (width + 1) // 2] -= 0.05
    return crops, np.repeat(np.diag([2.0, 2.0, 1.0])[None], count, axis=0)


class CountingSession:
    """An onnxruntime session that notes the batch of each run."""

    def __init__(self, session, calls: list[int]):
        self.session, self.calls = session, calls

    def run(self, outputs, feed):
        self.calls.append(len(feed['images']))
        return self.session.run(outputs, feed)


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_the_scorer_runs_the_gqcnn_once_per_frame(gqcnn, cache, backend):
    """A frame of 12 objects x 4 hypotheses: one GQ-CNN call of 48 crops (Dex-Net's batch), on either backend."""
    scorer = GraspScorer(gqcnn, CPU, inference_backend=backend, threads=1, cache_dir=cache)
    calls: list[int] = []
    if backend == 'torch':
        handle = scorer.model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    else:
        onnx = scorer.quality_net.backend
        onnx.session = CountingSession(onnx.session, calls)
    crops, homographies = crops_and_homographies(48)
    try:
        scorer.score(crops, homographies, None, 0.5, np.repeat(np.arange(12), 4), np.tile(np.arange(4), 12))
    finally:
        if backend == 'torch':
            handle.remove()
    assert calls == [48]


def test_the_scorer_gives_the_same_grasps_on_either_backend(gqcnn, cache):
    crops, homographies = crops_and_homographies(40, seed=2)
    records = [
        GraspScorer(gqcnn, CPU, inference_backend=name, threads=1, cache_dir=cache).score(
            crops, homographies, None, 0.5
        )
        for name in ('torch', 'onnxruntime')
    ]
    np.testing.assert_allclose(records[0].record['quality'], records[1].record['quality'], atol=QUALITY_TOLERANCE)
    assert records[0].best == records[1].best


def test_stn_node_steps_give_the_same_record_on_either_backend(cache):
    """stn_node's own steps (defaults, shipped weights) on a frame of several objects, once per backend."""
    from std_msgs.msg import Header

    from stn_ros.bridge.image_codec import encode_image
    from stn_ros.perception.frame_report import FrameReport
    from stn_ros.perception.stn.steps import StnPipeline
    from stn_ros.ros.parameter_specs import gripper_from
    from stn_ros.sim.prisms.camera_frames import synthetic_frame

    model, values = load_model(''), default_values(STN_PARAMETERS)
    synthetic = synthetic_frame(1, 0, '16UC1')
    msg = encode_image(synthetic.depth, '16UC1', header=Header(frame_id='camera'))
    records = []
    for name in ('torch', 'onnxruntime'):
        pipeline = StnPipeline.for_gripper(
            model, CPU, values['output_size'], gripper_from(values), inference_backend=name, cache_dir=cache
        )
        assert pipeline.canonicalizer.localizer.name == name
        frame = pipeline.decode(msg, FrameReport())
        result = pipeline.canonicalize(frame, msg, values, (synthetic.scene.camera, 'camera'), FrameReport())
        records.append(result.record)
    a, b = records
    assert len(a) == len(b) >= 3 * 4
    assert (a['object_id'] == b['object_id']).all() and (a['hypothesis'] == b['hypothesis']).all()
    for field in ('p0', 'p1', 'p2', 'p3', 'score'):
        np.testing.assert_allclose(a[field], b[field], atol=PARAMS_TOLERANCE, rtol=0)
    for field in ('u', 'v'):
        np.testing.assert_allclose(a[field], b[field], atol=1e-3, rtol=0)
