"""Run the training CLI as ``python -m stn_ros.apps.train`` does and keep every process's trained weights.

Usage (one process per rank)::

    torchrun --nproc_per_node=2 test/ddp_rank_weights.py WEIGHTS_DIR TASK [OPTIONS ...]

Each process writes ``WEIGHTS_DIR/rank{RANK}.pt``, the ``state_dict`` of the model its task built, after
training (also when training raised), and rank 0 the initial weights as ``WEIGHTS_DIR/initial.pt``; a test
compares the replicas with these, independently of the loop's own check.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

import stn_ros.training.loop as loop


def fit_keeping_weights(weights_dir: Path, fit=loop.fit):
    """``fit`` that saves the trained model's weights of this rank to ``weights_dir``."""
    rank = int(os.environ.get('RANK', '0'))

    def fit_and_save(task: loop.Task, config: loop.TrainConfig, command: str | None = None) -> dict[str, Any]:
        models: list[nn.Module] = []
        build_model = task.build_model

        def build_and_keep() -> nn.Module:
            models.append(build_model())
            if rank == 0:
                weights_dir.mkdir(parents=True, exist_ok=True)
                torch.save(models[-1].state_dict(), weights_dir / 'initial.pt')
            return models[-1]

        task.build_model = build_and_keep
        try:
            return fit(task, config, command)
        finally:
            if models:
                weights_dir.mkdir(parents=True, exist_ok=True)
                torch.save(models[-1].state_dict(), weights_dir / f'rank{rank}.pt')

    return fit_and_save


def main() -> None:
    """Patch the loop's ``fit``, then run the CLI module as ``__main__`` with the remaining arguments."""
    weights_dir, cli_args = Path(sys.argv[1]), sys.argv[2:]
    loop.fit = fit_keeping_weights(weights_dir)  # the CLI imports ``fit`` from the loop when it runs
    sys.argv = [sys.argv[0], *cli_args]
    runpy.run_module('stn_ros.apps.train', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main()
