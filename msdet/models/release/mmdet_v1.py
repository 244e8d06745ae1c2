"""mmdet 1.x two-stage detector checkpoints (Faster / Mask / Cascade (Mask)
R-CNN with FPN, as the PSConv release's model zoo saves them) -> mmdet 3
detectors whose RoI head tests as 1.x did (``msdet.models.mmdet_v1``).

1.x keys (``state_dict``): ``backbone.*`` (the release's backbone layout),
``neck.lateral_convs.{i}.conv`` / ``neck.fpn_convs.{i}.conv``,
``rpn_head.rpn_conv`` / ``rpn_cls`` / ``rpn_reg``, ``bbox_head.`` and
``mask_head.`` (``bbox_head.{s}.`` / ``mask_head.{s}.`` per cascade stage):
``shared_fcs.{0,1}``, ``fc_cls``, ``fc_reg``; ``convs.{i}.conv``,
``upsample``, ``conv_logits``. mmdet 3 names the same modules alike, the
heads under ``roi_head.``. Class layout: 1.x's ``num_classes`` counts the
background at index 0 (81 for COCO): ``fc_cls`` rows -> the 80 classes,
then the background last (mmdet 3); the background's box deltas
(class-specific ``fc_reg``, rows 0-3) and mask (``conv_logits`` row 0),
which mmdet 3 does not predict, are dropped (reported).
"""
import re

import torch

from ..converters import ConversionError, source_shape

_STAGE_RE = re.compile(r'^bbox_head\.(\d+)\.')
_HEAD_RE = re.compile(r'^roi_head\.((?:bbox|mask)_head)\.(?:(\d+)\.)?(.+)$')


def detector_kind(source):
    """'faster_rcnn', 'mask_rcnn', 'cascade_rcnn' or 'cascade_mask_rcnn',
    and the number of cascade stages (0 for none)."""
    keys = list(source.keys())
    if 'rpn_head.rpn_cls.weight' not in source:
        raise ConversionError(
            "the source has no 'rpn_head.rpn_cls.weight': not an mmdet 1.x "
            'two-stage detector (backbone.*, neck.*, rpn_head.*, '
            'bbox_head.*); a backbone converts with psconv_release.py.')
    stages = {int(m.group(1)) for m in map(_STAGE_RE.match, keys) if m}
    mask = any(k.startswith('mask_head.') for k in keys)
    kind = ('cascade_' if stages else '') + ('mask_rcnn' if mask else
                                              'rcnn')
    if kind == 'rcnn':
        kind = 'faster_rcnn'
    return kind, len(stages)


def _bbox_head(source, prefix, head, channels):
    fc0 = source_shape(source, prefix + 'shared_fcs.0.weight')
    size = round((fc0[1] / channels)**0.5)
    if size * size * channels != fc0[1]:
        raise ConversionError(
            f'{prefix}shared_fcs.0.weight takes {fc0[1]} inputs, not '
            f'{channels} (the FPN width) x a square RoI size.')
    reg = source_shape(source, prefix + 'fc_reg.weight')[0]
    classes = source_shape(source, prefix + 'fc_cls.weight')[0] - 1
    if reg not in (4, 4 * (classes + 1)):
        raise ConversionError(f'{prefix}fc_reg.weight has {reg} rows; 1.x '
                              f'has 4 or 4 x {classes + 1} (its classes).')
    return dict(head, in_channels=channels, roi_feat_size=size,
                fc_out_channels=source_shape(
                    source, prefix + 'shared_fcs.1.weight')[0],
                num_classes=classes, reg_class_agnostic=reg == 4)


def _mask_head(source, prefix, head, channels):
    convs = {int(m.group(1)) for m in (
        re.match(re.escape(prefix) + r'convs\.(\d+)\.', k)
        for k in source.keys()) if m}
    return dict(head, in_channels=channels, num_convs=len(convs),
                conv_out_channels=source_shape(
                    source, prefix + 'convs.0.conv.weight')[0],
                num_classes=source_shape(
                    source, prefix + 'conv_logits.weight')[0] - 1)


def detector_cfg(source, template, backbone):
    """The mmdet 3 config of the 1.x detector ``source``: ``template`` (an
    msdet release config's ``model`` of the same kind) with ``backbone``
    (the backbone's config, read from ``backbone.*``) and the widths of
    the neck and heads read from the source."""
    n = len({k.split('.')[2] for k in source.keys()
             if k.startswith('neck.lateral_convs.')})
    lateral = [source_shape(source, f'neck.lateral_convs.{i}.conv.weight')
               for i in range(n)]
    channels = lateral[0][0]
    rpn = source_shape(source, 'rpn_head.rpn_conv.weight')
    cfg = dict(template, backbone=backbone)
    cfg['neck'] = dict(template['neck'], out_channels=channels,
                       in_channels=[s[1] for s in lateral])
    cfg['rpn_head'] = dict(template['rpn_head'], in_channels=rpn[1],
                           feat_channels=rpn[0])
    roi = dict(template['roi_head'])
    roi['bbox_roi_extractor'] = dict(roi['bbox_roi_extractor'],
                                     out_channels=channels)
    cascade = isinstance(roi['bbox_head'], list)
    _, stages = detector_kind(source)
    if stages != (len(roi['bbox_head']) if cascade else 0):
        raise ConversionError(
            f'the source has {stages} cascade stages, the template '
            f"{len(roi['bbox_head']) if cascade else 0}.")
    if cascade:
        roi['bbox_head'] = [_bbox_head(source, f'bbox_head.{s}.', h,
                                       channels)
                            for s, h in enumerate(roi['bbox_head'])]
    else:
        roi['bbox_head'] = _bbox_head(source, 'bbox_head.',
                                      roi['bbox_head'], channels)
    if roi.get('mask_head'):
        prefix = 'mask_head.0.' if cascade else 'mask_head.'
        roi['mask_roi_extractor'] = dict(roi['mask_roi_extractor'],
                                         out_channels=channels)
        roi['mask_head'] = _mask_head(source, prefix, roi['mask_head'],
                                      channels)
    cfg['roi_head'] = roi
    return cfg


def detector_rule(target, backbone_rule):
    """``rule(key, src)`` for every key of the built mmdet 3 detector:
    ``backbone.*`` by ``backbone_rule(key, src.view('backbone.'))``, the
    neck and RPN by name, the RoI heads from ``bbox_head.`` /
    ``mask_head.`` with the background moved (see the module
    docstring)."""
    def rule(key, src):
        if key.startswith('backbone.'):
            return backbone_rule(key[len('backbone.'):],
                                 src.view('backbone.'))
        m = _HEAD_RE.match(key)
        if not m:
            return src.take(key)
        head, stage, name = m.groups()
        value = src.take(f'{head}.{stage}.{name}' if stage else
                         f'{head}.{name}')
        if name.startswith('fc_cls.'):  # [bg, classes] -> [classes, bg]
            return torch.cat([value[1:], value[:1]])
        if name.startswith('fc_reg.') and value.shape[0] > 4:
            return value[4:]  # the background's deltas
        if name.startswith('conv_logits.'):
            return value[1:]  # the background's mask
        return value

    return rule
