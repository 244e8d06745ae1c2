#!/usr/bin/env python3
"""Generate the synthetic COCO-format shapes dataset (no downloads).

Example::

    python tools/make_coco_demo.py data/coco_demo --num-train 160 --num-val 40
"""
import argparse

from msdet.datasets.synthetic_coco import BUCKETS, make_coco_dataset
from msdet.utils.cli import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output directory (COCO 2017 layout)')
    parser.add_argument('--num-train', type=int, default=160)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--image-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=5)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = make_coco_dataset(
        args.out_dir, num_train=args.num_train, num_val=args.num_val,
        image_size=args.image_size, seed=args.seed,
        min_objects=args.min_objects, max_objects=args.max_objects)
    print(f"synthetic COCO dataset in {summary['out_dir']} "
          f"(image_size={summary['image_size']}, seed={summary['seed']}, "
          f"classes={', '.join(summary['classes'])})")
    print(f"{'split':<6} {'images':>6} {'annots':>6} " +
          ' '.join(f'{b:>6}' for b in BUCKETS))
    for split in ('train', 'val'):
        s = summary[split]
        print(f"{split:<6} {s['num_images']:>6} {s['num_annotations']:>6} " +
              ' '.join(f"{s['buckets'][b]:>6}" for b in BUCKETS))
    for split in ('train', 'val'):
        s = summary[split]
        print(f"{split}: {s['ann_file']}  images: {s['img_dir']}")
        if s['skipped_objects']:
            print(f"  note: {s['skipped_objects']} objects did not fit and "
                  'were skipped')
    return 0


if __name__ == '__main__':
    run_tool(main)
