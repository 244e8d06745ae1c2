#!/usr/bin/env python3
"""Generate the multi-scale synthetic COCO dataset and report its statistics.

    python tools/make_coco_multiscale.py data/coco_multiscale \
        [--num-train 400] [--num-val 100] [--image-size 256] [--seed 0]
    python tools/make_coco_multiscale.py data/coco --stats-only

Prints objects per COCO area bucket (small <= 32^2 < medium <= 96^2 <
large), per class and per class and bucket, objects per image and sqrt(area)
percentiles for each split, and writes them to OUT_DIR/stats.json.
``--stats-only`` reads an existing COCO 2017 layout (e.g. real COCO)
instead of generating one.
"""
import argparse
import json
import os.path as osp

from msdet.datasets.multiscale_coco import (dataset_statistics,
                                            make_multiscale_coco)
from msdet.evaluation.buckets import BUCKETS
from msdet.utils.cli import run_tool
from msdet.utils.fileio import dump_json

SPLITS = ('train', 'val')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out_dir', help='dataset directory (COCO 2017 layout)')
    p.add_argument('--num-train', type=int, default=400)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--stats-only', action='store_true',
                   help='only report the statistics of OUT_DIR')
    return p.parse_args(argv)


def read_statistics(out_dir):
    """Statistics of both splits of an existing COCO 2017 layout."""
    stats = {'out_dir': out_dir}
    for split in SPLITS:
        path = osp.join(out_dir, 'annotations', f'instances_{split}2017.json')
        if not osp.isfile(path):
            raise ValueError(f'{path!r} not found: OUT_DIR needs '
                             'annotations/instances_{train,val}2017.json.')
        with open(path) as f:
            stats[split] = dict(dataset_statistics(json.load(f)),
                                ann_file=path)
    return stats


def format_statistics(stats):
    """The statistics as plain-text tables."""
    head = (f"{'split':<6} {'images':>6} {'objects':>7} {'per img':>7} " +
            ' '.join(f'{b:>13}' for b in BUCKETS) +
            f" {'occluded':>8} {'clustered':>9}")
    lines = [head]
    for split in SPLITS:
        s = stats[split]
        frac = s['bucket_fractions']
        cells = [f"{s['buckets'][b]:>6} ({100 * frac[b]:4.1f}%)"
                 for b in BUCKETS]
        lines.append(
            f"{split:<6} {s['num_images']:>6} {s['num_objects']:>7} "
            f"{s['objects_per_image']['mean']:>7} " + ' '.join(cells) +
            f" {s.get('occluded', 'n/a'):>8} {s.get('in_clusters', 'n/a'):>9}")
    for split in SPLITS:
        s = stats[split]
        lines += ['', f'{split}: objects per class and bucket '
                  f"(sqrt(area) percentiles: {s['sqrt_area_percentiles']}; "
                  f"objects per image {s['objects_per_image']})",
                  f"{'class':<12} {'all':>6} " +
                  ' '.join(f'{b:>7}' for b in BUCKETS)]
        for name, per in s['per_category_bucket'].items():
            lines.append(f"{name:<12} {s['per_category'][name]:>6} " +
                         ' '.join(f'{per[b]:>7}' for b in BUCKETS))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.stats_only:
        stats = read_statistics(args.out_dir)
    else:
        stats = make_multiscale_coco(
            args.out_dir, num_train=args.num_train, num_val=args.num_val,
            image_size=args.image_size, seed=args.seed)
    path = osp.join(args.out_dir, 'stats.json')
    dump_json(stats, path, indent=1)
    print(format_statistics(stats))
    print(f'statistics: {path}')
    return 0


if __name__ == '__main__':
    run_tool(main)
