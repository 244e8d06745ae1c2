"""A broken COCO dataset is one clear error when the dataset is built."""
import json
import shutil

import pytest
from mmdet.datasets import CocoDataset

from msdet.datasets.synthetic_coco import CLASSES, make_coco_dataset


@pytest.fixture(scope='module')
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco_checks')
    make_coco_dataset(root, num_train=2, num_val=2)
    return root


def build(root, ann='annotations/instances_val2017.json', classes=CLASSES):
    return CocoDataset(
        data_root=str(root), ann_file=ann, data_prefix=dict(img='val2017/'),
        metainfo=dict(classes=classes), pipeline=[], test_mode=True)


def broken_copy(good, tmp_path, edit):
    root = tmp_path / 'coco'
    shutil.copytree(good, root)
    path = root / 'annotations/instances_val2017.json'
    data = json.loads(path.read_text())
    text = edit(data)
    path.write_text(text if isinstance(text, str) else json.dumps(data))
    return root


def test_valid_dataset_loads(good):
    ds = build(good)
    assert len(ds) == 2 and ds.metainfo['classes'] == CLASSES


@pytest.mark.parametrize('edit,exc,match', [
    (lambda d: '{"images": [', ValueError, 'is not JSON'),
    (lambda d: d.pop('categories'), ValueError, "no 'categories'"),
    (lambda d: d['annotations'][1].pop('image_id'), ValueError,
     r"annotations\[1\] lacks \['image_id'\]"),
    (lambda d: d['annotations'][0].pop('area'), ValueError,
     r"annotations\[0\] lacks \['area'\]"),
    (lambda d: d['images'][0].update(file_name='gone.png'),
     FileNotFoundError, 'gone.png'),
    (lambda d: d.update(annotations=[a for a in d['annotations']
                                     if a['category_id'] != 2]),
     ValueError, r"\['square'\] have zero annotations"),
])
def test_broken_dataset_is_one_clear_error(good, tmp_path, edit, exc, match):
    root = broken_copy(good, tmp_path, edit)
    with pytest.raises(exc, match=match):
        build(root)


def test_missing_file_and_unknown_class(good):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        build(good, ann='annotations/nope.json')
    with pytest.raises(ValueError, match=r"\['hexagon'\] of the config"):
        build(good, classes=CLASSES + ('hexagon', ))
