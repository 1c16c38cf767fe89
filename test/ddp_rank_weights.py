"""Run the training CLI as ``python -m stn_ros.apps.train`` does and keep every process's trained weights.

Usage (one process per rank)::

    torchrun --nproc_per_node=2 test/ddp_rank_weights.py WEIGHTS_DIR TASK [OPTIONS ...]

Each process writes ``WEIGHTS_DIR/rank{RANK}.pt``, the ``state_dict`` of the model its task built, after
training (also when training raised), with ``rank{RANK}.json`` (the process group's backend, the model's device),
and rank 0 the initial weights as ``WEIGHTS_DIR/initial.pt``; a test compares the replicas with these,
independently of the loop's own check.

With ``--device cuda`` and fewer GPUs than ranks (one GPU), every rank trains on ``cuda:0`` over gloo, which takes
CUDA tensors, where NCCL refuses two ranks on one device: DDP's reducer still runs between the processes.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import stn_ros.training.loop as loop
from stn_ros.training.distributed import World


def fit_keeping_weights(weights_dir: Path, fit=loop.fit):
    """``fit`` that saves the trained model's weights of this rank to ``weights_dir``."""
    rank = int(os.environ.get('RANK', '0'))

    def fit_and_save(task: loop.Task, config: loop.TrainConfig, command: str | None = None) -> dict[str, Any]:
        models: list[nn.Module] = []
        ran: dict[str, Any] = {}
        build_model = task.build_model

        def build_and_keep() -> nn.Module:
            ran['backend'] = dist.get_backend() if dist.is_initialized() else None
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
                ran['device'] = str(next(models[-1].parameters()).device)
                (weights_dir / f'rank{rank}.json').write_text(json.dumps(ran))

    return fit_and_save


def on_cuda0_over_gloo(init_world=loop.init_world):
    """``init_world`` that joins a gloo process group and puts every rank on ``cuda:0`` (local rank 0)."""

    def init_on_gloo(device: torch.device) -> World:
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')
        return replace(init_world(device), local_rank=0)

    return init_on_gloo


def main() -> None:
    """Patch the loop's ``fit``, then run the CLI module as ``__main__`` with the remaining arguments."""
    weights_dir, cli_args = Path(sys.argv[1]), sys.argv[2:]
    loop.fit = fit_keeping_weights(weights_dir)  # the CLI imports ``fit`` from the loop when it runs
    ranks_here = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
    if 'cuda' in cli_args and torch.cuda.device_count() < ranks_here:
        loop.init_world = on_cuda0_over_gloo()
    sys.argv = [sys.argv[0], *cli_args]
    runpy.run_module('stn_ros.apps.train', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main()
