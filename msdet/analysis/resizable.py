"""Resizable-NAS lookup tables and Resizable-Adapt targets and oracle
(Resizable paper 3.3 and 3.5): the pieces shared by
``tools/analysis/resizable_nas.py``, ``resizable_adapt_targets.py`` and
``resizable_adapt_report.py``.

Per-image score (Resizable-Adapt targets, oracle): the image's COCO box AP,
AP@[.5:.95] with at most 100 detections over all object sizes, averaged
over the categories that have ground truth in the image (pycocotools'
``COCOeval`` restricted to the one image, i.e. what mmdet's ``CocoMetric``
reports for a test set of that one image). It is the detection counterpart
of the paper's per-sample accuracy ("take one with the highest accuracy as
the target") and, unlike a per-image training loss, deterministic (the
detector's losses sample anchors and RoIs at random) and the quantity the
evaluation measures. An image without non-crowd ground truth has no score
(``None``): every candidate ties on it.

Best candidate of an image: the highest score; ties (frequent: several
configurations find every object of an easy image) go to the cheapest
candidate (fewest whole-model GFLOPs), then to the first listed.
"""
import contextlib
import copy
import io
import time

import torch
from pycocotools.coco import COCO

from ..evaluation.scale_metric import coco_stats
from ..models.backbones.resizable_resnet import check_stage_factors
from ..ops.switchable import set_subnet
from ..utils.config import parse_tool_args


def one_process_args(parser, argv, tool):
    """``parse_tool_args`` for a tool that runs every candidate on every
    image in one process: a ``--launcher`` is refused."""
    args = parse_tool_args(parser, argv)
    if args.launcher != 'none':
        raise ValueError(f'--launcher {args.launcher}: {tool} runs in one '
                         'process (every candidate on every image).')
    return args


def model_space(detector_cfg):
    """``{'resize1': [...], ...}`` of a detector config's ResizableResNet,
    read from the config (no model built)."""
    bb = detector_cfg.backbone
    if str(bb.get('type', '')).split('.')[-1] != 'ResizableResNet':
        raise ValueError(f"the config's backbone is {bb.get('type')!r}; "
                         'needs ResizableResNet.')
    lists = check_stage_factors(bb.get('resize_factors'),
                                bb.get('num_stages', 4), 'ResizableResNet')
    return {f'resize{i + 1}': f for i, f in enumerate(lists)}


def parse_configurations(texts, space):
    """``['0.5,1,1,1', ...]`` -> settings dicts, checked against ``space``."""
    keys = list(space)
    out = []
    for text in texts:
        try:
            values = [float(v) for v in text.split(',')]
        except ValueError:
            values = None
        if values is None or len(values) != len(keys):
            raise ValueError(f'configuration {text!r}: give {len(keys)} '
                             'comma-separated factors, stage 1 first, e.g. '
                             + ','.join(str(space[k][-1]) for k in keys))
        for key, value in zip(keys, values):
            if not any(abs(value - f) < 1e-9 for f in space[key]):
                raise ValueError(f'configuration {text!r}: {key}={value} is '
                                 f'not one of {space[key]}.')
        out.append(dict(zip(keys, values)))
    return out


def parse_subnet_name(text):
    """``"resize1=0.5, resize2=1.0"`` (a lookup-table row's ``subnet``) ->
    ``{'resize1': 0.5, 'resize2': 1.0}``."""
    out = {}
    for part in str(text).split(','):
        key, sep, value = part.strip().partition('=')
        try:
            out[key] = float(value)
        except ValueError:
            sep = ''
        if not sep or not key:
            raise ValueError(f'sub-network {text!r}: expected '
                             '"resize1=0.5, resize2=1.0, ...".')
    return out


def coco_detections(img_id, pred, cat_ids):
    """COCO result entries (``bbox`` as x, y, w, h) of one image's
    ``pred = dict(bboxes (x1, y1, x2, y2), scores, labels)``, as mmdet's
    ``CocoMetric`` writes them."""
    out = []
    for box, score, label in zip(pred['bboxes'].tolist(),
                                 pred['scores'].tolist(),
                                 pred['labels'].tolist()):
        x1, y1, x2, y2 = box
        out.append(dict(image_id=img_id, bbox=[x1, y1, x2 - x1, y2 - y1],
                        score=float(score), category_id=cat_ids[label]))
    return out


