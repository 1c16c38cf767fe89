"""Tilt bands of ``stn_evaluate physics --tilt-bands``: ``"0-10,10-30,30-45,45-60"`` -> ``((0, 10), (10, 30), ...)``.

Light on purpose (no numpy, torch or pybullet): ``stn_evaluate`` parses its arguments with it before any
evaluation loads.
"""

from __future__ import annotations

import argparse

MAX_TILT_DEG = 65.0
"""Largest tilt a band may reach: :data:`stn_ros.sim.prisms.scenes.MAX_VIEW_TILT_DEG` (the image's top row still sees
the table), repeated here so that parsing imports nothing heavy (a test keeps the two equal)."""


def parse_tilt_bands(text: str) -> tuple[tuple[float, float], ...]:
    """Bands of camera tilt from vertical, degrees: comma-separated ``low-high`` with ``0 <= low < high <= 65``, in
    increasing order and not overlapping (one band's ``high`` may be the next one's ``low``).

    Raises ``argparse.ArgumentTypeError`` naming what was wrong, so ``argparse`` reports it as a usage error.

    >>> parse_tilt_bands('0-10,10-30,30-45,45-60')
    ((0.0, 10.0), (10.0, 30.0), (30.0, 45.0), (45.0, 60.0))
    >>> parse_tilt_bands('45-60.5')
    ((45.0, 60.5),)
    """
    bands: list[tuple[float, float]] = []
    items = [item.strip() for item in text.split(',')]
    if not text.strip() or any(not item for item in items):
        raise argparse.ArgumentTypeError(
            f'tilt bands must be comma-separated low-high degrees (e.g. 0-10,10-30); got {text!r}'
        )
    for item in items:
        low_text, sep, high_text = item.partition('-')
        try:
            if not sep:
                raise ValueError
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'tilt band {item!r} is not low-high in degrees (e.g. 30-45)') from None
        if not 0.0 <= low < high <= MAX_TILT_DEG:
            raise argparse.ArgumentTypeError(
                f'tilt band {item!r} must have 0 <= low < high <= {MAX_TILT_DEG:g} degrees from vertical'
            )
        if bands and low < bands[-1][1]:
            raise argparse.ArgumentTypeError(
                f'tilt band {item!r} overlaps or precedes {bands[-1][0]:g}-{bands[-1][1]:g}: give bands in increasing '
                'order, not overlapping'
            )
        bands.append((low, high))
    return tuple(bands)


def band_name(band: tuple[float, float]) -> str:
    """``30-45 deg``."""
    return f'{band[0]:g}-{band[1]:g} deg'
