"""One clear error for a broken COCO dataset, raised when it is built.

mmdet's ``CocoDataset`` fails on a bad annotation file with a bare
``KeyError`` from pycocotools, on a missing image in a dataloader worker
mid-epoch, and not at all on a class without annotations or an annotation
without ``area`` (COCOeval then fails after training). msdet wraps its
``load_data_list`` so that each of these is reported up front, naming the
file, field, image or class.
"""
import json
import os.path as osp

from mmdet.datasets import CocoDataset

REQUIRED = {'images': ('id', 'file_name', 'width', 'height'),
            'annotations': ('id', 'image_id', 'category_id', 'bbox', 'area'),
            'categories': ('id', 'name')}


def describe_load_failure(ann_file):
    """Why pycocotools could not load ``ann_file``, or None if it can."""
    if not osp.isfile(ann_file):
        return FileNotFoundError(
            f'COCO annotation file {ann_file!r} not found (check data_root '
            'and ann_file in the config).')
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return ValueError(f'COCO annotation file {ann_file!r} is not JSON: '
                          f'{err}.')
    return check_fields(data, ann_file)


def check_fields(data, ann_file):
    """A ValueError naming the first missing COCO field, or None."""
    if not isinstance(data, dict):
        return ValueError(f'{ann_file!r}: a COCO file holds a JSON object '
                          f'with {sorted(REQUIRED)}, not {type(data).__name__}.')
    for section, fields in REQUIRED.items():
        if section not in data:
            return ValueError(f'{ann_file!r} has no {section!r} list; a COCO '
                              f'file needs {sorted(REQUIRED)}.')
        for i, entry in enumerate(data[section]):
            missing = [k for k in fields if k not in entry]
            if missing:
                return ValueError(
                    f'{ann_file!r}: {section}[{i}] lacks {missing}; each '
                    f'entry of {section!r} needs {list(fields)}.')
    return None


def check_loaded(dataset, coco, data_list):
    """Classes, annotations and image files of a loaded CocoDataset."""
    ann_file = dataset.ann_file
    problem = check_fields(coco.dataset, ann_file)
    if problem:
        raise problem
    names = {c['name']: cid for cid, c in coco.cats.items()}
    classes = dataset.metainfo['classes']
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ValueError(f'classes {unknown} of the config are not '
                         f'categories of {ann_file!r}; it has '
                         f'{sorted(names)[:20]}.')
    empty = [c for c in classes if not coco.catToImgs.get(names[c])]
    if empty:
        raise ValueError(f'classes {empty} have zero annotations in '
                         f'{ann_file!r}; remove them from metainfo.classes '
                         'or annotate them.')
    if dataset.backend_args is None:
        absent = [d['img_path'] for d in data_list
                  if not osp.isfile(d['img_path'])]
        if absent:
            raise FileNotFoundError(
                f'{len(absent)} image(s) listed in {ann_file!r} are not on '
                f'disk, e.g. {absent[0]!r} (check data_prefix).')


_load_data_list = CocoDataset.load_data_list


def _checked_load_data_list(self):
    kept = {}
    api = self.COCOAPI

    def keep(path):  # keeps the COCO object mmdet deletes after loading
        kept['coco'] = api(path)
        return kept['coco']

    self.COCOAPI = keep
    try:
        data_list = _load_data_list(self)
    except Exception as err:
        problem = describe_load_failure(self.ann_file)
        if problem is None:
            raise
        raise problem from err
    finally:
        del self.COCOAPI
    check_loaded(self, kept['coco'], data_list)
    return data_list


CocoDataset.load_data_list = _checked_load_data_list
