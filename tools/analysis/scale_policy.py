"""Scale-policy scores of a trained Elastic model (ELASTIC paper 4.1.1, eq. 5).

    python tools/analysis/scale_policy.py CONFIG CHECKPOINT \
        [--out-dir work_dirs/scale_policy] [--split test|val] \
        [--max-images N] [--cfg-options k=v ...]

Runs the model's backbone (eval mode, one image per batch) over the config's
test (or val) set and records, for every Elastic block and image, S = mean
activation of the high-resolution branch minus that of the low-resolution
branch. Writes scores.csv / scores.npy (image x block), block_mean.csv,
summary.json and heatmap.png (images sorted by mean S, like fig. 6 middle)
to the output directory. Works with mmseg and mmdet configs.
"""
import argparse

import msdet  # noqa: F401
from mmengine.config import DictAction

from msdet.analysis import compute_scale_policy, save_scale_policy  # noqa
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.config import build_model, load_config
from msdet.utils.cli import run_tool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Elastic scale-policy scores')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out-dir', default='work_dirs/scale_policy')
    p.add_argument('--split', default='test', choices=['test', 'val'],
                   help="which of the config's dataloaders to run over")
    p.add_argument('--max-images', type=int, help='stop after N images')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def build_model_and_data(cfg, checkpoint, split):
    """The config's model with ``checkpoint`` loaded (CPU, SyncBN reverted)
    and its ``split`` dataloader at one image per batch."""
    from mmengine.runner import Runner
    model = build_model(cfg, checkpoint)
    loader = cfg[f'{split}_dataloader']
    loader.update(batch_size=1, num_workers=0, persistent_workers=False)
    return model, Runner.build_dataloader(loader)


def main(argv=None):
    args = parse_args(argv)
    check_checkpoint_file(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    model, loader = build_model_and_data(cfg, args.checkpoint, args.split)
    result = compute_scale_policy(model, loader, args.max_images)
    paths = save_scale_policy(result, args.out_dir)
    scores = result['scores']
    print(f'{scores.shape[0]} images x {scores.shape[1]} Elastic blocks')
    for name, mean in zip(result['blocks'], scores.mean(axis=0)):
        print(f'{name:<12} mean S = {mean:+.4f}')
    for path in paths.values():
        print(f'written: {path}')
    return result


if __name__ == '__main__':
    run_tool(main)
