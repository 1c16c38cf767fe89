"""The CUDA graphs: captured on CUDA, they give the op-by-op path's crops and the CPU's qualities.

Tests marked ``cuda`` run wherever torch sees a CUDA device and are skipped elsewhere, with the reason
(``conftest.py``). The device matrix (the same bodies on the CPU and on CUDA) lives in each topic's module:
``test_device_agreement.py``, ``test_canonicalizer.py``, ``test_crops.py``, ``test_training.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stn_ros.evaluation.device_agreement import TOLERANCES

CUDA = torch.device('cuda')


@pytest.mark.cuda
@pytest.mark.parametrize('objects,hypotheses', [(1, 1), (5, 4), (16, 4), (24, 2)])
def test_cuda_graphs_are_captured_and_give_the_op_by_op_crops(objects, hypotheses):
    """The canonicalizer's default on CUDA replays captured graphs (padded batches): every capture succeeds, and
    the crops and transforms are the op-by-op path's; a second frame replays the same graphs."""
    from images import CAMERA, boxes_depth_frame
    from stn_ros.perception.stn.canonicalizer import Canonicalizer, load_model

    model = load_model('')
    graphed = Canonicalizer(model.stn, CUDA, (32, 32), model.roi_side_m)
    eager = Canonicalizer(model.stn, CUDA, (32, 32), model.roi_side_m, cuda_graphs=False)
    frame, rois = boxes_depth_frame(objects)
    for _ in range(2):  # the second frame replays the graphs the first captured
        a = eager.process(frame, rois, CAMERA, hypotheses=hypotheses)
        b = graphed.process(frame, rois, CAMERA, hypotheses=hypotheses)
        np.testing.assert_allclose(a.homographies, b.homographies, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a.crops, b.crops, atol=1e-4, equal_nan=True)
    assert graphed.graph_failures == [] and all(g.captured >= 1 for g in graphed._graphs.values())


@pytest.mark.cuda
def test_the_gqcnn_replays_a_graph_on_cuda_with_the_cpus_qualities():
    from images import CAMERA
    from stn_ros.perception.grasps.grasp_quality import GraspScorer
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    model, _, _ = load_gqcnn_model('')
    crops = (0.7 + np.random.default_rng(2).uniform(-0.05, 0.0, (5, 32, 32))).astype(np.float32)
    homographies = np.repeat(np.diag([2.0, 2.0, 1.0])[None], 5, axis=0)
    cpu = GraspScorer(model, torch.device('cpu')).score(crops, homographies, CAMERA, 0.5).record
    scorer = GraspScorer(model, CUDA)
    for _ in range(2):
        cuda = scorer.score(crops, homographies, CAMERA, 0.5).record
        np.testing.assert_allclose(cuda['quality'], cpu['quality'], atol=TOLERANCES['quality'])
    assert scorer._quality.failure is None and scorer._quality.captured == 1
