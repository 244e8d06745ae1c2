"""Resizable-NAS (Resizable paper, section 3.3): enumerate the spatial
configurations of a trained Resizable super-network, measure GFLOPs and
COCO AP of each, write the lookup table, pick the best under a FLOPs budget
and write the fine-tune config of that sub-network.

    python tools/analysis/resizable_nas.py CONFIG CHECKPOINT \
        [--configurations 0.5,1,1,1 0.75,0.875,1,1 ...] \
        [--short-side 800] [--max-gflops 150] [--metric bbox_AP] \
        [--recalibrate-bn N] [--ft-epochs 2] [--ft-lr LR] \
        [--work-dir work_dirs/resizable_nas] [--cfg-options k=v ...]

Without ``--configurations`` every configuration (the product of the
per-stage factor lists; 625 for the default lists) is evaluated: each is
one pass over the test set (msdet's ScaleSweepTestLoop with
``subnets=[...]`` at one test scale, ScaleAwareCocoMetric = mmdet's COCO
numbers), so give a subset for a quick table. A configuration is one factor
per stage, comma-separated, stage 1 first.

Writes ``lookup_table.json`` / ``lookup_table.csv`` (one row per
configuration: ``subnet`` "resize1=.., ...", ``gflops_backbone``,
``gflops_model`` (whole detector, the budget's cost), ``latency_ms``,
``bbox_AP`` ...) and, with ``--max-gflops``, ``best.json`` and
``finetune_<config>.py``: the chosen sub-network trained alone
(``FairSpatialSampler(target=..., switch_at=dict(iter=0))``) from the
super-network's checkpoint, with the command to run it printed. The paper
fine-tunes 15 epochs after 100 (15%); the default here is 2 epochs after a
12-epoch schedule at 1/100 of the config's learning rate (the 1x
schedule's final rate).

BN: the scale-aware BNs keep statistics per factor, but those also depend
on the other stages' factors; ``--recalibrate-bn N`` re-estimates them for
every configuration on N training images first (post-statistics).
"""
import argparse
import json
import os.path as osp
import pprint

import msdet  # noqa: F401

from msdet.analysis.resizable import model_space, parse_configurations
from msdet.evaluation.scale_loop import find_resize, use_scale_sweep
from msdet.evaluation.scale_report import (markdown_table, query_best,
                                           record_to_row, subnet_name,
                                           write_results)
from msdet.models.backbones.resizable_resnet import enumerate_configurations
from msdet.utils.config import (build_runner, load_config,
                                 parse_tool_args)
from msdet.utils.fileio import atomic_open, dump_json
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Resizable-NAS lookup table')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--configurations', nargs='+', metavar='S1,S2,..',
                   help='a subset of configurations (default: all)')
    p.add_argument('--short-side', type=int,
                   help="test short side (default: the config's)")
    p.add_argument('--max-gflops', type=float,
                   help='FLOPs budget (whole model, per image) to pick the '
                   'best configuration under')
    p.add_argument('--metric', default='bbox_AP')
    p.add_argument('--recalibrate-bn', type=int, default=0, metavar='N')
    p.add_argument('--ft-epochs', type=int, default=2)
    p.add_argument('--ft-lr', type=float)
    p.add_argument('--work-dir', default='work_dirs/resizable_nas')
    return parse_tool_args(p, argv)


def finetune_config(args, cfg, settings):
    """The text of the fine-tune config for ``settings`` (module doc)."""
    hooks = [h for h in cfg.to_dict().get('custom_hooks', [])
             if h.get('type') != 'SubnetSwitchHook']
    calib = next((h.get('calib_images', 2000)
                  for h in cfg.to_dict().get('custom_hooks', [])
                  if h.get('type') == 'SubnetSwitchHook'), 2000)
    hooks.append(dict(
        type='SubnetSwitchHook', calib_images=calib,
        sampler=dict(type='FairSpatialSampler', target=dict(settings),
                     switch_at=dict(iter=0))))
    lr = args.ft_lr
    if lr is None:
        lr = cfg.optim_wrapper.optimizer.lr / 100
    return '\n'.join([
        '# Resizable-NAS fine-tune (paper 3.3) of the configuration picked by',
        '# tools/analysis/resizable_nas.py '
        f'(--max-gflops {args.max_gflops}, {args.metric}).',
        f'_base_ = {osp.abspath(args.config)!r}',
        f'load_from = {osp.abspath(args.checkpoint)!r}',
        'model = dict(backbone=dict(init_cfg=None))',
        f'custom_hooks = {pprint.pformat(hooks, sort_dicts=False)}',
        f'train_cfg = dict(max_epochs={args.ft_epochs}, '
        f'val_interval={args.ft_epochs})',
        f'optim_wrapper = dict(optimizer=dict(lr={lr!r}))',
        'param_scheduler = []', ''])


def main(argv=None):
    args = parse_args(argv)
    check_checkpoint_file(args.checkpoint)
    if args.ft_epochs < 1:
        raise ValueError(f'--ft-epochs {args.ft_epochs}; allowed: >= 1.')
    cfg = load_config(args.config, args.cfg_options,
                      osp.join(args.work_dir, 'runs'), args.launcher)
    space = model_space(cfg.model)
    subnets = (parse_configurations(args.configurations, space)
               if args.configurations else
               list(enumerate_configurations(space)))
    short = args.short_side or min(
        find_resize(cfg.test_dataloader.dataset.pipeline).scale)
    cfg.load_from = args.checkpoint
    use_scale_sweep(cfg, scales=[short], subnets=subnets,
                    recalibrate_bn=args.recalibrate_bn, count_flops=True)
    runner = build_runner(cfg)
    runner.test()
    if runner.rank != 0:
        return None
    name = osp.splitext(osp.basename(args.config))[0]
    rows = [record_to_row(name, r) for r in runner.test_loop.records]
    out = dict(json=osp.join(args.work_dir, 'lookup_table.json'),
               csv=osp.join(args.work_dir, 'lookup_table.csv'))
    write_results(rows, out['json'], out['csv'])
    print(markdown_table(rows))
    result = dict(rows=rows, files=out)
    if args.max_gflops is not None:
        best = query_best(rows, max_gflops=args.max_gflops,
                          metric=args.metric)
        settings = next(s for s in subnets
                        if subnet_name(s) == best['subnet'])
        ft_path = osp.join(args.work_dir, f'finetune_{name}.py')
        with atomic_open(ft_path) as f:
            f.write(finetune_config(args, cfg, settings))
        command = f'python tools/train.py {ft_path}'
        dump_json(dict(configuration=settings, row=best, config=ft_path,
                       command=command),
                  osp.join(args.work_dir, 'best.json'), indent=1)
        print(f"best under {args.max_gflops} GFLOPs: {best['subnet']} "
              f"{args.metric}={best[args.metric]} "
              f"GFLOPs={best['gflops_model']:.3f}\nfine-tune: {command}")
        result.update(best=best, settings=settings, finetune=ft_path,
                      command=command)
        out.update(best=osp.join(args.work_dir, 'best.json'),
                   finetune=ft_path)
    print(json.dumps(out, indent=1))
    return result


if __name__ == '__main__':
    run_tool(main)
