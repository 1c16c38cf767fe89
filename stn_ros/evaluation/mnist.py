"""The distorted-MNIST table: our test error beside the STN paper's Table 1, a plot, a picture."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from stn_ros.models.mnist import MODEL_NAMES, load_classifier
from stn_ros.training.mnist.dataset import DISTORTIONS, DistortedMNIST
from stn_ros.training.mnist.task import DISTORTION_COLUMN, PAPER_ERROR, MnistTask


def find_runs(runs: Path) -> dict[tuple[str, str], Path]:
    """``{(distortion, model): model.pt}`` under ``runs/<distortion>/<model>/model.pt``."""
    found = {}
    for distortion in DISTORTIONS:
        for model in MODEL_NAMES:
            path = runs / distortion / model / f'{MnistTask.weights_stem}.pt'
            if path.is_file():
                found[(distortion, model)] = path
    return found


@torch.no_grad()
def test_error(model, dataset) -> float:
    wrong = total = 0
    for images, labels in DataLoader(dataset, batch_size=500):
        wrong += (model(images).argmax(dim=1) != labels).sum().item()
        total += len(labels)
    return 100.0 * wrong / total


def mnist_table(results: dict[tuple[str, str], dict]) -> str:
    lines = [
        '| model | params (28×28 / 42×42) | ' + ' | '.join(f'{d} ours | {d} paper' for d in DISTORTIONS) + ' |',
        '|---|---:|' + '---:|---:|' * len(DISTORTIONS),
    ]
    for model in MODEL_NAMES:
        rows = {d: results.get((d, model)) for d in DISTORTIONS}
        if not any(rows.values()):
            continue
        params = sorted({r['parameters'] for r in rows.values() if r}, key=int)
        paper = PAPER_ERROR.get(model)
        cells = []
        for d in DISTORTIONS:
            ours = f'{rows[d]["error"]:.2f}' if rows[d] else '–'
            cells.append(f'{ours} | {paper[DISTORTION_COLUMN[d]] if paper else "–"}')
        lines.append(f'| {model} | {" / ".join(f"{p:,}" for p in params)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def error_plot(results: dict[tuple[str, str], dict], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    models = [m for m in MODEL_NAMES if any((d, m) in results for d in DISTORTIONS)]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(DISTORTIONS)
    for i, d in enumerate(DISTORTIONS):
        values = [results[(d, m)]['error'] if (d, m) in results else np.nan for m in models]
        ax.bar(np.arange(len(models)) + i * width, values, width, label=d)
    ax.set_xticks(np.arange(len(models)) + 0.4 - width / 2, models, rotation=30, ha='right')
    ax.set_ylabel('test error (%)')
    ax.set_title('Distorted MNIST, 4,000 training digits')
    ax.legend(title='distortion')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def transformed_digits(models: dict[str, object], datasets: dict[str, object], path: Path, count: int = 10) -> None:
    """Per distortion: a row of test digits (the first of each class) and what the transformer makes of them."""
    rows = []
    for distortion, model in models.items():
        dataset, firsts = datasets[distortion], {}
        for index in range(len(dataset)):
            firsts.setdefault(int(dataset[index][1]), index)
            if len(firsts) == count:
                break
        images = torch.stack([dataset[firsts[label]][0] for label in sorted(firsts)])
        after = model.transform(images).clamp(0, 1)
        size = 84
        for label, batch in ((f'{distortion} input', images), (f'{distortion} after ST', after)):
            tiles = [
                cv2.resize((img[0].numpy() * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
                for img in batch
            ]
            row = cv2.cvtColor(
                np.hstack([cv2.copyMakeBorder(t, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=128) for t in tiles]),
                cv2.COLOR_GRAY2BGR,
            )
            caption = np.full((row.shape[0], 150, 3), 255, np.uint8)
            cv2.putText(
                caption, label, (5, row.shape[0] // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
            )
            rows.append(np.hstack([caption, row]))
    width = max(r.shape[1] for r in rows)
    cv2.imwrite(
        str(path),
        np.vstack(
            [
                cv2.copyMakeBorder(r, 0, 0, 0, width - r.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
                for r in rows
            ]
        ),
    )


def ship_checkpoints(runs: dict[tuple[str, str], Path], model_name: str, folder: Path) -> None:
    """Copy ``model_name``'s checkpoints to ``folder`` as ``mnist_<model>_<distortion>.pt`` with their cards."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for (distortion, name), path in sorted(runs.items()):
        if name != model_name:
            continue
        stem = f'mnist_{name.replace("-", "_")}_{distortion.lower()}'
        shutil.copyfile(path, folder / f'{stem}.pt')
        card = path.with_suffix('.md').read_text().replace(f'`{path.name}`', f'`{stem}.pt`')
        (folder / f'{stem}.md').write_text(card)
        print(f'shipped {folder / stem}.pt')


def evaluate_mnist(args: argparse.Namespace) -> int:
    """The ``evaluate mnist`` command: every trained run on the fixed test set, table, plot, picture."""
    runs = find_runs(args.runs)
    if not runs:
        print(f'no trained models under {args.runs}/<distortion>/<model>/model.pt', file=sys.stderr)
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    datasets, results, st_models = {}, {}, {}
    for (distortion, model_name), path in tqdm(sorted(runs.items()), desc='evaluating', unit='model', file=sys.stderr):
        model, metadata = load_classifier(path)
        card = json.loads(metadata.get('card', '{}'))
        copies = card.get('task_args', {}).get('test_copies', 2)
        key = (distortion, copies)
        if key not in datasets:
            dataset = DistortedMNIST(
                distortion, 'test', seed=card.get('task_args', {}).get('data_seed', 0), test_copies=copies
            )
            datasets[key] = Subset(dataset, range(200)) if args.quick else dataset
        results[(distortion, model_name)] = {
            'error': test_error(model, datasets[key]),
            'parameters': sum(p.numel() for p in model.parameters()),
            'samples': len(datasets[key]),
            'epochs': card.get('train', {}).get('epochs'),
        }
        if model_name == args.picture_model:
            st_models[distortion] = model
    table = mnist_table(results)
    samples = sorted({r['samples'] for r in results.values()})
    epochs = sorted({r['epochs'] for r in results.values() if r['epochs']})
    text = (
        f"# Distorted MNIST: our test error (%) beside the STN paper's Table 1\n\n"
        f'Ours: 4,000 training digits (the paper: 60,000), {", ".join(map(str, epochs))} epochs, '
        f'test on {", ".join(map(str, samples))} fixed distorted copies of the 1,000 held-out digits. '
        f"Models are scaled down (`stn_ros/models/mnist.py`); `cnn-wide` is the CNN widened to ST-CNN's "
        f'parameter count.\n\nReproduce: `{args.command}` after the training command in '
        f'docs/mnist/README.md.\n\n{table}\n'
    )
    (args.output / 'table.md').write_text(text)
    error_plot(results, args.output / 'errors.png')
    if st_models:
        transformed_digits(
            st_models,
            {d: DistortedMNIST(d, 'test', test_copies=1) for d in st_models},
            args.output / 'transformed_digits.png',
        )
    (args.output / 'results.json').write_text(json.dumps({f'{d}/{m}': r for (d, m), r in results.items()}, indent=1))
    if args.ship is not None:
        ship_checkpoints(runs, args.picture_model, args.ship)
    print(table)
    print(f'wrote {args.output}/table.md, errors.png' + (', transformed_digits.png' if st_models else ''))
    return 0
