"""mmdet's COCO dataset, checked when it is built."""
from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmengine.fileio import get_local_path
from mmengine.logging import print_log
from mmengine.registry import DATASETS

from .coco_checks import check_coco, check_images, read_annotation_file


class _ParsedCOCO(COCO):
    """mmdet's COCO API over an already parsed annotation dict."""

    def __init__(self, data):
        super().__init__()
        self.dataset = data
        self.createIndex()
        self.img_ann_map = self.imgToAnns
        self.cat_img_map = self.catToImgs


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` (same arguments, same samples) that checks
    its annotation file and images when it is built, so that a broken
    dataset is one clear error before training instead of a ``KeyError``
    from pycocotools, a crash at iteration N or in COCOeval after the epoch,
    or silently less data.

    Refused, each with one error naming the file, the entry (index and id),
    the field and what is allowed (:func:`~msdet.datasets.coco_checks.
    check_coco`): a missing or non-JSON file; missing sections or fields,
    duplicate ids, ids of the wrong type; an annotation whose ``image_id``
    or ``category_id`` is not in the file; a ``bbox`` that is not 4 numbers
    or has a negative size; a negative ``area``; polygons of fewer than 3
    points; an RLE whose size is not its image's; no ``segmentation`` on an
    annotation that is trained on when the pipeline loads masks; config
    classes the file lacks or that have no annotation. Images (local files
    only; with ``backend_args`` they are not checked): every listed file must
    exist, be a complete JPEG / PNG of the listed size (header and end
    marker read, not decoded; BMP / TIFF / WebP by signature), see
    :func:`~msdet.datasets.coco_checks.image_problem`.

    What mmdet skips on purpose stays skipped, with one log line counting
    it: crowd annotations (ignored regions), boxes under 1 px, of area 0 or
    outside their image, annotations of categories not in ``classes``.

    Cost: the file is parsed once (the checks work on the JSON mmdet then
    indexes, not a second read). On a COCO-2017-train-sized file (118,287
    images, 860,001 polygon annotations: the embedded dataset scaled up by
    ``tools/analysis/coco_check_cost.py``), one process on a shared 2-core
    machine: the annotation checks took 6.4 s and the image checks 2.2 s
    (files in the page cache; two small reads per file, 8 threads, so a
    cold disk makes it I/O bound), on top of the 45 s of mmdet's own
    ``CocoDataset`` loading: +19 %.
    """

    def load_data_list(self):
        with get_local_path(self.ann_file,
                            backend_args=self.backend_args) as local_path:
            data = read_annotation_file(local_path)
        need_masks = any(getattr(t, 'with_mask', False)
                         for t in self.pipeline.transforms)
        skipped = check_coco(data, self.ann_file, self.metainfo['classes'],
                             need_masks=need_masks, test_mode=self.test_mode)
        if self.backend_args is None:
            check_images(data, self.data_prefix.get('img', ''),
                         self.ann_file)
        self._parsed = data
        try:
            data_list = super().load_data_list()
        finally:
            del self._parsed
        print_log(
            f'{type(self).__name__}: {self.ann_file} checked '
            f'({len(data["images"])} images, '
            f'{len(data.get("annotations", []))} annotations); skipped as '
            f'mmdet does: {skipped["crowd"]} crowd (ignored regions), '
            f'{skipped["tiny"]} boxes under 1 px / of area 0 / outside '
            f'the image, {skipped["other_classes"]} of other categories, '
            f'{skipped["ignored"]} marked ignore.', logger='current')
        return data_list

    def COCOAPI(self, path):
        """mmdet's loader calls ``self.COCOAPI(path)``: the JSON parsed and
        checked above, indexed without reading ``path`` again."""
        return _ParsedCOCO(self._parsed)
