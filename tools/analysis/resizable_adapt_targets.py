"""Resizable-Adapt targets (Resizable paper 3.5): run every candidate spatial
configuration of a trained Resizable super-network on N training images,
score each image under each candidate by its COCO box AP and take the best
candidate per image; write what the ResizeLearner trains on.

    python tools/analysis/resizable_adapt_targets.py CONFIG SUPERNET_CKPT \\
        [--configurations 0.5,1,1,1 0.75,0.875,1,1 ...] \\
        [--lookup-table work_dirs/resizable_nas/lookup_table.json] \\
        [--max-gflops G] [--num-images N] [--seed 0] \\
        [--work-dir work_dirs/resizable_adapt_targets] [--cfg-options ...]

CONFIG is a ``ResizableAdaptDetector`` config (its ``detector`` is the
super-network, SUPERNET_CKPT that detector's training checkpoint).
Candidates: ``--configurations`` (one factor per stage, stage 1 first), or
every row of a Resizable-NAS ``--lookup-table``, or else the config's
``learner.configurations``; ``--max-gflops`` then keeps those whose
whole-model GFLOPs per image (measured here on the first image) are at most
G: the FLOPs ceiling (paper 4.4, "only sub-networks that are smaller than
the target network is used").

Images: N training images drawn at random with ``--seed`` (paper: 50k
random ImageNet training images; default: the whole training set), through
the test pipeline, one at a time. Score and best candidate: per-image COCO
box AP, ties to the cheapest (``msdet.analysis.resizable``); brute force
over every (image, candidate) pair.

Writes to the work dir:

- ``targets.json``: ``candidates`` (cheapest first; the learner's output
  order), ``gflops_model`` / ``gflops_backbone`` per candidate, ``score``,
  ``images`` (``img_id``, ``scores`` per candidate, ``best``) and
  ``best_counts``;
- ``instances_targets.json``: the training annotation file restricted to
  those N images (the learner trains on exactly them);
- ``<config name>.py``: CONFIG with the candidates, the targets, that
  annotation file and the super-network checkpoint filled in; the command
  to train the learner on it is printed.
"""
import argparse
import os.path as osp
import pprint

import msdet  # noqa: F401  (registers msdet modules)
import numpy as np
from mmdet.registry import DATASETS
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from pycocotools.coco import COCO
from torch.utils.data import Subset

from msdet.analysis.resizable import (ImageAP, best_candidates,
                                      cheapest_first,
                                      model_space, one_process_args,
                                      parse_configurations,
                                      parse_subnet_name, run_candidates)
from msdet.evaluation.complexity import subnet_gflops
from msdet.evaluation.scale_report import load_results
from msdet.models.detectors.resizable_adapt import check_configurations
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool
from msdet.utils.config import load_config
from msdet.utils.fileio import atomic_open, dump_json

SCORE = ('bbox_AP: per-image COCO box AP@[.5:.95] (maxDets 100, all areas, '
         'mean over the categories with ground truth); best = highest, '
         'ties to the cheapest candidate')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Resizable-Adapt targets')
    p.add_argument('config', help='a ResizableAdaptDetector config')
    p.add_argument('checkpoint', help="the super-network's checkpoint")
    src = p.add_mutually_exclusive_group()
    src.add_argument('--configurations', nargs='+', metavar='S1,S2,..',
                     help='candidate configurations')
    src.add_argument('--lookup-table', metavar='JSON',
                     help='take the candidates from a Resizable-NAS lookup '
                     'table (lookup_table.json)')
    p.add_argument('--max-gflops', type=float,
                   help='FLOPs ceiling (whole model, per image)')
    p.add_argument('--num-images', type=int,
                   help='training images (default: all)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work-dir', default='work_dirs/resizable_adapt_targets')
    return one_process_args(p, argv, 'resizable_adapt_targets')


def adapt_model_cfg(cfg):
    model = cfg.model
    if str(model.get('type', '')).split('.')[-1] != 'ResizableAdaptDetector':
        raise ValueError(f"the config's model is {model.get('type')!r}; "
                         'needs a ResizableAdaptDetector config (e.g. '
                         'configs/resizable/faster_rcnn_rsr50_fpn_adapt.py).')
    return model


def read_candidates(args, model_cfg, space):
    """The candidate list (checked against the model's space)."""
    if args.configurations:
        candidates = parse_configurations(args.configurations, space)
    elif args.lookup_table:
        candidates = [parse_subnet_name(r['subnet'])
                      for r in load_results(args.lookup_table)]
    else:
        candidates = model_cfg.learner.get('configurations')
    return check_configurations(candidates, space, 'resizable_adapt_targets')


