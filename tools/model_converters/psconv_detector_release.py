"""PSConv release detectors (d-li14/PSConv model zoo, an mmdet 1.x fork) ->
mmdet 3 detectors of msdet's release configs.

    python tools/model_converters/psconv_detector_release.py SRC DST
        [--zero-masked-blocks] [--trust-source]

Source layout: a published Faster / Mask / Cascade / Cascade Mask R-CNN
checkpoint with PS-ResNet-50/101 or PS-ResNeXt-101 (32x4d) + FPN, as mmdet
1.x saves it (``{'meta', 'state_dict', 'optimizer'}``): ``backbone.*`` in
the release's PSConv layout (see ``psconv_release.py``: ``conv2.gwconv``,
``conv2.gwconv_shift``, ``conv2.conv``), ``neck.*`` (FPN), ``rpn_head.*``,
``bbox_head.*`` and ``mask_head.*`` (``bbox_head.{s}.*`` /
``mask_head.{s}.*`` per cascade stage), classes counted with the background
at index 0 (81 for COCO).

Mapping: the backbone by ``psconv_release.py``'s rule (``backbone.*``);
``neck.*`` and ``rpn_head.*`` by name; ``bbox_head[.s].*`` /
``mask_head[.s].*`` -> ``roi_head.bbox_head[.s].*`` /
``roi_head.mask_head[.s].*`` (``shared_fcs``, ``fc_cls``, ``fc_reg``,
``convs``, ``upsample``, ``conv_logits``: the same names), with
``fc_cls``'s background row moved last and the background's box deltas
(class-specific ``fc_reg``, rows 0-3) and mask (``conv_logits`` row 0)
dropped: mmdet 3 predicts neither. The model config is the msdet release
config of the detector's kind (``configs/psconv/<kind>_psr50_fpn_1x_
release.py``) with the backbone and the widths read from the checkpoint;
the script names the config to test with (``<kind>_<arch>_fpn_1x_
release.py``).

Exact (float tolerance): the converted detector's backbone, FPN, RPN and
R-CNN head outputs are the release's on the same input and RoIs, and the
release configs' inference reproduces mmdet 1.x's (``msdet.models.
mmdet_v1``; model_zoo.md says what differs). A PS-ResNeXt checkpoint whose
masked ``conv2.conv`` blocks are nonzero (fine-tuned with the release's
grouped mask indexing) is refused with the tensors named;
``--zero-masked-blocks`` drops them (an approximation, reported).
"""
import os.path as osp

from mmengine.config import Config

from msdet.models.converters import Converter
from msdet.models.release.mmdet_v1 import (detector_cfg, detector_kind,
                                           detector_rule)
from msdet.models.release.psconv import (add_arguments, backbone_cfg,
                                         backbone_rule)
from msdet.utils.cli import run_tool

REPO = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..')


def release_config(kind, arch='psr50'):
    return osp.join('configs', 'psconv', f'{kind}_{arch}_fpn_1x_release.py')


def target_cfg(source, args):
    kind, _ = detector_kind(source)
    template = Config.fromfile(
        osp.join(REPO, release_config(kind))).model.to_dict()
    backbone = dict(template['backbone'], **backbone_cfg(
        source.view('backbone.')))
    return detector_cfg(source, template, backbone)


def make_rule(target, args):
    return detector_rule(target, backbone_rule(target.backbone,
                                               args.zero_masked_blocks))


def equivalence(args, src):
    background = ("fc_cls's background row moved last, the background's "
                  'box deltas and mask dropped')
    if src.notes:
        return dict(kind='approximate', statement=(
            'masked conv blocks of the backbone were nonzero and dropped '
            '(--zero-masked-blocks): an approximation of the release; '
            + background + '.'))
    return dict(kind='exact', statement=(
        "the release's backbone, FPN, RPN and R-CNN heads (PSConv kernels "
        'merged as psconv_release.py does; ' + background + '); with the '
        "release config, mmdet 1.x's inference (see model_zoo.md)."))


def dataset_meta(src):
    from mmdet.datasets import CocoDataset
    if src.shape('rpn_head.rpn_cls.weight') is None:
        return {}
    cls = [k for k in src.keys() if k.endswith('fc_cls.weight')]
    if not cls or src.shape(cls[0])[0] != 81:
        return {}
    return dict(classes=CocoDataset.METAINFO['classes'])


def usage(cfg, dst):
    kind = ('cascade_' if isinstance(cfg['roi_head']['bbox_head'], list)
            else '') + ('mask_rcnn' if cfg['roi_head'].get('mask_head')
                        else 'rcnn')
    kind = 'faster_rcnn' if kind == 'rcnn' else kind
    backbone = cfg['backbone']
    arch = f"psr{backbone['depth']}" if backbone['type'] == 'PSResNet' else \
        f"psx{backbone['depth']}_{backbone.get('groups')}x" \
        f"{backbone.get('base_width')}d"
    config = release_config(kind, arch)
    path = osp.join(REPO, config)
    if osp.isfile(path) and Config.fromfile(path).model.to_dict() == cfg:
        return f'use: python tools/test.py {config} {dst}'
    return (f"use: tools/test.py with a config whose model is meta['model'] "
            f'(e.g. {release_config(kind)} with the widths above) and {dst}')


CONVERTER = Converter(
    layout='PSConv release mmdet 1.x detector (backbone, neck, rpn_head, '
    'bbox_head, mask_head)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    drop={},
    add_arguments=add_arguments,
    scope='mmdet',
    dataset_meta=dataset_meta,
    usage=usage)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
