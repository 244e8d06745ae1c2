"""Train a detector or segmentor with an msdet config (mmdet's command line).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]
        [--debug]

A bad config, argument, dataset or checkpoint is one message and exit
status 1; --debug (or MSDET_DEBUG=1) shows the traceback.
"""
import argparse
import os.path as osp

import msdet  # noqa: F401  (registers msdet modules, torch.load fix)
from mmengine.runner.checkpoint import find_latest_checkpoint

from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool
from msdet.utils.config import build_runner, load_config, parse_tool_args


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a model with msdet')
    p.add_argument('config', help='config file path')
    p.add_argument('--work-dir', help='directory for logs and checkpoints')
    p.add_argument('--amp', action='store_true',
                   help='automatic mixed precision (needs CUDA)')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the LR by the actual total batch size')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or from the latest checkpoint in '
                   'the work dir when no path is given')
    return parse_tool_args(p, argv)


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ValueError(
                f'--auto-scale-lr: {args.config!r} has no auto_scale_lr; add '
                'auto_scale_lr = dict(enable=False, base_batch_size=N) to '
                'the config, N being the total batch size its learning rate '
                'was set for (mmdet: 16).')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
        latest = find_latest_checkpoint(cfg.work_dir)
        if latest is not None:
            check_checkpoint_file(latest, osp.join(cfg.work_dir,
                                                   'last_checkpoint') +
                                  ' names')
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None):
    cfg = build_cfg(parse_args(argv))
    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    run_tool(main)
