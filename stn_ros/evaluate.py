"""Evaluation CLI: ``python -m stn_ros.evaluate <task> [options]``.

``mnist``: the distorted-MNIST table (our test error beside the STN paper's Table 1, parameter
counts), a bar plot, and a picture of digits before and after each spatial transformer.
``grasp``: grasp canonicalization on held-out objects, (a) none, (b) OpenCV, (c) our STN, (d) oracle.
"""
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

from stn_ros.data.mnist import DISTORTIONS, DistortedMNIST
from stn_ros.models.mnist import MODEL_NAMES, load_classifier
from stn_ros.tasks.mnist import DISTORTION_COLUMN, PAPER_ERROR


def find_runs(runs: Path) -> dict[tuple[str, str], Path]:
    """``{(distortion, model): model.pt}`` under ``runs/<distortion>/<model>/model.pt``."""
    found = {}
    for distortion in DISTORTIONS:
        for model in MODEL_NAMES:
            path = runs / distortion / model / 'model.pt'
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
    lines = ['| model | params (28×28 / 42×42) | ' + ' | '.join(f'{d} ours | {d} paper' for d in DISTORTIONS) + ' |',
             '|---|---:|' + '---:|---:|' * len(DISTORTIONS)]
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
def transformed_digits(models: dict[str, object], datasets: dict[str, object], path: Path, count: int = 8) -> None:
    """Per distortion: a row of test digits and, below it, what the transformer makes of them."""
    rows = []
    for distortion, model in models.items():
        images = torch.stack([datasets[distortion][i][0] for i in range(count)])
        after = model.transform(images).clamp(0, 1)
        size = 84
        for label, batch in ((f'{distortion} input', images), (f'{distortion} after ST', after)):
            tiles = [cv2.resize((img[0].numpy() * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
                     for img in batch]
            row = cv2.cvtColor(np.hstack([cv2.copyMakeBorder(t, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=128)
                                          for t in tiles]), cv2.COLOR_GRAY2BGR)
            caption = np.full((row.shape[0], 150, 3), 255, np.uint8)
            cv2.putText(caption, label, (5, row.shape[0] // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            rows.append(np.hstack([caption, row]))
    width = max(r.shape[1] for r in rows)
    cv2.imwrite(str(path), np.vstack([cv2.copyMakeBorder(r, 0, 0, 0, width - r.shape[1], cv2.BORDER_CONSTANT,
                                                         value=(255, 255, 255)) for r in rows]))


def ship_checkpoints(runs: dict[tuple[str, str], Path], model_name: str, folder: Path) -> None:
    """Copy ``model_name``'s checkpoints to ``folder`` as ``mnist_<model>_<distortion>.pt`` with their cards."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for (distortion, name), path in sorted(runs.items()):
        if name != model_name:
            continue
        stem = f'mnist_{name.replace("-", "_")}_{distortion.lower()}'
        shutil.copyfile(path, folder / f'{stem}.pt')
        card = (path.parent / 'model.md').read_text().replace(f'`{path.name}`', f'`{stem}.pt`')
        (folder / f'{stem}.md').write_text(card)
        print(f'shipped {folder / stem}.pt')


def evaluate_mnist(args: argparse.Namespace) -> int:
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
            dataset = DistortedMNIST(distortion, 'test', seed=card.get('task_args', {}).get('data_seed', 0),
                                     test_copies=copies)
            datasets[key] = Subset(dataset, range(200)) if args.quick else dataset
        results[(distortion, model_name)] = {'error': test_error(model, datasets[key]),
                                             'parameters': sum(p.numel() for p in model.parameters()),
                                             'samples': len(datasets[key]), 'epochs': card.get('train', {}).get('epochs')}
        if model_name == args.picture_model:
            st_models[distortion] = model
    table = mnist_table(results)
    samples = sorted({r['samples'] for r in results.values()})
    epochs = sorted({r['epochs'] for r in results.values() if r['epochs']})
    text = (f'# Distorted MNIST: our test error (%) beside the STN paper\'s Table 1\n\n'
            f'Ours: 4,000 training digits (the paper: 60,000), {", ".join(map(str, epochs))} epochs, '
            f'test on {", ".join(map(str, samples))} fixed distorted copies of the 1,000 held-out digits. '
            f'Models are scaled down (`stn_ros/models/mnist.py`); `cnn-wide` is the CNN widened to ST-CNN\'s '
            f'parameter count.\n\nReproduce: `{args.command}` after the training command in '
            f'docs/mnist/README.md.\n\n{table}\n')
    (args.output / 'table.md').write_text(text)
    error_plot(results, args.output / 'errors.png')
    if st_models:
        transformed_digits(st_models, {d: DistortedMNIST(d, 'test', test_copies=1) for d in st_models},
                           args.output / 'transformed_digits.png')
    (args.output / 'results.json').write_text(json.dumps({f'{d}/{m}': r for (d, m), r in results.items()}, indent=1))
    if args.ship is not None:
        ship_checkpoints(runs, args.picture_model, args.ship)
    print(table)
    print(f'wrote {args.output}/table.md, errors.png' + (', transformed_digits.png' if st_models else ''))
    return 0


def evaluate_grasp(args: argparse.Namespace) -> int:
    from stn_ros.canonicalizer import Canonicalizer, load_model
    from stn_ros.data.grasps import GripperConfig
    from stn_ros.data.scenes import SceneConfig, generate_scene
    from stn_ros.grasp_evaluation import METHODS, canonicalization_error, label_and_score, propose
    from stn_ros.models.gqcnn import load_gqcnn
    from stn_ros.tasks.gqcnn import average_precision, grasp_dataset

    gqcnn, _ = load_gqcnn(args.gqcnn)
    model = load_model(str(args.stn))
    canonicalizer = Canonicalizer(model.stn, torch.device('cpu'), (32, 32), model.roi_side_m)
    gripper, config = GripperConfig(), SceneConfig()
    arrays = grasp_dataset(args.num_scenes, args.data_seed, args.cache)
    held = np.flatnonzero(arrays['held_out'].astype(bool) & (arrays['labels'] == 1))
    objects = list(dict.fromkeys(arrays['object_id'][held].tolist()))[:args.max_objects]
    by_scene: dict[int, list[int]] = {}
    for o in objects:
        first = int(np.flatnonzero(arrays['object_id'] == o)[0])
        by_scene.setdefault(int(arrays['scene_seed'][first]), []).append(o)
    results = {m: {'good': [], 'quality': []} for m in METHODS}
    errors, examples = [], []
    for seed, scene_objects in tqdm(by_scene.items(), desc='held-out scenes', unit='scene', file=sys.stderr):
        scene = generate_scene(config, seed)
        for o in scene_objects:
            rows = np.flatnonzero(arrays['object_id'] == o)
            good = rows[arrays['labels'][rows] == 1]
            index, roi = int(arrays['object_index'][rows[0]]), arrays['roi'][rows[0]]
            proposals = {}
            for method in METHODS:
                proposal = propose(method, scene, index, roi, arrays['H'][good[0]], float(arrays['z'][good[0]]),
                                   canonicalizer, gripper)
                proposals[method] = label_and_score(proposal, scene, index, gqcnn, gripper)
                results[method]['good'].append(proposals[method].good)
                results[method]['quality'].append(proposals[method].quality)
            errors.append(canonicalization_error(proposals['stn'], arrays['H'][good]))
            if len(examples) < 10:
                examples.append((scene, roi, proposals))
    rows_md = ['| canonicalization | grasp success (analytic) | GQ-CNN accuracy | GQ-CNN AP | mean GQ-CNN quality |',
               '|---|---:|---:|---:|---:|']
    names = {'none': '(a) none: object-centred crop, not rotated', 'opencv': '(b) OpenCV minAreaRect',
             'stn': '(c) our STN', 'oracle': '(d) oracle: analytic canonicalization'}
    summary = {}
    for method in METHODS:
        good = np.asarray(results[method]['good'], bool)
        quality = np.asarray(results[method]['quality'])
        accuracy = float(((quality >= 0.5) == good).mean())
        ap = average_precision(quality, good.astype(int)) if 0 < good.sum() < len(good) else float('nan')
        summary[method] = {'success': float(good.mean()), 'accuracy': accuracy, 'ap': ap, 'quality': float(quality.mean())}
        rows_md.append(f'| {names[method]} | {good.mean():.1%} | {accuracy:.1%} | '
                       f'{"n/a (one class)" if np.isnan(ap) else f"{ap:.3f}"} | {quality.mean():.3f} |')
    angle, centre = np.asarray(errors).T
    text = (f'# Grasp canonicalization on held-out objects\n\n{len(objects)} held-out objects with at least one good '
            f'analytic grasp ({len(by_scene)} scenes of the {args.num_scenes}-scene grasp dataset, seed '
            f'{args.data_seed}). Each method proposes one grasp per object; the analytic rule labels it and the '
            f'GQ-CNN scores its canonical image.\n\n' + '\n'.join(rows_md) +
            f'\n\nSTN canonicalization error against the nearest good analytic grasp: median axis angle '
            f'{np.median(angle):.1f} deg (mod 180), median centre {np.median(centre):.2f} px at 32x32; '
            f'{np.mean((angle < 10) & (centre < 1.5)):.1%} within both 10 deg and 1.5 px.\n\n'
            f'Reproduce: `{args.command}`\n')
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / 'table.md').write_text(text)
    (args.output / 'results.json').write_text(json.dumps({'methods': summary, 'median_angle_error_deg': float(np.median(angle)),
                                                           'median_centre_error_px': float(np.median(centre)),
                                                           'objects': len(objects)}, indent=1))
    grasp_plots(results, angle, centre, args.output / 'grasp_results.png')
    crops_picture(examples, canonicalizer, args.output / 'stn_crops.png')
    print(text)
    return 0


def grasp_plots(results: dict, angle: np.ndarray, centre: np.ndarray, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    methods = list(results)
    axes[0].bar(methods, [np.mean(results[m]['good']) * 100 for m in methods], color=['grey', 'tab:blue', 'tab:green', 'black'])
    axes[0].set_ylabel('grasp success (%)')
    axes[0].set_title('analytic label of the proposed grasp')
    axes[1].hist(np.minimum(angle, 90), bins=30, color='tab:green')
    axes[1].axvline(10, color='k', ls='--')
    axes[1].set_xlabel('STN axis-angle error (deg, mod 180)')
    axes[2].hist(np.minimum(centre, 10), bins=30, color='tab:green')
    axes[2].axvline(1.5, color='k', ls='--')
    axes[2].set_xlabel('STN centre error (px at 32x32)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def crops_picture(examples: list, canonicalizer, path: Path) -> None:
    """Per object: the metric crop the STN sees, the STN's canonical crop, and an oracle crop."""
    from stn_ros.data.grasp_images import grasp_image
    from stn_ros.proposals import metric_rois

    def tile(image, label, good=None):
        finite = image[np.isfinite(image)]
        low, high = (np.percentile(finite, 1), np.percentile(finite, 99)) if finite.size else (0, 1)
        grey = (np.clip((np.nan_to_num(image, nan=high) - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
        out = cv2.applyColorMap(cv2.resize(255 - grey, (128, 128), interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_VIRIDIS)
        colour = (255, 255, 255) if good is None else ((0, 200, 0) if good else (0, 0, 255))
        cv2.putText(out, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
        return cv2.copyMakeBorder(out, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))

    rows = []
    for scene, roi, proposals in examples:
        camera = scene.camera
        metric = metric_rois(roi[None], scene.depth, camera.fx, camera.fy, canonicalizer.roi_side_m or 0.24)[0]
        x, y, w, h = metric
        before = cv2.warpAffine(scene.depth, np.array([[w / 64, 0, x - 0.5 + w / 128], [0, h / 64, y - 0.5 + h / 128]]),
                                (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=float('nan'))
        cells = [tile(before, 'STN input')]
        for method in ('none', 'opencv', 'stn', 'oracle'):
            p = proposals[method]
            cells.append(tile(grasp_image(scene.depth, p.H, p.z), f'{method} q={p.quality:.2f}', p.good))
        rows.append(np.hstack(cells))
    cv2.imwrite(str(path), np.vstack(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m stn_ros.evaluate', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest='task', required=True, metavar='TASK')
    mnist = tasks.add_parser('mnist', help='the distorted-MNIST table, plot and picture',
                             description='Evaluate every runs/<distortion>/<model>/model.pt on the fixed test '
                                         'set and write table.md, errors.png, transformed_digits.png.')
    mnist.add_argument('--runs', type=Path, default=Path('runs/mnist'), help='trained runs (default: %(default)s)')
    mnist.add_argument('--output', type=Path, default=Path('docs/mnist'), help='where to write (default: %(default)s)')
    mnist.add_argument('--picture-model', default='st-cnn-affine', choices=MODEL_NAMES,
                       help='whose transformer the before/after picture shows (default: %(default)s)')
    mnist.add_argument('--quick', action='store_true', help='evaluate on 200 test images only')
    mnist.add_argument('--ship', type=Path, help='also copy the --picture-model checkpoints (and cards) here, '
                       'e.g. weights/')
    grasp = tasks.add_parser('grasp', help='grasp canonicalization: none / OpenCV / STN / oracle, and STN errors',
                             description='On held-out objects of the grasp dataset, compare the grasps proposed by '
                                         'no canonicalization, OpenCV minAreaRect, our STN and the analytic oracle: '
                                         'analytic success rate, GQ-CNN accuracy and AP; plus the STN\'s axis-angle '
                                         'and centre errors. Writes table.md, grasp_results.png, stn_crops.png.')
    grasp.add_argument('--gqcnn', type=Path, default=Path('weights/gqcnn.pt'), help='(default: %(default)s)')
    grasp.add_argument('--stn', type=Path, default=Path('weights/grasp_stn.pt'), help='(default: %(default)s)')
    grasp.add_argument('--num-scenes', type=int, default=2000, help='the grasp dataset (default: %(default)s)')
    grasp.add_argument('--data-seed', type=int, default=0, help='(default: %(default)s)')
    grasp.add_argument('--cache', type=Path, help='folder of the built dataset (.npz)')
    grasp.add_argument('--max-objects', type=int, default=2000, help='at most this many objects (default: %(default)s)')
    grasp.add_argument('--output', type=Path, default=Path('docs/grasp'), help='(default: %(default)s)')
    args = parser.parse_args(argv)
    args.command = 'python -m stn_ros.evaluate ' + ' '.join(sys.argv[1:] if argv is None else argv)
    return evaluate_mnist(args) if args.task == 'mnist' else evaluate_grasp(args)


if __name__ == '__main__':
    sys.exit(main())
