"""Scoring: each method's outcome per scene and per object, and every figure of the report (rates with Wilson
intervals, why grasps failed, the GQ-CNN's ranking and calibration against the outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stn_ros.core.metrics import auroc, calibration_bins, expected_calibration_error, paired_difference, proportion
from stn_ros.evaluation.physics.methods import METHODS, RECTIFIED_RULE, MethodGrasps
from stn_ros.evaluation.physics.trials import Tried


@dataclass
class SceneResult:
    """Outcome of every grasp of every method on one scene."""

    seed: int
    kinds: list[str]
    layout: str
    methods: dict[str, MethodGrasps] = field(default_factory=dict)
    held: dict[str, np.ndarray] = field(default_factory=dict)  # (N,) int: body lifted, -1 none
    tried: dict[str, Tried] = field(default_factory=dict)
    best_published: bool = False


def kind_group(kind: str) -> str:
    """``mesh`` for every ``random_urdfs`` mesh, else the procedural shape's name."""
    return 'mesh' if kind.startswith('mesh') else kind


def object_outcomes(result: SceneResult, name: str) -> list[bool]:
    """Per body of the scene: did the method's grasp for it lift it (the package docstring,
    :mod:`stn_ros.evaluation.physics`, says which grasp is the method's)?"""
    method, held = result.methods[name], result.held[name]
    out = []
    for body in range(len(result.kinds)):
        rows = np.flatnonzero(method.targets == body)
        if name == 'best_candidate':
            out.append(bool((held[rows] == body).any()))
        elif not len(rows):
            out.append(False)
        else:
            if method.qualities is not None:  # a ranking method's choice: its best-quality grasp on the object
                rows = rows[[int(np.argmax(method.qualities[rows]))]]
            out.append(bool(held[rows[0]] == body))
    return out


def scene_outcome(result: SceneResult, name: str) -> bool:
    """Did the method's pick for the scene lift something (the upper bound: did any candidate)?"""
    method, held = result.methods[name], result.held[name]
    if name == 'best_candidate':
        return bool((held >= 0).any())
    return method.pick is not None and bool(held[method.pick] >= 0)


def quality_against_outcome(results: list[SceneResult], name: str, threshold: float) -> dict:
    """How a ranking method's GQ-CNN qualities of every grasp it tried match the outcome (held: the grasp lifted a
    body): AUROC, expected calibration error and its bins, and the grasps below ``threshold`` (held or not)."""
    quality = np.concatenate([r.methods[name].qualities for r in results])
    held = np.concatenate([r.held[name] >= 0 for r in results])
    table = calibration_bins(quality, held)
    return {
        'crops': int(len(quality)),
        'auroc': auroc(quality, held),
        'ece': expected_calibration_error(quality, held),
        'held': int(held.sum()),
        'below_threshold': int((quality < threshold).sum()),
        'below_threshold_held': int(((quality < threshold) & held).sum()),
        'calibration': {k: v.tolist() for k, v in table.items()},
    }


def summarize(results: list[SceneResult], threshold: float, methods: tuple[str, ...] = METHODS) -> dict:
    """Every figure of the report, for ``methods`` (each scene's result has them all); with the fair rule
    (``RECTIFIED_RULE``) also the pipeline against it, paired, and its GQ-CNN figures."""
    summary: dict = {'scenes': len(results), 'objects': sum(len(r.kinds) for r in results), 'methods': {}}
    for name in methods:
        per_object = [
            (kind_group(k), r.layout, ok)
            for r in results
            for k, ok in zip(r.kinds, object_outcomes(r, name), strict=True)
        ]
        summary['methods'][name] = {
            'best_per_scene': proportion(sum(scene_outcome(r, name) for r in results), len(results)),
            'per_object': proportion(sum(ok for *_, ok in per_object), len(per_object)),
            'by_kind': {
                kind: proportion(
                    sum(ok for k, _, ok in per_object if k == kind), sum(k == kind for k, *_ in per_object)
                )
                for kind in sorted({k for k, *_ in per_object})
            },
            'by_layout': {
                layout: proportion(
                    sum(ok for _, la, ok in per_object if la == layout), sum(la == layout for _, la, _ in per_object)
                )
                for layout in ('singulated', 'cluttered')
            },
            'grasps_tried': int(sum(len(r.held[name]) for r in results)),
            'objects_without_grasp': int(
                sum(len(r.kinds) - len(set(r.methods[name].targets[r.methods[name].targets >= 0])) for r in results)
            ),
        }
        if all(name in r.tried for r in results):
            outcomes = np.concatenate([r.tried[name].outcomes for r in results]).astype(str)
            into_table = np.concatenate([r.tried[name].into_table for r in results])
            summary['methods'][name]['outcomes'] = {o: int((outcomes == o).sum()) for o in sorted(set(outcomes))}
            summary['methods'][name]['aimed_into_table'] = int(into_table.sum())
            summary['methods'][name]['blocked_aimed_into_table'] = int((into_table & (outcomes == 'blocked')).sum())
    published = [r.best_published for r in results]
    robot = [r.best_published and scene_outcome(r, 'pipeline') for r in results]
    summary['gqcnn'] = quality_against_outcome(results, 'pipeline', threshold)
    summary['gqcnn_min_area_rect'] = quality_against_outcome(results, 'min_area_rect_gqcnn', threshold)
    summary['stn_over_rule_same_gqcnn'] = {
        'best_per_scene': paired_difference(
            [scene_outcome(r, 'pipeline') for r in results],
            [scene_outcome(r, 'min_area_rect_gqcnn') for r in results],
        ),
        'per_object': paired_difference(
            [ok for r in results for ok in object_outcomes(r, 'pipeline')],
            [ok for r in results for ok in object_outcomes(r, 'min_area_rect_gqcnn')],
        ),
    }
    if RECTIFIED_RULE in methods:
        summary['gqcnn_rectified_rule'] = quality_against_outcome(results, RECTIFIED_RULE, threshold)
        summary['stn_over_fair_rule'] = {
            'best_per_scene': paired_difference(
                [scene_outcome(r, 'pipeline') for r in results], [scene_outcome(r, RECTIFIED_RULE) for r in results]
            ),
            'per_object': paired_difference(
                [ok for r in results for ok in object_outcomes(r, 'pipeline')],
                [ok for r in results for ok in object_outcomes(r, RECTIFIED_RULE)],
            ),
        }
    summary['best_grasp'] = {
        'threshold': threshold,
        'published': proportion(sum(published), len(results)),
        'robot_success': proportion(sum(robot), len(results)),
        'silent_scenes': int(len(results) - sum(published)),
    }
    return summary
