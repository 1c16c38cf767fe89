"""The localization network: a small CNN that regresses transform parameters from an image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stn_ros.core.pooling import MaxPool2x2


class LocalizationNet(nn.Module):
    """``(B, C, H, W)`` -> ``(B, num_params)``; starts at the identity transform.

    Each stage is ``conv3x3 -> ReLU -> maxpool 2``; then one hidden fully connected layer and the
    regression layer. The regression layer has zero weights and the identity as its bias, so an
    untrained net outputs the identity for every input (the paper's initialisation).

    Args:
        identity: identity parameters of the family, ``(num_params,)``.
        in_channels: channels of the input image.
        input_size: ``(H, W)`` the net is built for; other sizes are an error.
        channels: output channels of each conv stage.
        hidden: width of the hidden fully connected layer.
        hypotheses: parameter sets regressed per input (1: a plain localization net).
    """

    def __init__(
        self,
        identity: torch.Tensor,
        in_channels: int = 1,
        input_size: Sequence[int] = (32, 32),
        channels: Sequence[int] = (16, 32),
        hidden: int = 64,
        hypotheses: int = 1,
    ):
        super().__init__()
        if hypotheses < 1:
            raise ValueError(f'hypotheses must be at least 1, got {hypotheses}')
        self.hypotheses = int(hypotheses)
        self.num_params = identity.numel()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        height, width = self.input_size
        layers: list[nn.Module] = []
        previous = in_channels
        for out in channels:
            layers += [nn.Conv2d(previous, out, kernel_size=3, padding=1), nn.ReLU(inplace=True), MaxPool2x2()]
            previous, height, width = out, height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f'input_size {self.input_size} is too small for {len(channels)} pooling stages')
        self.features = nn.Sequential(*layers)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(previous * height * width, hidden), nn.ReLU(inplace=True))
        self.regressor = nn.Linear(hidden, identity.numel() * self.hypotheses)
        nn.init.zeros_(self.regressor.weight)
        with torch.no_grad():
            biases = identity.flatten().repeat(self.hypotheses, 1)
            spread = torch.randn(biases.shape, generator=torch.Generator().manual_seed(0))
            biases[1:] += 0.1 * spread[1:]
            self.regressor.bias.copy_(biases.flatten())
        if self.hypotheses > 1:
            self.scorer = nn.Linear(hidden, self.hypotheses)
            nn.init.zeros_(self.scorer.weight)
            nn.init.zeros_(self.scorer.bias)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every hypothesis ``(B, K, num_params)`` and its score ``(B, K)`` (a logit; zeros when K = 1)."""
        if x.ndim != 4 or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f'localization input must be (B, C, {self.input_size[0]}, '
                f'{self.input_size[1]}), got shape {tuple(x.shape)}'
            )
        features = self.hidden(self.features(x))
        params = self.regressor(features).reshape(x.shape[0], self.hypotheses, self.num_params)
        scores = self.scorer(features) if self.hypotheses > 1 else params.new_zeros(x.shape[0], 1)
        return params, scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params, scores = self.forward_all(x)
        if self.hypotheses == 1:
            return params[:, 0]
        return params[torch.arange(x.shape[0], device=x.device), scores.argmax(dim=1)]
