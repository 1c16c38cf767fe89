"""Picture of distorted MNIST: a row of original test digits, then one row per distortion of the same digits.

Every image sits on its own black canvas, centred in a grey 42x42 cell (the RTS canvas size), so the
28x28 and 42x42 outputs keep their true relative size; cells are enlarged with nearest-neighbour.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from stn_ros.training.mnist.dataset import DISTORTIONS, IMAGE_SIZE, distort, load_digits, split_digits

ROW_NAMES = ('original',) + DISTORTIONS
ROW_NOTES = {'original': 'test digits', 'R': 'rotate 90', 'RTS': 'rot/scale/shift', 'P': 'projective', 'E': 'elastic'}
CELL = max(IMAGE_SIZE.values())
LABEL_WIDTH = 130
HEADER = 26
GAP = 4
BACKGROUND = (40, 40, 40)
CELL_COLOR = (90, 90, 90)
TEXT_COLOR = (80, 220, 80)


def sheet_shape(per_kind: int, scale: int) -> tuple[int, int]:
    """``(height, width)`` in pixels of the picture of ``per_kind`` digits enlarged ``scale`` times."""
    pitch = CELL * scale + GAP
    return HEADER + len(ROW_NAMES) * pitch + GAP, LABEL_WIDTH + per_kind * pitch + GAP


def pick_digits(per_kind: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into :func:`load_digits` of ``per_kind`` random test digits, classes 0, 1, ..., 9, 0, ..."""
    _, labels = load_digits()
    test = split_digits()[1]
    return np.array([rng.choice(test[labels[test] == column % 10]) for column in range(per_kind)])


def _cell(image: np.ndarray, scale: int) -> np.ndarray:
    """A grey ``CELL x CELL`` cell with ``image`` (float in [0, 1]) centred on it, bgr8, enlarged."""
    cell = np.full((CELL, CELL, 3), CELL_COLOR, np.uint8)
    size = image.shape[0]
    start = (CELL - size) // 2
    grey = np.round(image * 255.0).astype(np.uint8)
    cell[start : start + size, start : start + size] = grey[..., None]
    return cv2.resize(cell, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def sample_sheet(seed: int = 0, per_kind: int = 10, scale: int = 3) -> np.ndarray:
    """The picture as a bgr8 array of :func:`sheet_shape` ``(per_kind, scale)``."""
    if per_kind < 1 or scale < 1:
        raise ValueError(f'per_kind and scale must be at least 1, got {per_kind} and {scale}')
    digits, labels = load_digits()
    rng = np.random.default_rng(seed)
    chosen = pick_digits(per_kind, rng)
    height, width = sheet_shape(per_kind, scale)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    pitch = CELL * scale + GAP
    font = cv2.FONT_HERSHEY_SIMPLEX
    for column, index in enumerate(chosen):
        x = LABEL_WIDTH + column * pitch
        cv2.putText(
            sheet, str(labels[index]), (x + CELL * scale // 2 - 5, HEADER - 7), font, 0.6, TEXT_COLOR, 1, cv2.LINE_AA
        )
    for row, name in enumerate(ROW_NAMES):
        y = HEADER + row * pitch
        cv2.putText(sheet, name, (8, y + CELL * scale // 2), font, 0.6, TEXT_COLOR, 1, cv2.LINE_AA)
        cv2.putText(sheet, ROW_NOTES[name], (8, y + CELL * scale // 2 + 20), font, 0.4, TEXT_COLOR, 1, cv2.LINE_AA)
        for column, index in enumerate(chosen):
            image = digits[index] if name == 'original' else distort(digits[index], name, rng)
            x = LABEL_WIDTH + column * pitch
            sheet[y : y + CELL * scale, x : x + CELL * scale] = _cell(image, scale)
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description='Write one PNG of distorted MNIST (STN paper, sec. 4.1): a row of original test '
        'digits, then a row per distortion (R: rotation, RTS: rotation/scale/translation '
        'in a 42x42 canvas, P: projective, E: elastic) of the same digits.'
    )
    parser.add_argument(
        '--output',
        type=Path,
        default=Path('docs/mnist_distortions.png'),
        help='PNG to write; parent folders are created (default: %(default)s)',
    )
    parser.add_argument(
        '--seed', type=int, default=0, help='seed for the choice of digits and their distortions (default: %(default)s)'
    )
    parser.add_argument(
        '--per-kind', type=int, default=10, help='digits per row; column c shows class c mod 10 (default: %(default)s)'
    )
    parser.add_argument(
        '--scale', type=int, default=3, help='nearest-neighbour enlargement of each 42x42 cell (default: %(default)s)'
    )
    args = parser.parse_args(argv)
    if args.per_kind < 1 or args.scale < 1:
        parser.error('--per-kind and --scale must be at least 1')

    sheet = sample_sheet(args.seed, args.per_kind, args.scale)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), sheet):
        print(f'could not write {args.output}', file=sys.stderr)
        return 1
    print(args.output.resolve())
    return 0


if __name__ == '__main__':
    sys.exit(main())
