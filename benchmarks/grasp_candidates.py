"""Which grasp to publish for each object? Every crop the pipeline makes, tried in physics, and choices compared.

On physics scenes by camera tilt, ``stn_node``'s and ``grasp_quality_node``'s code in this process (shipped weights
and default parameters: every object's ``hypotheses_per_object`` crops, each scored by the GQ-CNN, blocked ones left
out) gives every crop a grasp; the fair rule (``minAreaRect`` of each proposal's footprint on the table,
:mod:`stn_ros.evaluation.physics.rectified_rule`) gives one more per object, scored by the same GQ-CNN. Every one
of them is tried in pybullet once (a trial rebuilds the world, so a grasp holds or fails the same way each time),
so any way of choosing among them is judged on the same trials:

- **shipped**: each object's best-quality crop (what ``~/grasps`` carries);
- **on its own proposal first**: the best-quality crop whose centre lies on the object's own proposal, where one does;
- **quality x observed share**: the quality discounted by the crop's share of pixels with a reading;
- **first hypothesis**: the STN's best-scored hypothesis, no choice by the GQ-CNN;
- **with the fair rule**: the shipped choice and the rule's grasp, the higher quality of the two;
- **fair rule alone**;
- **best held** (upper bounds): any of the object's crops held; then any of them or the rule's.

Per object as ``stn_evaluate physics`` counts it (the grasps whose centre is on a body are that body's; the chosen
one, the highest quality of them, must lift it), and per scene (the highest-quality choice must lift something).
Training meshes by default: choose on them, confirm with ``stn_evaluate physics`` on the validation meshes.

    .venv/bin/python benchmarks/grasp_candidates.py --scenes 80 --tilt-bands 0-10,30-45,45-60
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

from bench_scenes import add_scene_options
from stn_ros.bridge.image_codec import encode_image
from stn_ros.evaluation.physics.bands import band_name
from stn_ros.evaluation.physics.graph import FrameOutput
from stn_ros.evaluation.physics.methods import node_proposals, pipeline_grasps, rectified_rule_grasps
from stn_ros.evaluation.physics.trials import TrialJob, run_all_trials
from stn_ros.perception.grasps.grasp_quality import GraspScorer
from stn_ros.perception.grasps.gripper import TRAINED_GRIPPER
from stn_ros.perception.grasps.steps import load_gqcnn_model
from stn_ros.perception.stn.canonicalizer import load_model
from stn_ros.perception.stn.frame import decode_frame
from stn_ros.perception.stn.steps import StnPipeline
from stn_ros.perception.stn.transforms_record import parse_record
from stn_ros.ros.parameter_specs import default_values
from stn_ros.ros.stn_parameters import PARAMETERS as STN_PARAMETERS
from stn_ros.sim.physics.scenes import PhysicsScene, PhysicsSceneConfig, generate_physics_scene
from stn_ros.sim.prisms.scenes import scene_seed


@dataclass
class SceneCrops:
    """One scene's grasps: every unblocked crop's (tile order) and the fair rule's, their features and trials."""

    bodies: int
    proposal: np.ndarray  # (N,) the crop's object (proposal) index
    hypothesis: np.ndarray  # (N,) the crop's hypothesis (0: the STN's best-scored)
    quality: np.ndarray  # (N,) GQ-CNN quality
    observed: np.ndarray  # (N,) share of the crop's pixels with a reading
    on_own: np.ndarray  # (N,) bool: the crop's centre is on its object's proposal
    target: np.ndarray  # (N,) body under the crop's centre (-1: none), as the evaluation counts it
    held: np.ndarray  # (N,) body lifted by the crop's grasp (-1: none)
    rule_quality: np.ndarray  # (M,) the fair rule's grasps
    rule_target: np.ndarray
    rule_held: np.ndarray


