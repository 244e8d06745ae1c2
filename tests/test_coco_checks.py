"""CheckedCocoDataset: a broken COCO dataset is one clear error when the
dataset is built; what mmdet skips on purpose is counted in one log line;
a good dataset gives exactly mmdet's samples."""
import json
import logging
import shutil

import pytest
from mmdet.datasets import CocoDataset
from mmengine.logging import MMLogger

from msdet.datasets import CheckedCocoDataset
from msdet.datasets.coco_checks import image_problem
from msdet.datasets.synthetic_coco import CLASSES, make_coco_dataset

ANN = 'annotations/instances_val2017.json'
MASKS = [dict(type='LoadImageFromFile'),
         dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True)]


@pytest.fixture(scope='module')
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco_checks')
    make_coco_dataset(root, num_train=1, num_val=3)
    return root


def build(root, ann=ANN, classes=CLASSES, pipeline=(), cls=CheckedCocoDataset,
          **kwargs):
    return cls(data_root=str(root), ann_file=ann,
               data_prefix=dict(img='val2017/'),
               metainfo=dict(classes=classes), pipeline=list(pipeline),
               test_mode=True, **kwargs)


def broken_copy(good, tmp_path, edit):
    root = tmp_path / 'coco'
    shutil.copytree(good, root)
    path = root / ANN
    data = json.loads(path.read_text())
    text = edit(data)
    path.write_text(text if isinstance(text, str) else json.dumps(data))
    return root


def test_valid_dataset_gives_mmdets_samples(good):
    ds = build(good, pipeline=MASKS)
    ref = build(good, pipeline=MASKS, cls=CocoDataset)
    assert len(ds) == 3 and ds.metainfo['classes'] == CLASSES
    assert [ds.get_data_info(i) for i in range(3)] == \
        [ref.get_data_info(i) for i in range(3)]
    assert ds.cat_ids == ref.cat_ids and ds.cat_img_map == ref.cat_img_map
    assert ds[0]['gt_masks'].masks.shape[1:] == \
        (256, 256)


def set_(section, index, **fields):
    return lambda d: d[section][index].update(fields)


def pop(section, index, field):
    return lambda d: d[section][index].pop(field)


def rle(size, counts):
    return set_('annotations', 0, segmentation=dict(size=size,
                                                    counts=counts))


# (edit of the val annotation file, pipeline, error, message); each row of
# the README's table of bad COCO inputs
BROKEN = {
    'not JSON': (lambda d: '{"images": [', (), ValueError,
                 r"instances_val2017.json' is not JSON"),
    'no categories': (lambda d: d.pop('categories'), (), ValueError,
                      r"the 'categories' list is missing"),
    'field missing': (pop('annotations', 1, 'image_id'), (), ValueError,
                      r"annotations\[1\] \(id 2\) has no 'image_id'; "
                      r"allowed: each entry of 'annotations' needs"),
    'area missing': (pop('annotations', 0, 'area'), (), ValueError,
                     r"annotations\[0\] \(id 1\) has no 'area'"),
    'unknown category_id': (
        set_('annotations', 2, category_id=99), (), ValueError,
        r"annotations\[2\] \(id 3\) category_id=99; allowed: the id of an "
        r'entry of categories: \[1, 2, 3\]'),
    'unknown image_id': (
        set_('annotations', 1, image_id=42), (), ValueError,
        r"annotations\[1\] \(id 2\) image_id=42; allowed: the id of an "
        r'entry of images \(3 in the file\)'),
    'bbox of 3 numbers': (
        set_('annotations', 0, bbox=[1, 2, 3]), (), ValueError,
        r"annotations\[0\] \(id 1\) bbox=\[1, 2, 3\]; allowed: \[x, y, "
        r'width, height\], 4 finite numbers with width and height >= 0'),
    'bbox of negative size': (
        set_('annotations', 0, bbox=[10, 10, -5, 8]), (), ValueError,
        r'bbox=\[10, 10, -5, 8\]; allowed: \[x, y, width, height\]'),
    'negative area': (set_('annotations', 0, area=-3.0), (), ValueError,
                      r'area=-3.0; allowed: a finite number >= 0'),
    'polygon of 2 points': (
        set_('annotations', 0, segmentation=[[1, 1, 9, 9]]), (), ValueError,
        r"annotations\[0\] \(id 1\) segmentation=\[1, 1, 9, 9\]; allowed: "
        r'a list of polygons .* each at least 3 points'),
    'segmentation missing, masks loaded': (
        pop('annotations', 1, 'segmentation'), MASKS, ValueError,
        r"annotations\[1\] \(id 2\) has no 'segmentation'; allowed: "
        r'polygons or an RLE for every annotation, as the pipeline loads '
        r'masks'),
    'RLE of another size': (
        rle([64, 64], 'PPYo1'), (), ValueError,
        r'segmentation.size=\[64, 64\]; allowed: run-length encoding '
        r'dict\(size=\[height, width\], counts=...\) of its image, size '
        r'\[256, 256\]'),
    'RLE counts not covering the image': (
        rle([256, 256], [100, 20, 50]), (), ValueError,
        r'segmentation.counts=\[100, 20, 50\]; allowed: .* summing to '
        r'height x width = 65536'),
    'duplicate annotation id': (
        set_('annotations', 1, id=1), (), ValueError,
        r"annotations\[1\] id=1; allowed: a unique id \(annotations\[0\] "
        r'has it too\)'),
    'image size not an integer': (
        set_('images', 2, width='256'), (), ValueError,
        r"images\[2\] \(id 3\) width='256'; allowed: an integer > 0"),
    'image not on disk': (set_('images', 0, file_name='gone.png'), (),
                          FileNotFoundError, r'1 image\(s\) listed in .* are '
                          r"not on disk, e.g. '.*gone.png'"),
    'class without annotations': (
        lambda d: d.update(annotations=[a for a in d['annotations']
                                        if a['category_id'] != 2]),
        (), ValueError, r"classes \['square'\] have zero annotations"),
}


