"""The parts of an mmdet / mmseg model that export to ONNX, each an
``nn.Module`` whose forward is the graph, with the names of its inputs and
outputs, its dynamic axes, example inputs, and the model's own code path as
the reference that verification compares against.

- ``backbone``: the backbone and, if the model has one, the neck, i.e.
  ``model.extract_feat`` (what the heads read), for any mmdet or mmseg
  model.
- ``model``: a segmentor (mmseg ``EncoderDecoder``) whole: seg logits at the
  input's size, as ``encode_decode`` computes them (one whole-image pass,
  ``test_cfg.mode='whole'``); a detector up to its dense head: features and
  the raw outputs of the RPN head (two-stage) or of the box head
  (single-stage) per level. Decoding boxes and NMS stay outside the graph.
- ``roi_head``: the second stage of a two-stage detector with a
  ``StandardRoIHead`` on given RoIs: box scores and deltas (and mask logits
  where the head has masks), without NMS.

A part that the model does not have, or that cannot be exported as the
model computes it, is one ``ValueError`` naming it.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

PARTS = ('model', 'backbone', 'roi_head')


def _flatten(outputs) -> List[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for item in outputs for t in _flatten(item)]


def _features(model) -> str:
    """``'PSResNet + FPN'``: what ``extract_feat`` runs."""
    neck = getattr(model, 'neck', None)
    return type(model.backbone).__name__ + (
        f' + {type(neck).__name__}' if neck is not None else '')


def _spatial_axes(names: Sequence[str], prefix: str = '') -> dict:
    """Batch, height and width of NCHW tensors ``names`` as dynamic axes."""
    return {name: {0: 'batch', 2: f'{prefix or name}_height',
                   3: f'{prefix or name}_width'} for name in names}


class ExportPart(nn.Module):
    """One exported graph. ``forward(*inputs)`` returns a tuple of tensors
    named ``output_names``; ``reference(*inputs)`` computes the same with
    the model's own code (for verification)."""

    #: what the graph computes, in words
    description = ''
    input_names: Tuple[str, ...] = ('input', )
    output_names: Tuple[str, ...] = ()

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def dynamic_axes(self) -> dict:
        """Batch, height and width of the input and of every output."""
        axes = _spatial_axes(['input'], 'input')
        axes.update(_spatial_axes(self.output_names))
        return axes

    def example_inputs(self, images: torch.Tensor) -> tuple:
        """The graph's inputs for a batch of preprocessed ``images``."""
        return (images, )

    @torch.no_grad()
    def reference(self, *inputs) -> List[torch.Tensor]:
        return _flatten(self.forward(*inputs))

    @torch.no_grad()
    def prepare(self, inputs: tuple) -> None:
        """Name the outputs (their number depends on the model) from one
        run on ``inputs``."""


class BackbonePart(ExportPart):
    """``model.extract_feat``: backbone (+ neck)."""

    def __init__(self, model):
        super().__init__(model)
        self.description = _features(model)

    def forward(self, images):
        return tuple(_flatten(self.model.extract_feat(images)))

    @torch.no_grad()
    def prepare(self, inputs):
        self.output_names = tuple(
            f'feat{i}' for i in range(len(self.forward(*inputs))))


class DenseDetectorPart(ExportPart):
    """Features and the raw outputs of a detector's dense head (the RPN
    head of a two-stage detector, the box head of a single-stage one)."""

    def __init__(self, model, head_name):
        super().__init__(model)
        self.head_name = head_name
        self.prefix = 'rpn_' if head_name == 'rpn_head' else ''
        self.description = (
            f'{type(model).__name__}: {_features(model)} + '
            f'{type(self.head).__name__} (raw outputs per level; box '
            'decoding and NMS outside the graph)')

    @property
    def head(self):
        return getattr(self.model, self.head_name)

    def forward(self, images):
        feats = self.model.extract_feat(images)
        return tuple(_flatten(feats)) + tuple(_flatten(self.head(feats)))

    @torch.no_grad()
    def prepare(self, inputs):
        feats = self.model.extract_feat(*inputs)
        outs = self.head(feats)
        names = [f'feat{i}' for i in range(len(_flatten(feats)))]
        kinds = ('cls_score', 'bbox_pred')
        for k, per_level in enumerate(outs):
            kind = kinds[k] if k < len(kinds) else f'out{k}'
            names += [f'{self.prefix}{kind}{level}'
                      for level in range(len(_flatten(per_level)))]
        self.output_names = tuple(names)


