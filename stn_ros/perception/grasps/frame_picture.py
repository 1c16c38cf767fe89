"""The picture of the gripper frame (``docs/gripper_frame.png``): a camera tilted 45 degrees over a table, a box,
and the grasp the pipeline publishes for it, drawn in 3-D with its axes. No rclpy.

    python -m stn_ros.perception.grasps.frame_picture docs/gripper_frame.png

The gripper is :func:`~stn_ros.perception.grasps.markers.gripper_outline` (what ``~/grasp_markers`` draws) placed at
the grasp's pose: origin at the fingertips' centre ``finger_depth`` below the box's top, z along the table's normal
into the table, x across the box's short side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stn_ros.perception.grasps.gripper import GripperConfig
from stn_ros.perception.grasps.markers import box_edges, gripper_outline

SIZE = (760, 1000)  # (h, w) pixels
BOX = np.array([0.09, 0.05, 0.06])  # metres: length (world X), width (world Y), height
AXIS_COLOURS = {'x': (40, 40, 230), 'y': (40, 170, 40), 'z': (230, 90, 30)}  # BGR: x red, y green, z blue


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation whose rows are a camera's x (right), y (down), z (forward) axes in the world."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return np.stack((right, np.cross(forward, right), forward))


class _Illustration:
    """A perspective view of the scene for the picture (not the robot's camera)."""

    def __init__(self) -> None:
        self.eye = np.array([0.5, -0.75, 0.42])
        self.rotation = _look_at(self.eye, np.array([-0.09, 0.0, 0.14]), np.array([0.0, 0.0, 1.0]))
        self.focal, self.centre = 1700.0, np.array([SIZE[1] / 2, SIZE[0] / 2])

    def project(self, points: np.ndarray) -> np.ndarray:
        local = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.eye) @ self.rotation.T
        return self.centre + self.focal * local[:, :2] / local[:, 2:]

    def line(self, image: np.ndarray, a, b, colour, thickness: int = 2) -> None:
        p, q = self.project(np.array([a, b]))
        cv2.line(
            image, tuple(int(round(v)) for v in p), tuple(int(round(v)) for v in q), colour, thickness, cv2.LINE_AA
        )

    def arrow(self, image: np.ndarray, a, b, colour, thickness: int = 3) -> None:
        p, q = self.project(np.array([a, b]))
        start, end = tuple(int(round(v)) for v in p), tuple(int(round(v)) for v in q)
        cv2.arrowedLine(image, start, end, colour, thickness, cv2.LINE_AA, tipLength=0.12)

    def text(self, image: np.ndarray, at, label: str, colour, scale: float = 0.62) -> None:
        ((u, v),) = self.project(np.array([at]))
        cv2.putText(image, label, (int(u), int(v)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)


def gripper_frame_picture(gripper: GripperConfig | None = None) -> np.ndarray:
    """``(h, w, 3)`` uint8 BGR: the gripper frame drawn on a grasp of a box, seen by a camera tilted 45 degrees."""
    gripper = gripper or GripperConfig()
    view = _Illustration()
    image = np.full((*SIZE, 3), 255, np.uint8)
    grey, dark = (190, 190, 190), (60, 60, 60)
    for step in np.linspace(-0.2, 0.2, 9):  # the table
        view.line(image, (step, -0.2, 0.0), (step, 0.2, 0.0), grey, 1)
        view.line(image, (-0.2, step, 0.0), (0.2, step, 0.0), grey, 1)
    for a, b in box_edges(np.array([-BOX[0] / 2, -BOX[1] / 2, 0.0]), np.array([BOX[0] / 2, BOX[1] / 2, BOX[2]])):
        view.line(image, a, b, dark, 2)
    # The grasp: fingertips finger_depth below the top, approaching down the table's normal, closing across the width.
    origin = np.array([0.0, 0.0, BOX[2] - gripper.finger_depth])
    rotation = np.stack((np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])), axis=1)
    outline = gripper_outline(gripper) @ rotation.T + origin
    for a, b in outline.reshape(-1, 2, 3):
        view.line(image, a, b, (150, 60, 150), 2)
    length = 0.07
    labels = {'x': 'x: closing axis', 'y': 'y = z cross x', 'z': 'z: approach (table normal)'}
    for index, name in enumerate('xyz'):
        tip = origin + length * rotation[:, index]
        view.arrow(image, origin, tip, AXIS_COLOURS[name])
        view.text(image, tip + 0.008 * rotation[:, index], labels[name], AXIS_COLOURS[name])
    view.text(image, origin + np.array([0.012, 0.035, -0.01]), 'origin: fingertips centre', (150, 60, 150), 0.5)
    # The robot's camera, 45 degrees from vertical, and its optical axis to the box.
    camera_at = np.array([-0.25, 0.0, 0.32])
    axes = _look_at(camera_at, np.array([0.0, 0.0, BOX[2]]), np.array([0.0, 0.0, 1.0]))
    corners = [
        camera_at + 0.06 * axes[2] + 0.035 * (sx * axes[0] + sy * axes[1])
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    for index, corner in enumerate(corners):
        view.line(image, camera_at, corner, dark, 2)
        view.line(image, corner, corners[(index + 1) % 4], dark, 2)
    for t in np.arange(0.0, 0.36, 0.03):  # dashed optical axis
        view.line(image, camera_at + t * axes[2], camera_at + (t + 0.015) * axes[2], (120, 120, 120), 1)
    view.text(image, camera_at + np.array([0.06, 0.02, -0.02]), 'camera, 45 deg from vertical', dark, 0.55)
    cv2.putText(
        image,
        'The grasp pose of ~/grasps and ~/best_grasp',
        (20, 36),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.8,
        dark,
        2,
        cv2.LINE_AA,
    )
    cv2.putText(
        image,
        'approach along the table normal whatever the camera angle; angle = the closing axis in the image',
        (20, SIZE[0] - 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.55,
        dark,
        1,
        cv2.LINE_AA,
    )
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Draw the gripper frame picture (docs/gripper_frame.png).')
    parser.add_argument('output', type=Path, help='PNG to write')
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), gripper_frame_picture()):
        parser.error(f'could not write {args.output}')
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
