"""Test (and evaluate) a checkpoint with an msdet config (mmdet's command line).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
        [--show-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]
        [--debug]

Prints a table of COCO AP / AP50 / AP75 / AP_S / AP_M / AP_L (bbox and segm;
other metrics, e.g. mmseg's mIoU, one per row) and writes all metrics to
WORK_DIR/metrics.json. Both files are written atomically. A bad config,
argument or checkpoint (missing, truncated, or not fitting the model with
msdet's CheckpointFitHook) is one message and exit status 1; --debug (or
MSDET_DEBUG=1) shows the traceback.
"""
import argparse
import os
import os.path as osp

import msdet  # noqa: F401

from msdet.evaluation.tables import metrics_table
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool
from msdet.utils.config import build_runner, load_config, parse_tool_args
from msdet.utils.fileio import dump_json, part_path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a model with msdet')
    p.add_argument('config', help='config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='directory for logs and metrics.json')
    p.add_argument('--out', help='dump predictions to a .pkl file')
    p.add_argument('--show-dir', help='save painted predictions here')
    return parse_tool_args(p, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {args.out!r}: must end with .pkl/.pickle.')
    check_checkpoint_file(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        args.show, args.wait_time = False, 0
        cfg = trigger_visualization_hook(cfg, args)
    runner = build_runner(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        part = part_path(args.out)
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=part))
    metrics = runner.test()
    if runner.rank == 0:
        if args.out is not None:
            os.replace(part, args.out)  # whole, or not at all
        print(metrics_table(metrics))
        path = osp.join(cfg.work_dir, 'metrics.json')
        dump_json({k: float(v) if isinstance(v, (int, float)) else str(v)
                   for k, v in metrics.items()}, path, indent=2)
        print(f'metrics written to {path}')
    return metrics


if __name__ == '__main__':
    run_tool(main)