class SegmentorPart(ExportPart):
    """Seg logits at the input's size: ``EncoderDecoder.encode_decode``,
    whose ``img_shape`` is the input's size (in-graph under tracing)."""
    output_names = ('seg_logits', )

    def __init__(self, model):
        super().__init__(model)
        self.description = (
            f'{type(model).__name__}: {_features(model)} + '
            f'{type(model.decode_head).__name__} (seg logits at the input '
            'size, one whole-image pass)')

    def forward(self, images):
        return (self.model.encode_decode(
            images, [dict(img_shape=images.shape[2:])]), )

    def dynamic_axes(self):
        axes = _spatial_axes(['input'], 'input')
        axes['seg_logits'] = {0: 'batch', 2: 'input_height',
                              3: 'input_width'}
        return axes


class _RoIAlign(torch.autograd.Function):
    """mmcv's ``roi_align`` (avg pooling), exported as the standard ONNX
    ``RoiAlign`` (opset 16) with the coordinate convention that computes the
    same: ``half_pixel`` for ``aligned=True`` (mmcv's pixel shift, no
    minimum RoI size), ``output_half_pixel`` otherwise (RoIs at least 1x1).
    mmcv's own export of the op shifts the RoIs itself, which at opset 16 and
    later shifts them twice."""

    @staticmethod
    def forward(ctx, feat, rois, out_h, out_w, spatial_scale, sampling_ratio,
                aligned):
        from mmcv.ops import roi_align
        return roi_align(feat, rois, (out_h, out_w), spatial_scale,
                         sampling_ratio, 'avg', aligned)

    @staticmethod
    def symbolic(g, feat, rois, out_h, out_w, spatial_scale, sampling_ratio,
                 aligned):

        def const(values):
            return g.op('Constant',
                        value_t=torch.tensor(values, dtype=torch.long))

        batch = g.op('Slice', rois, const([0]), const([1]), const([1]))
        batch = g.op('Cast', g.op('Squeeze', batch, const([1])),
                     to_i=7)  # INT64
        boxes = g.op('Slice', rois, const([1]), const([5]), const([1]))
        return g.op(
            'RoiAlign', feat, boxes, batch, output_height_i=out_h,
            output_width_i=out_w, spatial_scale_f=spatial_scale,
            sampling_ratio_i=max(0, sampling_ratio), mode_s='avg',
            coordinate_transformation_mode_s='half_pixel'
            if aligned else 'output_half_pixel')


class RoIHeadPart(ExportPart):
    """A ``StandardRoIHead`` on given RoIs ``(n, 5)`` (batch index, x1, y1,
    x2, y2 in input pixels): box class scores and deltas, and mask logits
    where the head has masks (for the same RoIs: run it again on the final
    boxes for masks, as mmdet does). No NMS.

    RoI features are extracted as mmdet's ``SingleRoIExtractor`` maps them
    (level by RoI scale, ``map_roi_levels``), computed on every level and
    kept where the RoI belongs: the same values without the per-level
    branches that a trace would freeze.
    """

    def __init__(self, model):
        super().__init__(model)
        self.num_inputs = self.roi_head.bbox_roi_extractor.num_inputs
        self.input_names = tuple(
            f'feat{i}' for i in range(self.num_inputs)) + ('rois', )
        names = ['cls_score', 'bbox_pred']
        if self.roi_head.with_mask:
            names.append('mask_pred')
        self.output_names = tuple(names)
        self.description = (
            f'{type(self.roi_head).__name__}: '
            f'{type(self.roi_head.bbox_head).__name__}' +
            (f' + {type(self.roi_head.mask_head).__name__}'
             if self.roi_head.with_mask else '') +
            ' on given RoIs (no NMS)')

    @property
    def roi_head(self):
        return self.model.roi_head

    def dynamic_axes(self):
        axes = _spatial_axes(self.input_names[:-1])
        axes['rois'] = {0: 'num_rois'}
        for name in self.output_names:
            axes[name] = {0: 'num_rois'}
        return axes

    def example_inputs(self, images, rois=None):
        """Features of ``images`` and ``rois`` (default: 16 random boxes
        per image, 5-95% of its sides, so over all pyramid levels)."""
        with torch.no_grad():
            feats = _flatten(self.model.extract_feat(images))
        if rois is None:
            n = 16 * len(images)
            h, w = images.shape[-2:]
            g = torch.Generator().manual_seed(0)
            size = (torch.rand(n, 2, generator=g) * 0.9 + 0.05) * \
                torch.tensor([w, h])
            corner = torch.rand(n, 2, generator=g) * (
                torch.tensor([w, h]) - size)
            index = torch.arange(n)[:, None] % len(images)
            rois = torch.cat([index, corner, corner + size], 1)
        return tuple(feats[:self.num_inputs]) + (rois.float(), )

    def _extract(self, extractor, feats, rois):
        levels = extractor.map_roi_levels(rois, len(feats))
        out = None
        for i, (feat, layer) in enumerate(zip(feats, extractor.roi_layers)):
            part = _RoIAlign.apply(feat, rois, *layer.output_size,
                                   layer.spatial_scale, layer.sampling_ratio,
                                   layer.aligned)
            part = part * (levels == i).to(part.dtype)[:, None, None, None]
            out = part if out is None else out + part
        return out

    def forward(self, *inputs):
        feats, rois = inputs[:-1], inputs[-1]
        head = self.roi_head
        bbox_feats = self._extract(head.bbox_roi_extractor, feats, rois)
        if head.with_shared_head:
            bbox_feats = head.shared_head(bbox_feats)
        outs = tuple(head.bbox_head(bbox_feats))
        if head.with_mask:
            mask_feats = self._extract(head.mask_roi_extractor, feats, rois)
            if head.with_shared_head:
                mask_feats = head.shared_head(mask_feats)
            outs += (head.mask_head(mask_feats), )
        return outs

    @torch.no_grad()
    def reference(self, *inputs):
        feats, rois = inputs[:-1], inputs[-1]
        head = self.roi_head
        bbox = head._bbox_forward(feats, rois)
        outs = [bbox['cls_score'], bbox['bbox_pred']]
        if head.with_mask:
            outs.append(head._mask_forward(feats, rois)['mask_preds'])
        return outs


