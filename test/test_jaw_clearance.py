"""The jaw collision check on canonical crops: a clear grasp keeps the full opening, a neighbour in a jaw's way
narrows it, one that no opening clears is blocked."""

import numpy as np
import pytest

from stn_ros.perception.grasps.grasp_image import CANONICAL_SIZE
from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.gripper_depth import gripper_depths
from stn_ros.perception.grasps.jaw_clearance import candidate_openings, clear_openings, jaws_hit

GRIPPER = GripperConfig()  # 8 cm opening: 5 mm a crop pixel, the jaws' inner faces 8 px from the centre
TABLE = 0.70
MIDDLE = CANONICAL_SIZE // 2


def crop(height: float = 0.04, half_length_px: int = 4) -> np.ndarray:
    """A table at 0.70 m with an object ``height`` tall under the centre, ``2 * half_length_px`` px (5 mm each) along
    the grasp axis."""
    image = np.full((CANONICAL_SIZE, CANONICAL_SIZE), TABLE, np.float32)
    image[MIDDLE - 3 : MIDDLE + 3, MIDDLE - half_length_px : MIDDLE + half_length_px] = TABLE - height
    return image


def test_the_openings_tried_run_from_the_full_one_down_a_pixel_per_jaw():
    openings = candidate_openings(GRIPPER, CANONICAL_SIZE)
    assert openings[0] == GRIPPER.max_opening
    assert np.allclose(np.diff(openings), -0.01)  # a 5 mm pixel per jaw
    assert openings[-1] == pytest.approx(0.01)


def test_a_clear_grasp_keeps_the_full_opening_and_its_gripper_depth():
    crops = np.stack([crop(0.04), crop(0.012)])
    clearance = clear_openings(crops, GRIPPER)
    assert clearance.opening.tolist() == [GRIPPER.max_opening] * 2
    assert clearance.z == pytest.approx(gripper_depths(crops, GRIPPER))
    assert not clearance.blocked.any()


def test_a_thin_taller_neighbour_beside_a_jaw_narrows_the_opening_to_clear_it():
    # A post 1 cm wide and 10 cm tall under the outer edge of the right jaw: the full opening drives that jaw into it;
    # one 1 cm narrower (each jaw 5 mm in) clears it, and still goes around the 4 cm object.
    image = crop(0.04)
    image[:, MIDDLE + 11 : MIDDLE + 13] = TABLE - 0.10
    z_full = gripper_depths(image[None], GRIPPER)
    assert jaws_hit(image[None], z_full, GRIPPER)[0]
    clearance = clear_openings(image[None], GRIPPER)
    assert clearance.opening[0] == pytest.approx(0.07)
    assert not jaws_hit(image[None], clearance.z, GRIPPER, 0.07)[0]
    # at 7 cm both jaws stand on the table: the fingertips go the finger depth below the object's top
    assert clearance.z[0] == pytest.approx(TABLE - 0.04 + GRIPPER.finger_depth, abs=1e-6)


def test_an_object_wider_than_the_gripper_or_hemmed_in_is_blocked():
    wide = crop(0.04, half_length_px=16)  # 16 cm long along the axis: the jaws land on it at every opening
    hemmed = crop(0.04)
    hemmed[:, MIDDLE + 5 :] = TABLE - 0.06  # a taller block 5 mm to its right: no room for a 2 cm jaw
    clearance = clear_openings(np.stack([wide, hemmed]), GRIPPER)
    assert clearance.blocked.tolist() == [True, True]
    assert np.isnan(clearance.opening).all()
    assert np.isfinite(clearance.z).all()  # the full opening's depth, for the record


def test_no_opening_narrower_than_the_object_is_chosen():
    # A 3 cm object in a slot between taller blocks, 1 cm from each: the 2 cm jaws fit in neither gap, and every
    # narrower opening puts them on the object, so the grasp is blocked, never shut on the object.
    image = crop(0.04, half_length_px=3)
    image[:, : MIDDLE - 5] = image[:, MIDDLE + 5 :] = TABLE - 0.08
    assert clear_openings(image[None], GRIPPER).blocked[0]


def test_one_noisy_reading_does_not_block_and_no_surface_is_not_blocked():
    noisy = crop(0.04)
    noisy[MIDDLE, MIDDLE + 9] = TABLE - 0.2  # a single speck of noise in the right jaw's footprint
    hole = crop(0.04)
    hole[MIDDLE - 4 : MIDDLE + 4, MIDDLE - 4 : MIDDLE + 4] = np.nan
    clearance = clear_openings(np.stack([noisy, hole]), GRIPPER)
    assert clearance.opening[0] == GRIPPER.max_opening
    assert np.isnan(clearance.opening[1]) and np.isnan(clearance.z[1])
    assert clearance.blocked.tolist() == [False, False]


def test_a_frame_without_crops_gives_no_openings():
    clearance = clear_openings(np.zeros((0, CANONICAL_SIZE, CANONICAL_SIZE), np.float32), GRIPPER)
    assert clearance.opening.shape == clearance.z.shape == clearance.blocked.shape == (0,)
    assert gripper_depths(np.zeros((0, CANONICAL_SIZE, CANONICAL_SIZE), np.float32), GRIPPER).shape == (0,)