class PipelineInProcess:
    """``stn_node`` then ``grasp_quality_node``'s compute on one frame, their shipped weights and default parameters
    (every crop kept, the node's proposals too)."""

    def __init__(self) -> None:
        self.values = default_values(STN_PARAMETERS)
        device = torch.device('cpu')
        self.stn = StnPipeline.for_gripper(load_model(''), device, self.values['output_size'], TRAINED_GRIPPER)
        self.gqcnn = load_gqcnn_model('')[0].eval()
        self.scorer = GraspScorer(self.gqcnn, device, TRAINED_GRIPPER)

    def crops(self, scene: PhysicsScene):
        """The frame's proposals, canonical crops and scored grasps (one per crop, tile order)."""
        message = encode_image(scene.depth.astype(np.float32), '32FC1', msg_cls=SimpleNamespace)
        message.header = SimpleNamespace(frame_id='camera')
        frame = decode_frame(message)
        values = self.values
        found = node_proposals(scene)
        result = self.stn.canonicalizer.process(
            frame, found.rois, scene.camera, values['output_size'], values['hypotheses_per_object'], found.views
        )
        record = parse_record(result.record)
        scored = self.scorer.score(
            result.crops, record.homographies, scene.camera, 0.5, record.object_ids, record.hypotheses, record.normals
        )
        return found, result.crops, scored


def scene_grasps(pipeline: PipelineInProcess, scene: PhysicsScene, seed: int) -> tuple[TrialJob, dict]:
    """The trial job of one scene (every unblocked crop's grasp and the fair rule's) and its crops' features."""
    found, crops, scored = pipeline.crops(scene)
    record = scored.record
    keep = np.ones(len(record), bool) if scored.blocked is None else ~scored.blocked
    record, crops = record[keep], crops[keep]
    height, width = found.labels.shape
    columns = np.clip(np.round(record['u']).astype(int), 0, width - 1)
    rows = np.clip(np.round(record['v']).astype(int), 0, height - 1)
    features = {
        'proposal': record['object_id'].astype(int),
        'hypothesis': record['hypothesis'].astype(int),
        'quality': record['quality'].astype(np.float64),
        'observed': np.isfinite(crops).mean(axis=(1, 2)),
        'on_own': found.labels[rows, columns] == record['object_id'] + 1,
    }
    methods = {
        'crops': pipeline_grasps(scene, FrameOutput(record, True)),  # tile order kept: rows match ``features``
        'rule': rectified_rule_grasps(scene, TRAINED_GRIPPER, pipeline.gqcnn),
    }
    return TrialJob(scene, seed, methods, 0, TRAINED_GRIPPER), features


def judge_band(pipeline: PipelineInProcess, config: PhysicsSceneConfig, seeds: list[int], workers: int):
    """Every scene of one band, its grasps tried."""
    jobs, features = [], []
    for seed in tqdm(seeds, desc='crops', unit='scene', leave=False, file=sys.stderr):
        job, found = scene_grasps(pipeline, generate_physics_scene(config, seed), seed)
        jobs.append(job)
        features.append(found)
    scenes = []
    trials = tqdm(run_all_trials(jobs, workers), total=len(jobs), desc='trials', leave=False, file=sys.stderr)
    for job, found, tried in zip(jobs, features, trials, strict=True):
        crops, crops_tried = tried['crops']
        rule, rule_tried = tried['rule']
        scenes.append(
            SceneCrops(
                len(job.scene.kinds),
                target=crops.targets,
                held=crops_tried.held,
                rule_quality=rule.qualities,
                rule_target=rule.targets,
                rule_held=rule_tried.held,
                **found,
            )
        )
    return scenes


def choose(scene: SceneCrops, score: np.ndarray) -> np.ndarray:
    """Each object's (proposal's) crop of the highest ``score``: the rows ``~/grasps`` would carry."""
    return np.array([rows[np.argmax(score[rows])] for rows in map(np.flatnonzero, proposals(scene))], int)


