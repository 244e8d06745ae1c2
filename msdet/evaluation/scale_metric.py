"""COCO AP by object size, at the original and at the tested resolution."""
import contextlib
import io
import os.path as osp
import tempfile

from mmdet.evaluation import CocoMetric
from mmengine.fileio import load
from mmengine.registry import METRICS
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .buckets import BUCKETS, area_bucket

STAT_NAMES = ('AP', 'AP50', 'AP75', 'AP_S', 'AP_M', 'AP_L')


def coco_stats(coco_gt, coco_dt, iou_type, cat_ids, img_ids):
    """The first six COCOeval stats (AP, AP50, AP75, AP_S, AP_M, AP_L), with
    ``None`` where COCOeval reports -1 (no ground truth in that bucket)."""
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    ev.params.catIds, ev.params.imgIds = list(cat_ids), list(img_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (None if v < 0 else float(v))
            for k, v in zip(STAT_NAMES, ev.stats[:6])}


def rescaled_coco(coco, scale):
    """A copy of ``coco`` whose annotation areas are multiplied by the
    per-image factor ``scale[image_id]``."""
    data = dict(coco.dataset)
    data['annotations'] = [
        dict(a, area=a['area'] * scale[a['image_id']])
        for a in coco.dataset['annotations']
    ]
    out = COCO()
    out.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        out.createIndex()
    return out


@METRICS.register_module()
class ScaleAwareCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` plus what moves when the test scale changes.

    The ``coco/*`` numbers are CocoMetric's own, unchanged: COCO size buckets
    by the annotation's area at the original resolution. Added:

    - ``{bbox,segm}_AP_{S,M,L}_resized``: the same AP with every ground truth
      and detection bucketed by its area after test-time resizing (area times
      the image's ``scale_factor`` product), i.e. the size the network saw;
    - ``gt_{small,medium,large}`` and ``gt_{...}_resized``: non-crowd ground
      truth objects per bucket on the evaluated images.

    An AP whose bucket has no ground truth is left out (reported as "n/a").
    """

    def process(self, data_batch, data_samples):
        start = len(self.results)
        super().process(data_batch, data_samples)
        for (gt, _), sample in zip(self.results[start:], data_samples):
            sx, sy = sample.get('scale_factor', (1.0, 1.0))
            gt['area_scale'] = float(sx * sy)

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        gts, preds = zip(*results)
        scale = {g['img_id']: g['area_scale'] for g in gts}
        img_ids = [i for i in self.img_ids if i in scale]
        coco_gt = self._coco_api
        metrics.update(self._gt_counts(coco_gt, img_ids, scale))
        gt_resized = rescaled_coco(coco_gt, scale)
        with tempfile.TemporaryDirectory() as tmp:
            files = self.results2json(preds, osp.join(tmp, 'results'))
            for iou_type in (m for m in self.metrics if m in files):
                dets = load(files[iou_type])
                if not dets:
                    continue
                if iou_type == 'segm':  # mask area, as CocoMetric does
                    for d in dets:
                        d.pop('bbox')
                with contextlib.redirect_stdout(io.StringIO()):
                    coco_dt = coco_gt.loadRes(dets)
                stats = coco_stats(gt_resized, rescaled_coco(coco_dt, scale),
                                   iou_type, self.cat_ids, img_ids)
                for name in ('AP_S', 'AP_M', 'AP_L'):
                    if stats[name] is not None:
                        metrics[f'{iou_type}_{name}_resized'] = stats[name]
        return metrics

    def _gt_counts(self, coco_gt, img_ids, scale):
        counts = {f'gt_{b}{s}': 0 for s in ('', '_resized') for b in BUCKETS}
        anns = coco_gt.loadAnns(
            coco_gt.getAnnIds(imgIds=img_ids, catIds=self.cat_ids))
        for a in anns:
            if a.get('iscrowd', 0):
                continue
            counts[f"gt_{area_bucket(a['area'])}"] += 1
            resized = a['area'] * scale[a['image_id']]
            counts[f'gt_{area_bucket(resized)}_resized'] += 1
        return counts
