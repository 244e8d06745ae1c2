"""ELASTIC release DeepLabv3 on PASCAL VOC (``segment.py``, Wang et al.,
CVPR 2019, table 5) -> an mmseg segmentor: ``EncoderDecoder`` with msdet's
``ElasticResNeXt`` and ``ElasticASPPHead``.

    python tools/model_converters/elastic_voc_release.py SRC DST
        [--elastic] [--trust-source]

Source layout: ``deeplab_<arch>_pascal_v3_original_epoch50.pth``,
``{'epoch', 'state_dict', 'optimizer'}`` saved from DataParallel
(``module.`` prefixes, stripped): the release's ResNeXt backbone (see
``elastic_release.py``: ``conv1_d`` .. ``conv3_d`` halves; its last stage
has stride 1, rates 2 x (1, 2, 4) and both halves at full resolution)
without ``fc``, and ``aspp``: ``aspp1`` (1x1) and ``aspp2..4`` (3x3, rates
6, 12, 18) on the last map and ``aspp5`` (1x1) on its global average, each
conv without bias + ``asppK_bn`` + ReLU; their concatenation in that order
-> ``conv2`` (1x1) + ``bn2`` + ReLU -> ``conv3`` (1x1 with bias) -> logits,
upsampled bilinearly (``align_corners=True``) to the input size.

Mapping: the backbone as ``elastic_release.py`` maps it (``backbone.*``);
``asppK`` / ``asppK_bn`` -> ``decode_head.aspp_modules.{K-1}.conv`` / ``.bn``
(K = 1..4), ``aspp5`` -> ``decode_head.image_pool.1.conv`` / ``.bn``,
``conv2`` / ``bn2`` -> ``decode_head.bottleneck.conv`` / ``.bn`` with its
input channels reordered (mmseg concatenates the image-pooling branch
first), ``conv3`` -> ``decode_head.conv_seg``.

The model config is ``configs/elastic/deeplabv3_ex50_32x4d_os16_voc12aug_
release.py``'s with the architecture and widths read from the checkpoint
(depth, Elastic or not, groups, widths; ASPP channels, classes); the script
names the config to test with. Exact: the same logits as the release's
model (eval mode) on the same input, e.g. 513x513.
"""
import os.path as osp

from mmengine.config import Config

from msdet.models.converters import Converter
from msdet.models.release.elastic import deeplab_cfg, deeplab_rule
from msdet.utils.cli import run_tool

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'configs')
TEMPLATE = 'elastic/deeplabv3_ex50_32x4d_os16_voc12aug_release.py'


def target_cfg(source, args):
    template = Config.fromfile(osp.join(CONFIGS, TEMPLATE)).model.to_dict()
    return deeplab_cfg(source, template, args.elastic)


def make_rule(target, args=None):
    return deeplab_rule(target)


def equivalence(args, src):
    if src.notes:
        return dict(kind='conditional', statement=(
            'the release\'s logits if its backbone is plain ResNeXt (every '
            'block at full resolution); if it is sElastic, rerun with '
            '--elastic.'))
    return dict(kind='exact', statement=(
        "the release's logits: its backbone as elastic_release.py maps it, "
        'its ASPP as ElasticASPPHead (1x1 fusion, no dropout, '
        'align_corners=True), the fusion conv\'s input channels reordered.'))


def dataset_meta(src):
    from mmseg.datasets import PascalVOCDataset
    if src.shape('aspp.conv3.weight')[0] != 21:
        return {}
    return dict(PascalVOCDataset.METAINFO)


def usage(cfg, dst):
    backbone = cfg['backbone']
    name = ('e' if backbone.get('elastic', True) else '') + \
        f"x{backbone['depth']}"
    config = osp.join('configs', 'elastic',
                      f'deeplabv3_{name}_32x4d_os16_voc12aug_release.py')
    standard = (backbone['groups'], backbone.get('base_width')) == (32, 4) \
        and not {'base_channels', 'stem_channels', 'stage_blocks',
                 'high_ratio', 'se'} & set(backbone) \
        and cfg['decode_head']['channels'] == 256
    if standard:
        return f'use: python tools/test.py {config} {dst}'
    return (f'use: tools/test.py with a DeepLabv3 config whose model is '
            f"meta['model'] (e.g. {config} with the widths above) and {dst}")


def add_arguments(parser):
    parser.add_argument(
        '--elastic', action='store_true',
        help="the backbone's stride-1 blocks outside the last stage are "
        'Elastic; needed only for sElastic saved with both halves in every '
        'block')


CONVERTER = Converter(
    layout='ELASTIC release DeepLabv3 (ResNeXt halves + aspp.*)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    drop={},
    add_arguments=add_arguments,
    scope='mmseg',
    dataset_meta=dataset_meta,
    usage=usage)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