def build_part(model: nn.Module, part: str) -> ExportPart:
    """The export module of ``part`` (one of ``PARTS``) of ``model``."""
    name = type(model).__name__
    if part not in PARTS:
        raise ValueError(f'part={part!r}; allowed: {list(PARTS)}.')
    if not hasattr(model, 'extract_feat') or \
            getattr(model, 'backbone', None) is None:
        raise ValueError(f'{name}: no backbone with extract_feat (an mmdet '
                         'detector or mmseg segmentor); nothing to export.')
    if part == 'backbone':
        return BackbonePart(model)
    if part == 'model':
        return _model_part(model)
    return _roi_head_part(model)


def _model_part(model):
    name = type(model).__name__
    if hasattr(model, 'encode_decode'):
        head = model.decode_head
        if isinstance(head, nn.ModuleList):
            raise ValueError(
                f'{name}: its decode_head is a cascade of '
                f'{len(head)} heads, each reading the previous one\'s '
                'output with image metas; export part=backbone instead.')
        return SegmentorPart(model)
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    for head_name in ('rpn_head', 'bbox_head'):
        head = getattr(model, head_name, None)
        if head is None:
            continue
        if isinstance(head, BaseDenseHead):
            return DenseDetectorPart(model, head_name)
        raise ValueError(
            f'{name}: its {head_name} ({type(head).__name__}) is not a dense '
            'head (mmdet BaseDenseHead) whose forward reads the features '
            'alone; export part=backbone instead.')
    raise ValueError(f'{name}: neither a segmentor (encode_decode) nor a '
                     'detector with an RPN or dense box head; export '
                     'part=backbone instead.')


def _roi_head_part(model):
    from mmcv.ops import RoIAlign
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    name = type(model).__name__
    head = getattr(model, 'roi_head', None)
    if head is None:
        raise ValueError(f'{name}: part=roi_head needs a two-stage detector '
                         'with a roi_head; this model has none.')
    kind = type(head).__name__
    if not isinstance(head, StandardRoIHead) or any(
            getattr(type(head), f) is not getattr(StandardRoIHead, f)
            for f in ('_bbox_forward', '_mask_forward')):
        raise ValueError(
            f'{name}: roi_head {kind} is not exportable: only '
            'StandardRoIHead (one stage of box and mask heads on given '
            'RoIs); a cascade refines boxes between its stages with image '
            'metas. Export part=model (features + RPN) instead.')
    extractors = [('bbox_roi_extractor', head.bbox_roi_extractor)]
    if head.with_mask:
        extractors.append(('mask_roi_extractor', head.mask_roi_extractor))
    for attr, extractor in extractors:
        if not isinstance(extractor, SingleRoIExtractor) or not all(
                isinstance(layer, RoIAlign) and layer.pool_mode == 'avg'
                for layer in extractor.roi_layers):
            raise ValueError(
                f'{name}: roi_head.{attr} ({type(extractor).__name__}) is '
                'not exportable: only SingleRoIExtractor with mmcv RoIAlign '
                "(pool_mode='avg'), the standard ONNX RoiAlign.")
    return RoIHeadPart(model)


@torch.no_grad()
def proposals(model, images: torch.Tensor) -> torch.Tensor:
    """The RoIs ``(n, 5)`` the model's RPN proposes for ``images`` (its test
    settings), the RoI head's input in mmdet's two-stage inference."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import bbox2roi
    feats = model.extract_feat(images)
    samples = [DetDataSample(metainfo=dict(img_shape=tuple(images.shape[2:]),
                                           scale_factor=(1.0, 1.0)))
               for _ in range(len(images))]
    results = model.rpn_head.predict(feats, samples, rescale=False)
    return bbox2roi([r.bboxes for r in results])
