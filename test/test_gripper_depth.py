"""The gripper depth rule on canonical crops: finger depth, deeper on tall objects, never into the floor."""

import numpy as np
import pytest

from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import gripper_depths, image_gripper_depths

GRIPPER = GripperConfig()  # 8 cm opening: 5 mm a pixel in a 32x32 crop, jaws land 8-12 px from the centre
TABLE = 0.70


def crop(height: float, half_length_px: int = 4, size: int = CANONICAL_SIZE) -> np.ndarray:
    """A table at 0.70 m with an object ``height`` tall under the centre, ``2 * half_length_px`` long."""
    image = np.full((size, size), TABLE, np.float32)
    middle = size // 2
    image[middle - 3 : middle + 3, middle - half_length_px : middle + half_length_px] = TABLE - height
    return image


@pytest.mark.parametrize(
    'height, below_top',
    [
        (0.04, 0.020),  # a box 4 cm tall: the finger depth
        (0.06, 0.030),  # 6 cm tall: half way down (a sphere's equator)
        (0.012, 0.007),  # 1.2 cm flat: 5 mm above the table, not 2 cm down into it
    ],
)
def test_the_rule_on_an_object_standing_on_the_table(height, below_top):
    (z,) = gripper_depths(crop(height)[None], GRIPPER)
    assert z == pytest.approx(TABLE - height + below_top, abs=1e-6)


def test_no_floor_in_view_and_a_neighbour_under_a_jaw():
    filled = np.full((1, 32, 32), 0.66, np.float32)  # the object fills the crop: no floor seen
    assert gripper_depths(filled, GRIPPER)[0] == pytest.approx(0.66 + GRIPPER.finger_depth)
    neighbour = crop(0.04)
    neighbour[:, 24:28] = 0.68  # a 2 cm object under the right jaw: the floor is its top
    assert gripper_depths(neighbour[None], GRIPPER)[0] == pytest.approx(0.66 + 0.015, abs=1e-6)


def test_a_crop_without_a_reading_at_its_centre_has_no_depth_and_other_sizes_scale():
    hole = crop(0.04)
    hole[12:20, 12:20] = np.nan
    assert np.isnan(gripper_depths(hole[None], GRIPPER)[0])
    big = crop(0.012, half_length_px=8, size=64)  # the same object in a 64x64 crop
    assert gripper_depths(big[None], GRIPPER)[0] == pytest.approx(TABLE - 0.012 + 0.007, abs=1e-6)


def test_image_grasps_get_the_rule_through_their_canonical_crops():
    """A 3 cm tall bar across the image under a camera looking straight down."""
    from stn_ros.bridge.camera_info import PinholeCamera

    camera = PinholeCamera(525.0, 525.0, 319.5, 239.5, 640, 480)
    depth = np.full((480, 640), TABLE, np.float32)
    depth[230:250, 300:340] = TABLE - 0.03  # 20 px = 2.5 cm wide at 0.67 m, grasped across
    z = image_gripper_depths(
        depth, np.array([[319.5, 239.5], [50.0, 50.0]]), np.array([np.pi / 2, 0.0]), camera, GRIPPER
    )
    assert z[0] == pytest.approx(TABLE - 0.03 + GRIPPER.finger_depth, abs=1e-4)
    assert z[1] == pytest.approx(TABLE + GRIPPER.finger_depth, abs=1e-4)  # bare table: nothing rises


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_the_row_wise_median_and_percentile_are_numpys_to_the_bit(dtype):
    from stn_ros.perception.geometry.camera import nanmedian_rows
    from stn_ros.perception.grasps.gripper_depth import nanpercentile_rows

    rng = np.random.default_rng(0)
    for width in (1, 2, 3, 25, 96):
        rows = rng.uniform(0.3, 1.2, (2000, width)).astype(dtype)
        rows[rng.random(rows.shape) < 0.3] = np.nan
        rows = rows[np.isfinite(rows).any(axis=1)]
        assert np.array_equal(nanmedian_rows(rows), np.nanmedian(rows, axis=1))
        expected = np.array([np.percentile(row[np.isfinite(row)], 75.0) for row in rows])
        assert np.array_equal(nanpercentile_rows(rows, 75.0), expected)


def test_a_post_thinner_than_the_centre_window_is_read_at_its_top_not_as_the_table():
    # A post 1 cm across (2 px: less than half the 5x5 window at the centre) and 8 cm tall: the median of the window
    # is the table; the surface under the grasp is the post's top, and the fingertips go half its height down.
    post = np.full((1, CANONICAL_SIZE, CANONICAL_SIZE), TABLE, np.float32)
    post[0, 15:17, 15:17] = TABLE - 0.08
    post[0, 14, 14] = TABLE - 0.3  # a flying pixel nearer than everything: not the top
    (z,) = gripper_depths(post, GRIPPER)
    assert z == pytest.approx(TABLE - 0.08 + 0.04, abs=1e-6)


def test_the_centre_rule_needs_a_floor_in_view_and_takes_a_neighbours_top_for_one():
    post = np.full((1, 32, 32), 0.66, np.float32)  # a 6 cm post standing on a wide flat object
    post[0, 15:17, 15:17] = 0.60
    assert gripper_depths(post, GRIPPER)[0] == pytest.approx(0.60 + 0.03, abs=1e-6)  # half its height down
    post[0, :, :10] = post[0, :, 22:] = np.nan  # nothing read under the jaws: the finger depth below the window
    assert gripper_depths(post, GRIPPER)[0] == pytest.approx(0.66 + GRIPPER.finger_depth)