def training_images(cfg, args):
    """The training set through the test pipeline, and the drawn indices."""
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    if 'ann_file' not in dataset_cfg:
        raise ValueError('resizable_adapt_targets: the training set must be '
                         f"one COCO-style dataset, got {dataset_cfg.type!r}.")
    dataset_cfg.pipeline = cfg.test_dataloader.dataset.pipeline
    dataset = DATASETS.build(dataset_cfg)
    dataset.full_init()
    n = len(dataset) if args.num_images is None else args.num_images
    if not 1 <= n <= len(dataset):
        raise ValueError(f'--num-images {args.num_images}; allowed: 1 .. '
                         f'{len(dataset)} (the training set).')
    rng = np.random.default_rng(args.seed)
    indices = sorted(rng.choice(len(dataset), n, replace=False).tolist())
    return dataset, indices


def learner_config(args, cfg, candidates, files, n):
    """The text of the learner-training config (module doc)."""
    return '\n'.join([
        '# Resizable-Adapt learner training (paper 3.5) on the targets of',
        f'# tools/analysis/resizable_adapt_targets.py: {n} training images, '
        f'{len(candidates)} candidates',
        f'# (ceiling: {args.max_gflops} GFLOPs); score: {SCORE}.',
        f'_base_ = {osp.abspath(args.config)!r}',
        'model = dict(',
        f'    supernet_checkpoint={osp.abspath(args.checkpoint)!r},',
        f"    targets={osp.abspath(files['targets'])!r},",
        '    learner=dict(configurations='
        + pprint.pformat(candidates, sort_dicts=False, indent=4) + '))',
        'train_dataloader = dict(dataset=dict(',
        f"    ann_file={osp.abspath(files['ann_file'])!r}))", ''])


def subset_annotations(coco, img_ids):
    """``coco``'s annotation file restricted to ``img_ids``."""
    keep = set(img_ids)
    out = {k: v for k, v in coco.dataset.items()
           if k not in ('images', 'annotations')}
    out['images'] = [im for im in coco.dataset['images'] if im['id'] in keep]
    out['annotations'] = [a for a in coco.dataset['annotations']
                          if a['image_id'] in keep]
    return out


def main(argv=None):
    args = parse_args(argv)
    check_checkpoint_file(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = adapt_model_cfg(cfg)
    space = model_space(model_cfg.detector)
    candidates = read_candidates(args, model_cfg, space)
    detector = MMDET_MODELS.build(model_cfg.detector)
    load_checkpoint(detector, args.checkpoint, map_location='cpu',
                    strict=True, logger='current')
    detector.eval()
    dataset, indices = training_images(cfg, args)
    loader = Runner.build_dataloader(dict(
        dataset=Subset(dataset, indices), batch_size=1, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False)))

    first = detector.data_preprocessor(next(iter(loader)), False)
    costs = subnet_gflops(detector, first['inputs'][:1],
                          first['data_samples'][:1], candidates)
    if args.max_gflops is not None:
        keep = [k for k, c in enumerate(costs)
                if c['model'] <= args.max_gflops]
        if not keep:
            raise ValueError(
                f'--max-gflops {args.max_gflops}: no candidate fits; the '
                f"cheapest needs {min(c['model'] for c in costs):.3f}.")
        candidates = [candidates[k] for k in keep]
        costs = [costs[k] for k in keep]
    candidates, costs = cheapest_first(candidates, costs)

    coco = COCO(dataset.ann_file)
    run = run_candidates(detector, loader, candidates,
                         ImageAP(coco, dataset.cat_ids))
    gflops_model = [c['model'] for c in costs]
    best = best_candidates(run['scores'], gflops_model)
    counts = [best.count(k) for k in range(len(candidates))]
    targets = dict(
        score=SCORE, config=osp.abspath(args.config),
        checkpoint=osp.abspath(args.checkpoint), seed=args.seed,
        num_images=len(best), candidates=candidates,
        gflops_model=gflops_model,
        gflops_backbone=[c['backbone'] for c in costs],
        best_counts=counts,
        images=[dict(img_id=i, scores=s, best=b)
                for i, s, b in zip(run['img_ids'], run['scores'], best)])
    files = dict(targets=osp.join(args.work_dir, 'targets.json'),
                 ann_file=osp.join(args.work_dir, 'instances_targets.json'))
    name = osp.splitext(osp.basename(args.config))[0]
    files['config'] = osp.join(args.work_dir, f'{name}.py')
    dump_json(targets, files['targets'], indent=1)
    dump_json(subset_annotations(coco, run['img_ids']), files['ann_file'])
    with atomic_open(files['config']) as f:
        f.write(learner_config(args, cfg, candidates, files, len(best)))
    command = f"python tools/train.py {files['config']}"
    for k, c in enumerate(candidates):
        print(f'{k}: {c}  {gflops_model[k]:.3f} GFLOPs  best for '
              f'{counts[k]} of {len(best)} images')
    print(f'train the learner: {command}')
    return dict(targets=targets, files=files, command=command)


if __name__ == '__main__':
    run_tool(main)
