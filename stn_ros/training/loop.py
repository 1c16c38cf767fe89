"""The one training loop: seeds, DDP, tqdm progress, per-epoch checkpoints, resume, model cards.

A :class:`Task` says what to train (data, model, loss, metrics, what to ship); :func:`fit` does the rest.
Evaluation runs on the main process over the whole held-out set, so a metric does not depend on the
number of processes.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from stn_ros.core import resolve_device
from stn_ros.training.distributed import (
    World,
    all_reduce_max,
    all_reduce_min,
    all_reduce_sum,
    barrier,
    close_world,
    device_for,
    init_world,
)

STATE_FORMAT = 'stn_ros.training/1'


@dataclass
class TrainConfig:
    """Options every task shares (the CLI's common flags)."""

    out: Path
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = 'auto'
    workers: int = 0
    resume: Path | None = None
    progress: bool = True


class Task(ABC):
    """What to train. ``args`` are the task's own options (stored in checkpoints and model cards)."""

    name: str
    weights_stem: str
    """:meth:`export` writes ``<out>/<weights_stem>.pt`` and its model card ``<out>/<weights_stem>.md``."""

    def __init__(self, **args: Any):
        self.args = args
        self.progress = True
        """Whether building the datasets may show progress bars (the loop sets it from ``--no-progress``)."""

    @abstractmethod
    def datasets(self) -> tuple[Dataset, Dataset]:
        """``(train, held_out)``; a train dataset with ``set_epoch(epoch)`` gets it called each epoch."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (seeded by the loop)."""

    def training_module(self, model: nn.Module) -> nn.Module:
        """The module whose ``forward`` computes what :meth:`loss` needs (default: ``model`` itself).

        The loop wraps it in ``DistributedDataParallel`` when training on several processes and hands the
        wrapped module to :meth:`loss`, which must only call it: DDP averages the gradients of what runs
        through its ``forward``, so a loss that reaches into ``model.module`` trains each process apart.
        Its parameters must be ``model``'s own (``model.state_dict()`` is what is saved).
        """
        return model

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Mean loss of one training batch; ``model`` is the (maybe DDP-wrapped) :meth:`training_module`."""

    @abstractmethod
    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        """Held-out metrics (the first one is shown on the progress bar)."""

    def optimizer(self, model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    @abstractmethod
    def export(self, model: nn.Module, out: Path, card: dict[str, Any]) -> Path:
        """Write the shippable weights (and their model card) into ``out``; returns the weights path."""


def git_revision() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        revision = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ['git', 'status', '--porcelain', '--untracked-files=no'],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return (revision + ('+dirty' if dirty else '')) if revision else 'unknown'


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_replicas_agree(model: nn.Module, world: World, task_name: str) -> None:
    """Raise ``RuntimeError`` unless every process holds bitwise the same parameters (no-op in one process).

    DDP keeps the replicas identical (the same initial weights, averaged gradients, the same optimizer),
    so any difference means some gradient was never averaged.
    """
    if not world.distributed:
        return
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])
        nan = flat.isnan()
        # NaN never equals itself: compare the values where none is NaN, and where the NaNs are.
        values = torch.cat((flat.masked_fill(nan, 0.0), nan.to(torch.float64)))
        high, low = all_reduce_max(values.clone(), world), all_reduce_min(values, world)
        differ = high != low
    if differ.any():  # every process gets the same reduction, so all of them raise
        spread = (high - low)[: len(flat)]
        raise RuntimeError(
            f'task {task_name}: parameters differ between the {world.size} DDP processes after an epoch '
            f'({int(differ[: len(flat)].sum())} values differ, max difference {spread.max().item():.3g}'
            f'{", NaN in some processes only" if differ[len(flat) :].any() else ""}): a task bypassed '
            f'DistributedDataParallel.forward (its loss must only call the wrapped training module)'
        )


def _save_state(
    path: Path, task: Task, config: TrainConfig, model: nn.Module, optimizer, scheduler, epoch: int, history: list[dict]
) -> None:
    tmp = path.with_suffix('.tmp')
    torch.save(
        {
            'format': STATE_FORMAT,
            'task': task.name,
            'task_args': task.args,
            'epoch': epoch,
            'seed': config.seed,
            'model': model.state_dict(),
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(),
            'history': history,
            'torch_rng': torch.get_rng_state(),
        },
        tmp,
    )
    tmp.replace(path)  # never leave a half-written checkpoint behind


def _load_state(path: Path, task: Task) -> dict:
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
        raise ValueError(f'{path} is not an stn_ros training checkpoint')
    if state['task'] != task.name or state['task_args'] != task.args:
        raise ValueError(
            f'{path} was trained with task {state["task"]} {state["task_args"]}, '
            f'not {task.name} {task.args}: resume with the same options'
        )
    return state


def fit(task: Task, config: TrainConfig, command: str | None = None) -> dict[str, Any]:
    """Train ``task`` for ``config.epochs``; returns the final metrics and where things were written.

    Writes ``out/last.pt`` (the training state, every epoch: ``--resume`` continues from it) and, on
    the main process at the end, the task's exported weights and model card.
    """
    device = resolve_device(config.device)
    world = init_world(device)
    device = device_for(world, device)
    try:
        return _fit(task, config, world, device, command or ' '.join(sys.argv))
    finally:
        close_world(world)


def _fit(task: Task, config: TrainConfig, world: World, device: torch.device, command: str) -> dict[str, Any]:
    config.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)  # the same initial weights in every process
    model = task.build_model().to(device)
    optimizer = task.optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    history: list[dict] = []
    start_epoch = 0
    if config.resume is not None:
        state = _load_state(config.resume, task)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        history, start_epoch = list(state['history']), state['epoch'] + 1
        torch.set_rng_state(state['torch_rng'])
    torch.manual_seed(config.seed * 1000 + world.rank + 7919 * start_epoch)
    module = task.training_module(model)
    trained = DistributedDataParallel(module) if world.distributed else module
    task.progress = config.progress and world.is_main
    train_set, held_out = task.datasets()
    sampler = DistributedSampler(train_set, num_replicas=world.size, rank=world.rank, shuffle=True, seed=config.seed)
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        drop_last=len(train_set) >= config.batch_size * world.size,
    )
    eval_loader = DataLoader(held_out, batch_size=256, shuffle=False, num_workers=config.workers)
    started = time.time()
    metrics: dict[str, float] = history[-1]['metrics'] if history else {}
    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        if hasattr(train_set, 'set_epoch'):
            train_set.set_epoch(epoch)
        trained.train()
        totals = torch.zeros(2, dtype=torch.float64)
        bar = tqdm(
            loader,
            desc=f'{task.name} epoch {epoch + 1}/{config.epochs}',
            unit='batch',
            disable=not (config.progress and world.is_main),
            leave=False,
            file=sys.stderr,
        )
        for batch in bar:
            loss = task.loss(trained, batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
            bar.set_postfix(loss=f'{totals[0] / totals[1]:.4f}')
        scheduler.step()
        check_replicas_agree(model, world, task.name)
        totals = all_reduce_sum(totals, world)
        if world.is_main:
            metrics = task.evaluate(model, eval_loader, device)
            history.append(
                {
                    'epoch': epoch + 1,
                    'train_loss': float(totals[0] / max(totals[1], 1)),
                    'metrics': metrics,
                    'seconds': time.time() - started,
                }
            )
            _save_state(config.out / 'last.pt', task, config, model, optimizer, scheduler, epoch, history)
            if config.progress:
                shown = ', '.join(f'{k} {v:.4g}' for k, v in list(metrics.items())[:3])
                tqdm.write(
                    f'{task.name} epoch {epoch + 1}/{config.epochs}: train loss '
                    f'{history[-1]["train_loss"]:.4f}, {shown}',
                    file=sys.stderr,
                )
        barrier(world)
    result: dict[str, Any] = {'metrics': metrics, 'history': history, 'out': str(config.out)}
    if world.is_main:
        card = {
            'task': task.name,
            'task_args': task.args,
            'train': asdict(config) | {'out': str(config.out), 'resume': str(config.resume) if config.resume else None},
            'world_size': world.size,
            'metrics': metrics,
            'parameters': count_parameters(model),
            'command': command,
            'git_revision': git_revision(),
            'date': datetime.date.today().isoformat(),
            'train_seconds': round(sum(h['seconds'] for h in history[-1:]), 1),
            'history': history,
        }
        result['weights'] = str(task.export(model, config.out, card))
    return result
