"""The multi-scale synthetic COCO dataset: statistics, determinism, masks."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from msdet.datasets.multiscale_coco import (CLASSES, MAX_SIZE_RATIO,
                                            MIN_SIZE, dataset_statistics,
                                            make_multiscale_coco,
                                            mask_polygons)
from msdet.evaluation.buckets import BUCKETS, area_bucket
from conftest import load_tool

SPLITS = ('train', 'val')
KW = dict(num_train=6, num_val=3, image_size=192, seed=3)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('ms_a')
    return root, make_multiscale_coco(root, **KW)


@pytest.fixture(scope='module')
def loaded(dataset):
    root, _ = dataset
    return {s: json.loads((root / 'annotations' /
                           f'instances_{s}2017.json').read_text())
            for s in SPLITS}


def _rasterize(polygons, h, w):
    rles = mask_utils.frPyObjects(polygons, h, w)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def test_statistics_recounted_from_the_files(dataset, loaded):
    _, summary = dataset
    for split in SPLITS:
        stats, coco = summary[split], loaded[split]
        anns = coco['annotations']
        assert stats['num_images'] == len(coco['images']) == \
            KW[f'num_{split}']
        assert stats['num_objects'] == len(anns)
        buckets = dict.fromkeys(BUCKETS, 0)
        per_cat = {c: dict.fromkeys(BUCKETS, 0) for c in CLASSES}
        for a in anns:
            buckets[area_bucket(a['area'])] += 1
            per_cat[CLASSES[a['category_id'] - 1]][area_bucket(a['area'])] \
                += 1
        assert stats['buckets'] == buckets
        assert stats['per_category_bucket'] == per_cat
        assert stats['per_category'] == {c: sum(v.values())
                                         for c, v in per_cat.items()}
        assert sum(stats['bucket_fractions'].values()) == pytest.approx(
            1, abs=2e-3)
        per_image = [sum(a['image_id'] == im['id'] for a in anns)
                     for im in coco['images']]
        assert stats['objects_per_image'] == dict(
            mean=round(float(np.mean(per_image)), 2), min=min(per_image),
            max=max(per_image))
        assert stats['occluded'] == sum(a['visible_fraction'] < 1
                                        for a in anns)
        assert stats['in_clusters'] == sum(a['cluster'] for a in anns)


def test_scale_spread_clusters_and_occlusion(loaded):
    for split in SPLITS:
        anns = loaded[split]['annotations']
        sides = [math.sqrt(a['area']) for a in anns]
        assert {area_bucket(a['area']) for a in anns} == set(BUCKETS)
        assert min(sides) < 1.5 * MIN_SIZE  # a few pixels
        assert max(sides) > 0.4 * KW['image_size']  # most of the image
        assert max(sides) <= MAX_SIZE_RATIO * KW['image_size']
        # small objects dominate, many objects per image, some clustered
        # and some occluded (never below half visible)
        n = len(anns)
        assert sum(area_bucket(a['area']) == 'small' for a in anns) > n / 2
        assert n >= 6 * KW[f'num_{split}']
        assert any(a['cluster'] for a in anns)
        assert any(a['visible_fraction'] < 1 for a in anns)
        assert min(a['visible_fraction'] for a in anns) >= 0.5
    cats = {a['category_id'] for a in loaded['train']['annotations']}
    assert cats == set(range(1, len(CLASSES) + 1))


def test_masks_exact_disjoint_and_consistent(dataset, loaded):
    root, _ = dataset
    coco = COCO(str(root / 'annotations/instances_val2017.json'))
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        union = np.zeros((info['height'], info['width']), dtype=np.int32)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            mask = coco.annToMask(ann).astype(bool)
            union += mask
            # polygons follow pixel edges: area and bbox are exact
            assert mask.sum() == ann['area']
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            assert [x, y, x + w, y + h] == [xs.min(), ys.min(),
                                            xs.max() + 1, ys.max() + 1]
        assert union.max() == 1  # visible masks never overlap


def test_mask_polygons_round_trip_through_pycocotools():
    rng = np.random.default_rng(0)
    holes_seen = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        polygons, holes = mask_polygons(mask)
        if holes:
            holes_seen += 1
            continue
        if not mask.any():
            assert polygons == []
            continue
        assert np.array_equal(_rasterize(polygons, h, w), mask)
    assert holes_seen  # the random masks did include holes
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    assert mask_polygons(ring)[1] == 1
    # two pixels touching at a corner: two polygons, offset applied
    diag = np.array([[1, 0], [0, 1]], bool)
    polys, holes = mask_polygons(diag, offset=(10, 20))
    corners = sorted(sorted(zip(p[0::2], p[1::2])) for p in polys)
    assert holes == 0 and corners == [
        [(10, 20), (10, 21), (11, 20), (11, 21)],
        [(11, 21), (11, 22), (12, 21), (12, 22)]]


def test_deterministic_from_the_seed(dataset, tmp_path):
    root, summary = dataset
    again = make_multiscale_coco(tmp_path / 'b', **KW)
    first, second = _files(root), _files(tmp_path / 'b')
    assert sorted(first) == sorted(second)
    assert all(first[k] == second[k] for k in first)
    assert {s: again[s]['buckets'] for s in SPLITS} == {
        s: summary[s]['buckets'] for s in SPLITS}
    other = make_multiscale_coco(tmp_path / 'c', **dict(KW, seed=4,
                                                        num_train=2))
    assert (Path(other['train']['ann_file']).read_bytes() !=
            first['annotations/instances_train2017.json'])
    make_multiscale_coco(tmp_path / 'd', **dict(KW, num_train=2, num_val=1))
    for i in (1, 2):
        name = f'train2017/{i:012d}.png'
        assert (tmp_path / 'd' / name).read_bytes() == first[name]


def test_tool_prints_and_writes_statistics(dataset, tmp_path, capsys):
    root, summary = dataset
    tool = load_tool('make_coco_multiscale')
    assert tool.main([str(root), '--stats-only']) == 0
    out = capsys.readouterr().out
    stats = json.loads((root / 'stats.json').read_text())
    for split in SPLITS:
        expected = {k: v for k, v in summary[split].items()
                    if k not in ('img_dir', 'skipped_objects')}
        assert stats[split] == json.loads(json.dumps(expected))
        s = summary[split]
        assert (f"{split:<6} {s['num_images']:>6} {s['num_objects']:>7}"
                in out)
    with pytest.raises(ValueError, match='image_size'):
        tool.main([str(tmp_path / 'x'), '--image-size', '64'])
    with pytest.raises(ValueError, match='not found'):
        tool.main([str(tmp_path / 'y'), '--stats-only'])


def test_statistics_of_any_coco_file():
    coco = dict(images=[dict(id=1), dict(id=2)],
                categories=[dict(id=7, name='a')],
                annotations=[dict(image_id=1, category_id=7, area=100.0),
                             dict(image_id=1, category_id=7, area=5000.0),
                             dict(image_id=1, category_id=7, area=1e5,
                                  iscrowd=1)])
    stats = dataset_statistics(coco)
    assert stats['buckets'] == dict(small=1, medium=1, large=0)
    assert stats['objects_per_image'] == dict(mean=1.0, min=0, max=2)
    assert 'occluded' not in stats


@pytest.mark.parametrize('kwargs, bad', [
    (dict(num_train=0), '0'),
    (dict(num_val=1.5), '1.5'),
    (dict(image_size=100), '100'),
    (dict(seed=-1), '-1'),
])
def test_invalid_arguments(tmp_path, kwargs, bad):
    name = next(iter(kwargs))
    with pytest.raises(ValueError) as err:
        make_multiscale_coco(tmp_path / 'x', **kwargs)
    assert name in str(err.value) and bad in str(err.value)
    assert not (tmp_path / 'x').exists()
