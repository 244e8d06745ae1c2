"""mmdet 1.x's inference conventions as mmdet 3 components, to evaluate
detectors trained in mmdet 1.x (the PSConv release's model zoo, an mmdet
fork of mid-2019) as they were evaluated there.

mmdet 1.x counts a box ``(x1, y1, x2, y2)`` as ``x2 - x1 + 1`` pixels wide
(inclusive corners), mmdet 3 as ``x2 - x1``. With mmdet's own
``LegacyAnchorGenerator`` (``center_offset=0.5``: anchors rounded as in
1.x) and ``nms`` with ``offset=1`` (1.x's IoU), these components reproduce
the rest (``configs/psconv/*_release.py`` name them):

- ``V1DeltaXYWHBBoxCoder``: 1.x's ``delta2bbox`` (mmdet 1.0rc0), the
  corners of a box of width ``w`` at ``x1 = cx - w / 2 + 0.5`` and ``x2 =
  cx + w / 2 - 0.5``, clipped to ``[0, side - 1]``. mmdet's
  ``LegacyDeltaXYWHBBoxCoder`` leaves the 0.5 out (a later 1.x).
- ``V1RoIExtractor``: RoIs as 1.x's ``SingleRoIExtractor`` saw them: the
  level from ``sqrt((x2 - x1 + 1) (y2 - y1 + 1))`` and 1.x's RoIAlign
  region, which ends at ``(x2 + 1) / stride``. mmcv's ``RoIAlign`` with
  ``aligned=False`` is 1.x's kernel given ``x2 + 1``, except that it widens
  a RoI narrower than one feature cell to one cell (1.x: kept), i.e. a RoI
  with ``x2 - x1 < stride - 1`` pixels (only at the finest level, stride 4,
  can a RoI be that thin).
- ``V1FCNMaskHead``: 1.x's mask pasting: each box's corners truncated to
  integers in the original image, the 28x28 probability map resized
  bilinearly (OpenCV, ``mmcv.imresize``) to the box's inclusive size, then
  ``> mask_thr_binary`` (mmdet 3: ``grid_sample`` over float corners,
  ``>=``).
- ``V1StandardRoIHead`` / ``V1CascadeRoIHead``: 1.x's test order: class-wise
  NMS on the boxes in the original image's pixels (mmdet 3 runs it in the
  resized image when the model has masks; with ``offset=1`` the IoU
  depends on the scale), the mask RoIs those boxes times the scale factor;
  the outputs then converted to mmdet 3's convention (``x2 + 1``,
  ``y2 + 1``), so that ``CocoMetric`` reports the widths 1.x reported.

``msdet.datasets.V1Resize`` records 1.x's scale factor. Training with these
components is not 1.x's training (assigners and losses are mmdet 3's).
"""
import mmcv
import numpy as np
import torch
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.models.task_modules.coders import LegacyDeltaXYWHBBoxCoder
from mmdet.models.task_modules.coders.legacy_delta_xywh_bbox_coder import \
    legacy_delta2bbox
from mmdet.structures.bbox import HorizontalBoxes, get_box_tensor
from mmengine.registry import MODELS, TASK_UTILS

from ..utils.validation import fail

#: 1.x's corners of a box centred at cx of width w: cx - w / 2 + 0.5,
#: cx + w / 2 - 0.5 (``legacy_delta2bbox`` gives cx -+ w / 2).
_V1_CORNERS = (0.5, 0.5, -0.5, -0.5)


@TASK_UTILS.register_module()
class V1DeltaXYWHBBoxCoder(LegacyDeltaXYWHBBoxCoder):
    """mmdet 1.x's box coder (mmdet 1.0rc0 ``delta2bbox`` / ``bbox2delta``):
    widths ``x2 - x1 + 1`` and decoded corners ``cx -+ (w / 2 - 0.5)``,
    clipped to ``[0, W - 1] x [0, H - 1]`` (see the module docstring)."""

    def decode(self, bboxes, pred_bboxes, max_shape=None,
               wh_ratio_clip=16 / 1000):
        bboxes = get_box_tensor(bboxes)
        assert pred_bboxes.size(0) == bboxes.size(0)
        out = legacy_delta2bbox(bboxes, pred_bboxes, self.means, self.stds,
                                None, wh_ratio_clip)
        out = out.view(out.size(0), -1, 4) + out.new_tensor(_V1_CORNERS)
        if max_shape is not None:
            h, w = (int(side) for side in max_shape[:2])
            out[..., 0::2] = out[..., 0::2].clamp(min=0, max=w - 1)
            out[..., 1::2] = out[..., 1::2].clamp(min=0, max=h - 1)
        out = out.view_as(pred_bboxes)
        if self.use_box_type:
            assert out.size(-1) == 4, \
                'boxes of several classes cannot be wrapped in a box type'
            out = HorizontalBoxes(out)
        return out


