"""PyTorch DDP set-up from ``torchrun``'s environment (gloo on CPU, nccl on CUDA); single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1), else a world of one."""
    size = int(os.environ.get('WORLD_SIZE', '1'))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0'))
    if not dist.is_initialized():
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo')
    return World(rank, size, local_rank)


def device_for(world: World, device: torch.device) -> torch.device:
    """Each process takes its own GPU (``cuda:LOCAL_RANK``) when training on CUDA."""
    if device.type == 'cuda' and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device('cuda', world.local_rank)
    return device


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_max(values: torch.Tensor, world: World) -> torch.Tensor:
    """Element-wise maximum over the processes (in place)."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def all_reduce_min(values: torch.Tensor, world: World) -> torch.Tensor:
    """Element-wise minimum over the processes (in place)."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.MIN)
    return values


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
