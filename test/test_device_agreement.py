"""Every device canonicalizes and scores as the CPU's reference does (stn_ros/evaluation/device_agreement.py): the
same bodies on the CPU and on CUDA (the ``device`` fixture), and the steps keep every tensor on their device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stn_ros.core import SpatialTransformer, crop_transforms, sample_grids
from stn_ros.core.families import FAMILIES
from stn_ros.evaluation.device_agreement import (
    ENCODINGS,
    TOLERANCES,
    Agreement,
    canonicalizer_agreement,
    gqcnn_agreement,
)
from stn_ros.models.gqcnn import load_gqcnn

WEIGHTS = Path(__file__).resolve().parents[1] / 'weights'


def test_the_canonicalizer_on_each_device_agrees_with_the_cpus_opencv_path(device):
    """The reference is the CPU's default (OpenCV sampling from ``H``); the device runs the torch sampling path,
    the one CUDA takes, for every encoding and family."""
    results = canonicalizer_agreement(device, other_sampler='torch')
    assert len(results) == len(ENCODINGS) * len(FAMILIES)
    bad = [r for r in results if not r.ok()]
    assert not bad, f'{len(bad)} of {len(results)} encodings x families disagree (tolerances {TOLERANCES}): {bad}'


def test_the_gqcnn_on_each_device_scores_as_a_float64_reference(device):
    model, _ = load_gqcnn(WEIGHTS / 'gqcnn.pt')
    assert gqcnn_agreement(model, device) <= TOLERANCES['quality']


def test_an_agreement_allows_a_nan_boundary_pixel_but_not_a_shifted_mask():
    """One pixel NaN on one device only (a sampling point that crossed a hole's edge) is within
    ``nan_fraction``; a hole's mask shifted by a pixel (a few percent of the pixels) is not."""
    within = Agreement('16UC1', 'affine', homography_px=0.0, crops=0.0, nan_mismatch=1, pixels=1152)
    shifted = Agreement('16UC1', 'affine', homography_px=0.0, crops=0.0, nan_mismatch=46, pixels=1152)
    assert within.ok() and not shifted.ok()
    assert not Agreement('16UC1', 'affine', TOLERANCES['homography_px'] * 2, 0.0, 0, 1152).ok()
    assert not Agreement('32FC1', 'tps', 0.0, TOLERANCES['depth_m'] * 2, 0, 1152).ok()


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_the_device_steps_make_no_tensor_off_their_device(family):
    """Run on the meta device (shapes only, a device of its own): the localization, the sampling and the GQ-CNN
    make every tensor on their inputs' device. A tensor made on the CPU by mistake fails here as it would on CUDA."""
    from stn_ros.perception.grasps.steps import load_gqcnn_model

    meta = torch.device('meta')
    stn = SpatialTransformer(family=family, hypotheses=4).eval().to(meta)
    source = torch.empty(1, 480, 640, device=meta)
    with torch.no_grad():
        transforms = crop_transforms(stn, source, torch.empty(5, 4, device=meta), (32, 32), 4, check_sizes=False)
        crops = sample_grids(source, transforms.source_grids((32, 32)), float('nan'))
        quality = load_gqcnn_model('')[0].eval().to(meta).quality(crops, torch.empty(len(crops), device=meta))
    outputs = (
        transforms.params,
        transforms.matrices,
        transforms.homographies,
        transforms.probabilities,
        crops,
        quality,
    )
    assert all(t.device == meta for t in outputs)
    assert crops.shape == (20, 1, 32, 32) and quality.shape == (20,)
