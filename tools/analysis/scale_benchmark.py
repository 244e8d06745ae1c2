"""Accuracy across scale: evaluate checkpoints at several test scales (and
widths) and report COCO AP, AP_S/M/L, GFLOPs and latency side by side.

    python tools/analysis/scale_benchmark.py CONFIG CHECKPOINT \
        [--compare CONFIG2 CHECKPOINT2 ...] [--names A B ...] \
        [--scales 240 360 480 600 800] [--widths 1.0 0.5 0.25] \
        [--recalibrate-bn N] \
        [--work-dir work_dirs/scale_benchmark] [--cfg-options k=v ...]

A config whose ``test_cfg`` is already a ``ScaleSweepTestLoop`` supplies
its own ``scales``, ``widths`` / ``subnets`` and ``recalibrate_bn`` (e.g. a
Resizable super-network's configurations); the command line overrides them.

Writes results.json, results.csv, ap_vs_scale.png, ap_vs_gflops.png to the
work dir and prints a markdown table. Each setting is one pass over the
test set with mmengine's runner (msdet's ScaleSweepTestLoop +
ScaleAwareCocoMetric, i.e. mmdet's CocoMetric numbers).
"""
import argparse
import os.path as osp

import msdet  # noqa: F401

from msdet.evaluation.scale_loop import (DEFAULT_SCALES, check_scales,
                                         use_scale_sweep)
from msdet.evaluation.scale_report import (markdown_table,
                                           plot_ap_vs_flops,
                                           plot_ap_vs_scale, record_to_row,
                                           write_results)
from msdet.utils.config import (build_runner, load_config,
                                 parse_tool_args)
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='COCO AP across test scales')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--compare', nargs=2, action='append', default=[],
                   metavar=('CONFIG', 'CHECKPOINT'),
                   help='another model to evaluate side by side')
    p.add_argument('--names', nargs='+', help='one display name per model')
    p.add_argument('--scales', nargs='+', type=int,
                   help="test short sides (default: the config's sweep "
                   f'scales, else {list(DEFAULT_SCALES)})')
    p.add_argument('--widths', nargs='+', type=float,
                   help='sub-network widths (width-switchable models)')
    p.add_argument('--recalibrate-bn', type=int, metavar='N',
                   help='re-estimate BN statistics on N training images '
                   "before each setting (default: the config's sweep "
                   'setting, else 2000 with --widths, else off)')
    p.add_argument('--no-flops', action='store_true')
    p.add_argument('--work-dir', default='work_dirs/scale_benchmark')
    return parse_tool_args(p, argv)


def sweep_config(config, checkpoint, args, work_dir):
    """The model's config with the scale-sweep loop and metric in place."""
    check_checkpoint_file(checkpoint)
    cfg = load_config(config, args.cfg_options, work_dir, args.launcher)
    cfg.load_from = checkpoint
    own = cfg.get('test_cfg') or {}
    if str(own.get('type', '')).split('.')[-1] != 'ScaleSweepTestLoop':
        own = {}
    subnets = dict(widths=args.widths) if args.widths else dict(
        widths=own.get('widths'), subnets=own.get('subnets'))
    recalib = args.recalibrate_bn
    if recalib is None:
        recalib = own.get('recalibrate_bn', 2000 if subnets['widths'] else 0)
    return use_scale_sweep(cfg, scales=args.scales or own.get('scales',
                                                              DEFAULT_SCALES),
                           recalibrate_bn=recalib,
                           count_flops=not args.no_flops, **subnets)


def main(argv=None):
    args = parse_args(argv)
    if args.scales is not None:
        check_scales(args.scales)
    models = [(args.config, args.checkpoint)] + [tuple(m) for m in args.compare]
    names = args.names or [osp.splitext(osp.basename(c))[0]
                           for c, _ in models]
    if len(names) != len(models) or len(set(names)) != len(names):
        raise ValueError(f'--names {names!r}: need one distinct name per '
                         f'model ({len(models)}).')
    cfgs = [sweep_config(c, k, args, osp.join(args.work_dir, n))
            for (c, k), n in zip(models, names)]
    rows, rank = [], 0
    for name, cfg in zip(names, cfgs):
        runner = build_runner(cfg)
        runner.test()
        rank = runner.rank
        rows += [record_to_row(name, r) for r in runner.test_loop.records]
    if rank != 0:
        return rows
    out = {k: osp.join(args.work_dir, f)
           for k, f in (('json', 'results.json'), ('csv', 'results.csv'),
                        ('scale_png', 'ap_vs_scale.png'),
                        ('flops_png', 'ap_vs_gflops.png'))}
    write_results(rows, out['json'], out['csv'])
    task = 'segm' if all(r['bbox_AP'] is None for r in rows) else 'bbox'
    plot_ap_vs_scale(rows, out['scale_png'], task)
    if not args.no_flops:
        plot_ap_vs_flops(rows, out['flops_png'], task)
    print(markdown_table(rows))
    print('\n'.join(f'{k}: {v}' for k, v in out.items()
                    if args.no_flops is False or k != 'flops_png'))
    return rows


if __name__ == '__main__':
    run_tool(main)
