"""The pictures' pieces: crops in rows that fit the scene above them."""

from __future__ import annotations

import numpy as np

from stn_ros.perception.visualize import crop_strip, stack_panels


def test_a_crop_strip_wraps_into_rows_no_wider_than_asked():
    crops = np.linspace(0.5, 0.7, 10 * 32 * 32, dtype=np.float32).reshape(10, 32, 32)
    one_row = crop_strip(crops, scale=4)
    assert one_row.shape == (132, 10 * 132, 3)  # 32 x 4 and a 2-pixel white border each side
    rows = crop_strip(crops, scale=4, max_width=640)
    assert rows.shape == (3 * 132, 4 * 132, 3)  # 4 a row: 10 crops in 3 rows, the last padded black
    np.testing.assert_array_equal(rows[:132, :132], one_row[:, :132])  # the same first crop
    np.testing.assert_array_equal(rows[264:, 264:], 0)  # the padding of the last row
    assert crop_strip(crops[:1], max_width=10).shape == (100, 100, 3)  # never fewer than one crop a row
    assert crop_strip(crops[:0]).shape == (1, 1, 3)


def test_panels_stack_with_the_narrower_padded_on_the_right():
    top, bottom = np.full((4, 6, 3), 200, np.uint8), np.full((2, 3, 3), 100, np.uint8)
    picture = stack_panels(top, bottom)
    assert picture.shape == (6, 6, 3) and (picture[4:, 3:] == 0).all() and (picture[4:, :3] == 100).all()
