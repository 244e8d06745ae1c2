"""ELASTIC release (ResNeXt, Wang et al., CVPR 2019) -> msdet ElasticResNeXt.

    python tools/model_converters/elastic_release.py SRC DST
        [--elastic] [--trust-source]

Source layout: ``{'state_dict': ...}`` saved from DataParallel (``module.``
prefixes, stripped), a ResNeXt (stem ``conv1``/``bn1``, classifier ``fc``)
whose bottleneck ``layerX.Y`` holds a full-resolution half ``conv1``,
``bn1``, ``conv2`` (grouped), ``bn2``, ``conv3`` and a low-resolution half
``conv1_d``, ``bn1_d``, ``conv2_d``, ``bn2_d``, ``conv3_d``, the two
``conv3`` outputs summed before the shared ``bn3``, plus ``downsample.{0,1}``
and, in SE-ResNeXt (``se_resnext50_elastic``, paper table 2), a
``selayer`` after ``bn3`` in every block (global average pool, ``conv1``
to 1/16 of the channels with bias, ReLU, ``conv2`` back with bias,
sigmoid; the channels rescaled before the residual is added).
In an Elastic block (stride 1, outside the last stage) the ``_d`` half runs
on the input 2x2 average-pooled (odd sides replicate-padded to even) and
its output is upsampled 2x bilinearly (``align_corners=False``) and cropped
to the input size. A block that is not Elastic (stride-2 first blocks of
stages 2-4, the last stage, every block of a plain ResNeXt) holds either
the plain names only, or both halves at full resolution (code derived from
the release builds the ``_d`` half in every block); both are accepted.

Mapping: the ``_d`` half of an Elastic block -> msdet's low-resolution
branch ``conv1_low``, ``bn1_low``, ... ``conv3_low``; the plain names ->
the same names (high-resolution branch or plain block); a non-Elastic block
holding both halves -> one ResNeXt block, the halves concatenated (conv1,
bn1, conv2, bn2 along output channels, the ``_d`` half second; conv3 along
input channels), which computes the same sum; ``selayer.conv1/2`` ->
``se_layer.conv1/2.conv`` (``ElasticResNeXt(se=True)``); ``fc.*`` dropped.

The architecture is read from the checkpoint: depth and block layout from
the blocks per stage (Elastic layouts (6, 8, 5, 3) / (12, 14, 20, 3), or
ResNeXt's (3, 4, 6, 3) / (3, 4, 23, 3)), width, groups and base width from
``layer1.0`` (both halves), the high-resolution share of the paths from
``layer1.0``'s halves. Elastic blocks: where the ``_d`` keys are, if only
Elastic blocks (of the release's rule) have them (so ResNeXt's layout with
them is sElastic); if non-Elastic blocks have both halves too, the keys
cannot tell, and the block layout decides: Elastic layouts are Elastic,
ResNeXt's layout is converted as plain ResNeXt (reported; equivalence
``'conditional'``) unless ``--elastic`` says it is sElastic. ``selayer``
keys give ``se=True``. The release's DeepLabv3 checkpoints (``aspp.*``
keys) convert with ``elastic_voc_release.py``.

Exact: msdet's Elastic block computes the same function (pooling with
``ceil_mode`` equals replicate padding to even sides, then the same
bilinear upsampling and crop), in eval and train mode (every BN keeps its
channels). A torchvision-layout ResNeXt (no ``_d`` keys) converts too, to
``ElasticResNeXt(elastic=False)``.
"""
from msdet.models.converters import Converter
from msdet.models.release.elastic import backbone_cfg, backbone_rule
from msdet.utils.cli import run_tool


def target_cfg(source, args):
    return backbone_cfg(source, args.elastic)


def make_rule(target, args=None):
    return backbone_rule(target)


def equivalence(args, src):
    merged = ('; a non-Elastic block holding both halves is one grouped '
              'block with the halves concatenated')
    if src.notes:
        return dict(kind='conditional', statement=(
            'exact if the source is plain ResNeXt (every block at full '
            'resolution)' + merged + '. If it is sElastic, rerun with '
            '--elastic.'))
    return dict(kind='exact', statement=(
        "same function as the release: the _d halves of Elastic blocks "
        "are msdet's _low branches (2x2 average pooling, odd sides as "
        "replicate-padded, bilinear 2x upsampling, cropped)" + merged +
        ('; selayer -> se_layer' if any('selayer' in k for k in src.used)
         else '') + '.'))


def add_arguments(parser):
    parser.add_argument(
        '--elastic', action='store_true',
        help="the source's stride-1 blocks outside the last stage are "
        'Elastic; needed only for sElastic (ResNeXt\'s blocks per stage) '
        'saved with both halves in every block, which the keys cannot tell '
        'from plain ResNeXt')


CONVERTER = Converter(
    layout='ELASTIC release ResNeXt (conv1..3 and conv1_d..3_d halves)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    add_arguments=add_arguments)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