@pytest.mark.parametrize('case', list(BROKEN))
def test_broken_dataset_is_one_clear_error(good, tmp_path, case):
    edit, pipeline, exc, match = BROKEN[case]
    root = broken_copy(good, tmp_path, edit)
    with pytest.raises(exc, match=match):
        build(root, pipeline=pipeline)


def test_missing_segmentation_is_fine_without_masks(good, tmp_path):
    root = broken_copy(good, tmp_path, pop('annotations', 1, 'segmentation'))
    assert len(build(root)) == 3


def test_missing_file_and_unknown_class(good):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        build(good, ann='annotations/nope.json')
    with pytest.raises(ValueError, match=r"\['hexagon'\] of the config"):
        build(good, classes=CLASSES + ('hexagon', ))


def first_image(root):
    return sorted((root / 'val2017').iterdir())[0]


@pytest.mark.parametrize('damage, match', [
    (lambda b: b[:len(b) // 2], r"is a PNG cut short \(no IEND chunk\)"),
    (lambda b: b'<html>Not found</html>', r'is not an image \(not JPEG, '
     r"PNG, BMP, TIFF or WebP: starts with b'<html>No'\)"),
    (lambda b: b'', 'is an empty file'),
])
def test_undecodable_image_is_one_clear_error(good, tmp_path, damage, match):
    root = broken_copy(good, tmp_path, lambda d: None)
    path = first_image(root)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=r"image '.*000000000001.png' of .*"
                       r'\(images\[0\], id 1\) ' + match):
        build(root)


def test_image_of_another_size_is_one_clear_error(good, tmp_path):
    root = broken_copy(good, tmp_path,
                       set_('images', 0, width=100, height=90))
    with pytest.raises(ValueError, match=r'is 256 x 256 px, but .* '
                       r'images\[0\] \(id 1\) says width=100, height=90'):
        build(root)


def test_jpeg_header_and_end(tmp_path):
    from PIL import Image
    path = tmp_path / 'a.jpg'
    Image.new('RGB', (40, 30), (9, 99, 199)).save(path, quality=90)
    assert image_problem(path) == (None, (40, 30))
    data = path.read_bytes()
    path.write_bytes(data[:-200])
    assert image_problem(path)[0] == \
        'a JPEG cut short (no end-of-image marker)'


def test_what_mmdet_skips_is_one_log_line(good, tmp_path):
    def edit(d):
        d['annotations'][0]['iscrowd'] = 1
        d['annotations'][1]['bbox'][2] = 0.5  # under 1 px: skipped by mmdet
    root = broken_copy(good, tmp_path, edit)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        ds = build(root, pipeline=MASKS)
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records
             if 'CheckedCocoDataset' in r.getMessage()]
    assert len(lines) == 1
    assert 'skipped as mmdet does: 1 crowd (ignored regions), 1 boxes ' \
        'under 1 px' in lines[0]
    ref = build(root, pipeline=MASKS, cls=CocoDataset)
    assert [ds.get_data_info(i) for i in range(3)] == \
        [ref.get_data_info(i) for i in range(3)]


def test_cost_tool_scales_the_embedded_data_up(tmp_path, capsys):
    """tools/analysis/coco_check_cost.py (the cost stated in the README),
    at a small scale: the file it writes passes the checks and has the
    asked numbers of images and annotations."""
    from conftest import load_tool
    times = load_tool('analysis/coco_check_cost').main(
        [str(tmp_path), '--images', '60', '--per-image', '7.3'])
    data = json.loads((tmp_path / 'instances_large.json').read_text())
    assert len(data['images']) == 60 and len(data['annotations']) == 438
    assert set(times) == {'read JSON', 'annotation checks', 'image checks',
                          "mmdet's CocoDataset"}
    assert "% of mmdet's loading" in capsys.readouterr().out