@MODELS.register_module()
class V1RoIExtractor(SingleRoIExtractor):
    """mmdet's ``SingleRoIExtractor`` seeing RoIs as mmdet 1.x's did:
    ``(x1, y1, x2 + 1, y2 + 1)`` for both the level (``finest_scale`` 56 on
    ``sqrt((x2 - x1 + 1) (y2 - y1 + 1))``) and mmcv's ``RoIAlign`` with
    ``aligned=False`` (required), 1.x's kernel (see the module
    docstring)."""

    def __init__(self, roi_layer, out_channels, featmap_strides, **kwargs):
        if roi_layer.get('type') != 'RoIAlign' or \
                roi_layer.get('aligned', True) is not False:
            fail(type(self).__name__, 'roi_layer', roi_layer,
                 "dict(type='RoIAlign', aligned=False, ...) (mmdet 1.x's "
                 'RoIAlign has no half-pixel offset)')
        super().__init__(roi_layer, out_channels, featmap_strides, **kwargs)

    def forward(self, feats, rois, roi_scale_factor=None):
        rois = torch.cat([rois[:, :3], rois[:, 3:] + 1], dim=1)
        return super().forward(feats, rois, roi_scale_factor)


@MODELS.register_module()
class V1FCNMaskHead(FCNMaskHead):
    """mmdet's ``FCNMaskHead`` pasting masks as mmdet 1.x did (see the
    module docstring): boxes' corners truncated to ints, each box's map
    resized bilinearly with OpenCV to ``(x2 - x1 + 1, y2 - y1 + 1)``,
    thresholded with ``>``."""

    def _predict_by_feat_single(self, mask_preds, bboxes, labels, img_meta,
                                rcnn_test_cfg, rescale=False,
                                activate_map=False):
        if activate_map:  # already probabilities (cascade: merged stages)
            mask_preds = bboxes.new_tensor(mask_preds)
        else:
            mask_preds = mask_preds.sigmoid()
        scale = bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
        img_h, img_w = img_meta['ori_shape'][:2]
        if rescale:
            bboxes = bboxes / scale
        else:
            img_h = int(np.round(img_h * scale[1].item()))
            img_w = int(np.round(img_w * scale[0].item()))
        n = len(mask_preds)
        probs = (mask_preds[:, 0] if self.class_agnostic else
                 mask_preds[range(n), labels]).float().cpu().numpy()
        corners = bboxes.detach().cpu().numpy().astype(np.int32)
        masks = np.zeros((n, img_h, img_w), dtype=bool)
        for i, (x1, y1, x2, y2) in enumerate(corners):
            w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
            mask = mmcv.imresize(probs[i], (w, h)) > \
                rcnn_test_cfg.mask_thr_binary
            masks[i, y1:y1 + h, x1:x1 + w] = mask[:img_h - y1, :img_w - x1]
        return torch.from_numpy(masks).to(bboxes.device)


class V1PredictMixin:
    """mmdet 1.x's order of the RoI head's test steps (see the module
    docstring); put it before mmdet's RoI head class."""

    def predict(self, x, rpn_results_list, batch_data_samples,
                rescale=False):
        assert self.with_bbox, 'Bbox head must be implemented.'
        metas = [s.metainfo for s in batch_data_samples]
        results_list = self.predict_bbox(x, metas, rpn_results_list,
                                         rcnn_test_cfg=self.test_cfg,
                                         rescale=rescale)
        if self.with_mask:
            boxes = [r.bboxes for r in results_list]
            if rescale:  # mask RoIs in the resized image, as 1.x
                for r, meta in zip(results_list, metas):
                    r.bboxes = r.bboxes * r.bboxes.new_tensor(
                        meta['scale_factor']).repeat(2)
            results_list = self.predict_mask(x, metas, results_list,
                                             rescale=rescale)
            for r, b in zip(results_list, boxes):
                r.bboxes = b
        for r in results_list:  # inclusive -> mmdet 3's corners
            r.bboxes = torch.cat([r.bboxes[:, :2], r.bboxes[:, 2:] + 1], 1)
        return results_list


@MODELS.register_module()
class V1StandardRoIHead(V1PredictMixin, StandardRoIHead):
    """mmdet's ``StandardRoIHead`` (Faster / Mask R-CNN) testing as mmdet
    1.x did (``V1PredictMixin``)."""


@MODELS.register_module()
class V1CascadeRoIHead(V1PredictMixin, CascadeRoIHead):
    """mmdet's ``CascadeRoIHead`` testing as mmdet 1.x did
    (``V1PredictMixin``): the stages' class scores averaged, boxes
    refined by the (class-agnostic) regression of each stage, the mask
    probabilities of all stages averaged, as 1.x's ``CascadeRCNN``."""
