"""A Dex-Net 2.0-style grasp-quality CNN (GQ-CNN): canonical depth image + gripper depth -> P(good).

Mahler et al. (2017) merge an image stream (conv layers over the 32x32 canonical grasp image) with a
z stream (the gripper depth) and classify good / bad grasps. This one keeps that structure, sized for a
robot's CPU (Dex-Net 2.0's full size takes ~27 ms for 16 crops here): conv 5x5 (16) x2 -> maxpool ->
conv 3x3 (32) x2 -> maxpool -> fc 128; z -> fc 16; merged -> fc 64 -> 2 logits.

Input convention (:mod:`stn_ros.training.prisms.grasp_images`): ``images`` ``(B, 1, 32, 32)`` depth relative to the
gripper (metres, missing readings filled), ``z`` ``(B,)`` metres from the camera. The normalisation is
part of the model (and of its checkpoint), so callers pass metres.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stn_ros.core.checkpoint import load_checkpoint
from stn_ros.core.pooling import MaxPool2x2

CHECKPOINT_FORMAT = 'stn_ros.gqcnn/1'


class GQCNN(nn.Module):
    """Grasp-quality CNN; ``forward(images, z)`` gives ``(B, 2)`` logits (index 1 = good)."""

    def __init__(
        self,
        image_size: int = 32,
        image_scale: float = 0.02,
        z_mean: float = 0.65,
        z_scale: float = 0.05,
        width: int = 16,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.image_size, self.width = int(image_size), int(width)
        self.temperature = float(temperature)
        self.image_scale, self.z_mean, self.z_scale = float(image_scale), float(z_mean), float(z_scale)
        side = image_size // 4
        self.image_stream = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 5, padding=2),
            nn.ReLU(inplace=True),
            MaxPool2x2(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            MaxPool2x2(),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 128),
            nn.ReLU(inplace=True),
        )
        self.z_stream = nn.Sequential(nn.Linear(1, 16), nn.ReLU(inplace=True))
        self.merged = nn.Sequential(nn.Linear(128 + 16, 64), nn.ReLU(inplace=True), nn.Linear(64, 2))

    def config(self) -> dict:
        return {
            'image_size': self.image_size,
            'image_scale': self.image_scale,
            'z_mean': self.z_mean,
            'z_scale': self.z_scale,
            'width': self.width,
            'temperature': self.temperature,
        }

    def forward(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (1, self.image_size, self.image_size):
            raise ValueError(f'images must be (B, 1, {self.image_size}, {self.image_size}), got {tuple(images.shape)}')
        features = self.image_stream(images / self.image_scale)
        depth = self.z_stream(((z.reshape(-1, 1) - self.z_mean) / self.z_scale).to(images.dtype))
        return self.merged(torch.cat((features, depth), dim=1))

    @torch.no_grad()
    def quality(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """P(good) ``(B,)`` for a batch (empty batches give an empty result): the logits divided by the
        model's ``temperature`` (fitted after training so that P(good) is calibrated; 1.0 = as trained)."""
        if len(images) == 0:
            return images.new_zeros(0)
        return torch.softmax(self(images, z) / self.temperature, dim=1)[:, 1]


def save_gqcnn(model: GQCNN, path: str | Path, metadata: dict | None = None) -> None:
    torch.save(
        {
            'format': CHECKPOINT_FORMAT,
            'config': model.config(),
            'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
            'metadata': metadata or {},
        },
        path,
    )


def load_gqcnn(path: str | Path, map_location: str | torch.device = 'cpu') -> tuple[GQCNN, dict]:
    """A saved GQ-CNN and its metadata; :class:`~stn_ros.core.CheckpointError` (a ``ValueError``) naming
    the file and the problem when it is not one."""
    return load_checkpoint(path, CHECKPOINT_FORMAT, lambda config: GQCNN(**config), 'GQ-CNN', map_location)
