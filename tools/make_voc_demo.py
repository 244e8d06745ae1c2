#!/usr/bin/env python3
"""Generate the synthetic VOC-format segmentation dataset (no downloads).

Example::

    python tools/make_voc_demo.py data/voc_demo --num-train 64 --num-val 16

writes data/voc_demo/VOC2012/{JPEGImages,SegmentationClass,ImageSets}, the
layout configs/elastic/demo/deeplabv3_ex50_voc_demo.py reads.
"""
import argparse

from msdet.datasets.synthetic_voc import make_voc_dataset, single_class_miou
from msdet.utils.cli import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='VOCdevkit directory to write')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--image-size', type=int, nargs=2, default=[160, 120],
                        metavar=('WIDTH', 'HEIGHT'))
    parser.add_argument('--num-classes', type=int, default=4,
                        help='foreground classes (VOC ids 1..N), 1..20')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=8)
    parser.add_argument('--boundary', type=int, default=1,
                        help='half-width of the 255 band on class edges')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = make_voc_dataset(
        args.out_dir, num_train=args.num_train, num_val=args.num_val,
        image_size=tuple(args.image_size), num_classes=args.num_classes,
        seed=args.seed, min_objects=args.min_objects,
        max_objects=args.max_objects, boundary=args.boundary)
    print(f"synthetic VOC dataset in {summary['data_root']} "
          f"(image_size={summary['image_size']}, seed={summary['seed']})")
    print('classes: ' + ', '.join(summary['classes']))
    for split in ('train', 'val'):
        s = summary[split]
        total = sum(s['class_pixels'])
        shares = ' '.join(f'{100 * p / total:.1f}%' for p in
                          s['class_pixels'])
        print(f"{split}: {s['num_images']} images, {s['ann_file']}; pixel "
              f'share per class: {shares}')
    print('single-class baseline mIoU on val: '
          f"{single_class_miou(summary['val']['class_pixels']):.2f}")
    return 0


if __name__ == '__main__':
    run_tool(main)
