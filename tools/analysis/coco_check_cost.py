"""What CheckedCocoDataset's checks cost on a COCO-sized dataset.

    python tools/analysis/coco_check_cost.py WORK_DIR [--images 118287]
        [--per-image 7.3]

Scales the embedded dataset up to COCO 2017 train's size: the synthetic
images (tools/make_coco_demo.py) are hard-linked ``--images`` times and
their annotations repeated to ``--per-image`` per image (COCO train: 118287
images, 860001 annotations, 7.3 per image), then times, in this process,
reading the JSON, the annotation checks, the image checks and mmdet's own
``CocoDataset`` loading (pycocotools index + mmdet's parsing), and prints
the checks' cost relative to mmdet's loading. The image files are in the
page cache (hard links of a few files): on a cold disk the image check is
bound by two small reads per file.
"""
import argparse
import json
import os
import os.path as osp
import time

from msdet.datasets.coco_checks import (check_coco, check_images,
                                        read_annotation_file)
from msdet.datasets.synthetic_coco import CLASSES, make_coco_dataset
from msdet.utils.cli import run_tool

SEED_IMAGES = 40


def scale_up(work_dir, images, per_image):
    """A COCO file of ``images`` images (links to the embedded dataset's)
    with ``per_image`` annotations each on average."""
    seed = make_coco_dataset(osp.join(work_dir, 'seed'), num_train=SEED_IMAGES,
                             num_val=1)['train']
    data = json.load(open(seed['ann_file']))
    by_image = {}
    for ann in data['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    img_dir = osp.join(work_dir, 'images')
    os.makedirs(img_dir, exist_ok=True)
    out_images, out_anns = [], []
    for k in range(images):
        src = data['images'][k % len(data['images'])]
        name = f'{k + 1:012d}.png'
        path = osp.join(img_dir, name)
        if not osp.exists(path):
            os.link(osp.join(seed['img_dir'], src['file_name']), path)
        out_images.append(dict(src, id=k + 1, file_name=name))
        anns = by_image[src['id']]
        want = int(round((k + 1) * per_image)) - int(round(k * per_image))
        for j in range(want):
            out_anns.append(dict(anns[j % len(anns)], id=len(out_anns) + 1,
                                 image_id=k + 1))
    ann_file = osp.join(work_dir, 'instances_large.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(data, images=out_images, annotations=out_anns), f)
    return ann_file, img_dir


def measure(ann_file, img_dir):
    """Seconds for each step, in this process."""
    from mmdet.datasets import CocoDataset
    times = {}
    start = time.perf_counter()
    data = read_annotation_file(ann_file)
    times['read JSON'] = time.perf_counter() - start
    start = time.perf_counter()
    check_coco(data, ann_file, CLASSES, need_masks=True)
    times['annotation checks'] = time.perf_counter() - start
    start = time.perf_counter()
    check_images(data, img_dir, ann_file)
    times['image checks'] = time.perf_counter() - start
    del data
    start = time.perf_counter()
    CocoDataset(ann_file=ann_file, data_prefix=dict(img=img_dir),
                metainfo=dict(classes=CLASSES), pipeline=[])
    times["mmdet's CocoDataset"] = time.perf_counter() - start
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir')
    p.add_argument('--images', type=int, default=118287)
    p.add_argument('--per-image', type=float, default=860001 / 118287)
    args = p.parse_args(argv)
    if args.images < 1 or args.per_image <= 0:
        raise ValueError(f'--images {args.images} --per-image '
                         f'{args.per_image}: allowed: >= 1 and > 0.')
    ann_file, img_dir = scale_up(args.work_dir, args.images, args.per_image)
    times = measure(ann_file, img_dir)
    base = times["mmdet's CocoDataset"]
    print(f'{args.images} images, {round(args.images * args.per_image)} '
          f'annotations ({osp.getsize(ann_file) / 1e6:.0f} MB)')
    for step, seconds in times.items():
        print(f'{step:<22} {seconds:7.2f} s  {100 * seconds / base:5.1f} % '
              "of mmdet's loading")
    return times


if __name__ == '__main__':
    run_tool(main)
