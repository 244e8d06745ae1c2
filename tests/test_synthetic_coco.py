"""Tests for the deterministic synthetic COCO dataset generator."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from msdet.datasets.synthetic_coco import (CLASS_COLORS, CLASSES,
                                           make_coco_dataset)

SPLITS = ('train', 'val')
SMALL, LARGE = 32 ** 2, 96 ** 2
KW = dict(num_train=12, num_val=6, seed=3)
COLOR_TOL = 32  # colour jitter (18) + pixel noise (8) + slack


def _bucket(area):
    return 'small' if area < SMALL else 'large' if area > LARGE else 'medium'


def _shoelace(flat):
    xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth_a')
    return root, make_coco_dataset(root, **KW)


@pytest.fixture(scope='module')
def loaded(dataset):
    root, _ = dataset
    return {s: json.loads((root / 'annotations' /
                           f'instances_{s}2017.json').read_text())
            for s in SPLITS}


def test_layout_and_summary(dataset, loaded):
    root, summary = dataset
    for split in SPLITS:
        stats, coco = summary[split], loaded[split]
        assert Path(stats['ann_file']) == (
            root / 'annotations' / f'instances_{split}2017.json')
        assert Path(stats['img_dir']) == root / f'{split}2017'
        assert stats['num_images'] == len(coco['images']) == KW[
            f'num_{split}']
        assert stats['num_annotations'] == len(coco['annotations'])
        buckets = {'small': 0, 'medium': 0, 'large': 0}
        for ann in coco['annotations']:
            buckets[_bucket(ann['area'])] += 1
        assert stats['buckets'] == buckets
        assert stats['skipped_objects'] == 0
    # No stray temp files are left behind by the atomic writes.
    assert not [p for p in root.rglob('*.tmp')]


def test_deterministic(dataset, tmp_path):
    root, summary = dataset
    again = make_coco_dataset(tmp_path / 'b', **KW)
    first, second = _files(root), _files(tmp_path / 'b')
    assert sorted(first) == sorted(second)
    assert any(name.endswith('.png') for name in first)
    for name in first:
        assert first[name] == second[name], name
    assert {s: again[s]['buckets'] for s in SPLITS} == {
        s: summary[s]['buckets'] for s in SPLITS}
    # Another seed gives other data; image i does not depend on the count.
    other = make_coco_dataset(tmp_path / 'c', num_train=3, num_val=1,
                              seed=KW['seed'] + 1)
    assert (Path(other['train']['ann_file']).read_bytes() !=
            first['annotations/instances_train2017.json'])
    fewer = make_coco_dataset(tmp_path / 'd', num_train=3, num_val=1,
                              seed=KW['seed'])
    for i in range(1, 4):
        name = f'train2017/{i:012d}.png'
        assert (Path(fewer['out_dir']) / name).read_bytes() == first[name]


def test_buckets_and_categories_in_both_splits(loaded):
    for split in SPLITS:
        coco = loaded[split]
        buckets = {_bucket(a['area']) for a in coco['annotations']}
        assert buckets == {'small', 'medium', 'large'}, split
        cats = {a['category_id'] for a in coco['annotations']}
        assert cats == set(range(1, len(CLASSES) + 1)), split
        per_image = {}
        for a in coco['annotations']:
            per_image.setdefault(a['image_id'], []).append(_bucket(a['area']))
        assert len(per_image) == len(coco['images'])  # no empty image
        assert all('small' in b for b in per_image.values())
        n_large = sum('large' in b for b in per_image.values())
        assert n_large * 3 >= len(coco['images'])


def test_coco_fields(loaded):
    for split in SPLITS:
        coco = loaded[split]
        assert coco['categories'] == [
            {'id': i + 1, 'name': n, 'supercategory': 'shape'}
            for i, n in enumerate(CLASSES)]
        img_ids = [im['id'] for im in coco['images']]
        assert img_ids == list(range(1, len(img_ids) + 1))
        ann_ids = [a['id'] for a in coco['annotations']]
        assert ann_ids == list(range(1, len(ann_ids) + 1))
        assert len({im['file_name'] for im in coco['images']}) == len(img_ids)
        for a in coco['annotations']:
            assert a['image_id'] in img_ids
            assert a['iscrowd'] == 0
            assert len(a['segmentation']) == 1
            poly = a['segmentation'][0]
            assert len(poly) >= 6 and len(poly) % 2 == 0
            assert a['area'] == pytest.approx(_shoelace(poly), abs=0.01)
            xs, ys = poly[0::2], poly[1::2]
            x, y, w, h = a['bbox']
            assert [x, y, x + w, y + h] == pytest.approx(
                [min(xs), min(ys), max(xs), max(ys)], abs=0.01)
        # Small objects stay learnable (>= ~10 px across).
        assert min(min(a['bbox'][2:]) for a in coco['annotations']) >= 10


def test_images_match_declared_size(dataset, loaded):
    root, _ = dataset
    for split in SPLITS:
        for info in loaded[split]['images']:
            with Image.open(root / f'{split}2017' / info['file_name']) as im:
                assert im.mode == 'RGB'
                assert im.size == (info['width'], info['height']) == (256,
                                                                      256)


def test_masks_match_rendered_pixels(dataset):
    root, _ = dataset
    for split in SPLITS:
        coco = COCO(str(root / 'annotations' / f'instances_{split}2017.json'))
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            img = np.asarray(Image.open(root / f'{split}2017' /
                                        info['file_name'])).astype(int)
            union = np.zeros(img.shape[:2], dtype=np.int32)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
                mask = coco.annToMask(ann).astype(bool)
                union += mask
                # Pixels of the category colour in a box around the object.
                color = CLASS_COLORS[CLASSES[ann['category_id'] - 1]]
                x, y, w, h = ann['bbox']
                x0, y0 = max(int(x) - 3, 0), max(int(y) - 3, 0)
                x1, y1 = int(np.ceil(x + w)) + 3, int(np.ceil(y + h)) + 3
                drawn = np.zeros_like(mask)
                drawn[y0:y1, x0:x1] = np.all(
                    np.abs(img[y0:y1, x0:x1] - color) <= COLOR_TOL, axis=2)
                iou = (mask & drawn).sum() / (mask | drawn).sum()
                assert iou > 0.9, (split, ann['id'], iou)
                ys, xs = np.nonzero(mask)
                extent = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                assert np.allclose(extent, [x, y, x + w, y + h], atol=1.0)
            assert union.max() == 1, (split, img_id)  # no overlapping masks


def test_image_size_128_still_has_large_objects(tmp_path):
    summary = make_coco_dataset(tmp_path, num_train=4, num_val=2,
                                image_size=128, seed=1)
    for split in SPLITS:
        assert summary[split]['buckets']['large'] >= 1
        with Image.open(Path(summary[split]['img_dir']) /
                        '000000000001.png') as im:
            assert im.size == (128, 128)


@pytest.mark.parametrize('kwargs, bad', [
    (dict(num_train=0), '0'),
    (dict(num_val=-2), '-2'),
    (dict(num_train=2.5), '2.5'),
    (dict(image_size=100), '100'),
    (dict(min_objects=0), '0'),
    (dict(min_objects=4, max_objects=3), '4'),
    (dict(seed=-1), '-1'),
])
def test_invalid_arguments(tmp_path, kwargs, bad):
    name = next(iter(kwargs))
    with pytest.raises(ValueError) as err:
        make_coco_dataset(tmp_path / 'x', **kwargs)
    assert name in str(err.value) and bad in str(err.value)
    assert not (tmp_path / 'x').exists()  # validated before writing