class ImageAP:
    """The per-image score (module docstring) against ``coco``'s ground
    truth; ``cat_ids[label]`` is the COCO category of a label."""

    def __init__(self, coco, cat_ids):
        self.coco, self.cat_ids = coco, list(cat_ids)

    def __call__(self, img_id, pred):
        anns = [a for a in self.coco.imgToAnns.get(img_id, [])
                if a['category_id'] in self.cat_ids]
        if all(a.get('iscrowd', 0) for a in anns):
            return None
        dets = coco_detections(img_id, pred, self.cat_ids)
        if not dets:
            return 0.0
        gt = COCO()
        gt.dataset = dict(images=[self.coco.imgs[img_id]],
                          annotations=copy.deepcopy(anns),
                          categories=self.coco.dataset['categories'])
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            dt = gt.loadRes(dets)
        return coco_stats(gt, dt, 'bbox', self.cat_ids, [img_id])['AP']


def best_candidates(scores, costs, allowed=None):
    """Per image, the index of its best candidate (module docstring) among
    ``allowed`` (default: all). ``scores[i][k]``: image i, candidate k."""
    allowed = list(range(len(costs))) if allowed is None else list(allowed)

    def key(row, k):
        score = row[k]
        return (float('-inf') if score is None else score, -costs[k], -k)

    return [max(allowed, key=lambda k: key(row, k)) for row in scores]


def cheapest_first(candidates, costs):
    """Candidates and their ``dict(backbone=, model=)`` GFLOPs, sorted by
    whole-model GFLOPs (stable)."""
    order = sorted(range(len(candidates)), key=lambda k: costs[k]['model'])
    return [candidates[k] for k in order], [costs[k] for k in order]


@torch.no_grad()
def run_candidates(detector, loader, candidates, score, keep_outputs=False):
    """Every candidate configuration of ``detector`` on every image of
    ``loader`` (give batches of one image: then an image's detections do
    not depend on the images padded into its batch).

    Returns ``dict(img_ids, scores, outputs, latency_ms)``: ``scores[i][k]``
    is ``score(img_id, pred)`` of image i under candidate k;
    ``outputs[k][i]`` (with ``keep_outputs``) the prediction as mmdet's
    ``CocoMetric`` reads it (``img_id``, ``ori_shape``, ``scale_factor``,
    ``pred_instances`` with ``bboxes`` / ``scores`` / ``labels``);
    ``latency_ms[k]`` the mean time per image of ``detector.predict``.
    """
    detector.eval()
    n = len(candidates)
    img_ids, scores, seconds, images = [], [], [0.0] * n, 0
    outputs = [[] for _ in range(n)] if keep_outputs else None
    for batch in loader:
        data = detector.data_preprocessor(batch, False)
        rows = [[None] * n for _ in data['data_samples']]
        for k, settings in enumerate(candidates):
            set_subnet(detector, **settings)
            samples = [s.clone() for s in data['data_samples']]
            start = time.perf_counter()
            detector.predict(data['inputs'], samples)
            seconds[k] += time.perf_counter() - start
            for row, sample in zip(rows, samples):
                pred = sample.pred_instances
                out = dict(img_id=sample.img_id, ori_shape=sample.ori_shape,
                           scale_factor=sample.get('scale_factor',
                                                   (1.0, 1.0)),
                           pred_instances=dict(
                               bboxes=pred.bboxes.cpu(),
                               scores=pred.scores.cpu(),
                               labels=pred.labels.cpu()))
                row[k] = score(sample.img_id, out['pred_instances'])
                if keep_outputs:
                    outputs[k].append(out)
        img_ids += [s.img_id for s in data['data_samples']]
        scores += rows
        images += len(rows)
    return dict(img_ids=img_ids, scores=scores, outputs=outputs,
                latency_ms=[1000 * s / max(images, 1) for s in seconds])