def proposals(scene: SceneCrops) -> list[np.ndarray]:
    return [scene.proposal == k for k in np.unique(scene.proposal)]


def outcomes(scene: SceneCrops, chosen: np.ndarray, with_rule: bool) -> tuple[int, bool]:
    """Objects lifted by their grasp and whether the scene's best grasp lifted something, as the evaluation counts
    them: the chosen crops (and the rule's grasps), each body's highest-quality grasp on it."""
    quality = np.concatenate((scene.quality[chosen], scene.rule_quality if with_rule else []))
    target = np.concatenate((scene.target[chosen], scene.rule_target if with_rule else [])).astype(int)
    held = np.concatenate((scene.held[chosen], scene.rule_held if with_rule else [])).astype(int)
    lifted = 0
    for body in range(scene.bodies):
        on_body = np.flatnonzero(target == body)
        lifted += bool(len(on_body)) and held[on_body[np.argmax(quality[on_body])]] == body
    return lifted, bool(len(quality)) and held[np.argmax(quality)] >= 0


def upper_bound(scene: SceneCrops, with_rule: bool) -> tuple[int, bool]:
    """Objects some grasp on them lifted (any crop; and the rule's), and whether any grasp lifted something."""
    target = np.concatenate((scene.target, scene.rule_target if with_rule else [])).astype(int)
    held = np.concatenate((scene.held, scene.rule_held if with_rule else [])).astype(int)
    lifted = sum(bool((held[target == body] == body).any()) for body in range(scene.bodies))
    return lifted, bool((held >= 0).any())


CHOICES = {
    'shipped: best quality': lambda s: outcomes(s, choose(s, s.quality), False),
    'on its own proposal first': lambda s: outcomes(s, choose(s, s.quality + 2.0 * s.on_own), False),
    'quality x observed share': lambda s: outcomes(s, choose(s, s.quality * s.observed), False),
    'first hypothesis': lambda s: outcomes(s, choose(s, -s.hypothesis.astype(float)), False),
    'best quality, with the fair rule': lambda s: outcomes(s, choose(s, s.quality), True),
    'fair rule alone': lambda s: outcomes(s, np.zeros(0, int), True),
    'best held of the crops (upper bound)': lambda s: upper_bound(s, False),
    'best held, with the fair rule (upper bound)': lambda s: upper_bound(s, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_options(parser, scenes=80, seed=700)
    parser.add_argument('--workers', type=int, default=2, help='trial processes (default: %(default)s)')
    args = parser.parse_args()
    if args.scenes < 1:
        parser.error('--scenes must be at least 1')
    pipeline = PipelineInProcess()
    seeds = [scene_seed(args.seed, i) for i in range(args.scenes)]
    judged = {}
    for band in tqdm(args.tilt_bands, desc='bands', file=sys.stderr):
        config = PhysicsSceneConfig(meshes=args.meshes, tilt_range_deg=band)
        judged[band] = judge_band(pipeline, config, seeds, args.workers)
    print(f'{args.scenes} scenes a band, {args.meshes} meshes, seed {args.seed}; one trial per grasp.\n')
    print('| choice | ' + ' | '.join(f'{band_name(b)}: per object / per scene' for b in args.tilt_bands) + ' |')
    print('|---|' + '---:|' * len(args.tilt_bands))
    for name, judge in CHOICES.items():
        cells = []
        for scenes in judged.values():
            results = [judge(scene) for scene in scenes]
            objects = sum(scene.bodies for scene in scenes)
            lifted = sum(r[0] for r in results)
            cells.append(f'{lifted / objects:.1%} / {sum(r[1] for r in results) / len(scenes):.1%}')
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    crops = sum(len(s.quality) for scenes in judged.values() for s in scenes)
    print(f"\n{crops} crops and the fair rule's grasps tried, {sum(len(v) for v in judged.values())} scenes.")


if __name__ == '__main__':
    main()
