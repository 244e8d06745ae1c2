"""ELASTIC release (ResNeXt, Wang et al., CVPR 2019) -> msdet ElasticResNeXt.

    python tools/model_converters/elastic_release.py SRC DST
        [--elastic] [--trust-source]

Source layout: ``{'state_dict': ...}`` saved from DataParallel (``module.``
prefixes, stripped), a ResNeXt (stem ``conv1``/``bn1``, classifier ``fc``)
whose bottleneck ``layerX.Y`` holds a full-resolution half ``conv1``,
``bn1``, ``conv2`` (grouped), ``bn2``, ``conv3`` and a low-resolution half
``conv1_d``, ``bn1_d``, ``conv2_d``, ``bn2_d``, ``conv3_d``, the two
``conv3`` outputs summed before the shared ``bn3``, plus ``downsample.{0,1}``.
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
input channels), which computes the same sum; ``fc.*`` dropped.

The architecture is read from the checkpoint: depth and block layout from
the blocks per stage (Elastic layouts (6, 8, 5, 3) / (12, 14, 20, 3), or
ResNeXt's (3, 4, 6, 3) / (3, 4, 23, 3)), width, groups and base width from
``layer1.0`` (both halves), the high-resolution share of the paths from
``layer1.0``'s halves. Elastic blocks: where the ``_d`` keys are, if only
Elastic blocks (of the release's rule) have them (so ResNeXt's layout with
them is sElastic); if non-Elastic blocks have both halves too, the keys
cannot tell, and the block layout decides: Elastic layouts are Elastic,
ResNeXt's layout is converted as plain ResNeXt (reported; equivalence
``'conditional'``) unless ``--elastic`` says it is sElastic.

Exact: msdet's Elastic block computes the same function (pooling with
``ceil_mode`` equals replicate padding to even sides, then the same
bilinear upsampling and crop), in eval and train mode (every BN keeps its
channels). A torchvision-layout ResNeXt (no ``_d`` keys) converts too, to
``ElasticResNeXt(elastic=False)``.
"""
import re

import torch

from msdet.models.backbones import ElasticResNeXt
from msdet.models.converters import (NBT, ConversionError, Converter,
                                     infer_depth, infer_resnet_widths,
                                     source_shape)
from msdet.utils.cli import run_tool

#: Blocks per stage by (depth, layout), for ``infer_depth``.
LAYOUTS = {(depth, kind): (None, tuple(blocks))
           for depth in ElasticResNeXt.arch_settings
           for kind, blocks in (
               ('Elastic', ElasticResNeXt.arch_settings[depth][1]),
               ('ResNeXt', ElasticResNeXt.plain_stage_blocks[depth]))}
_HALF_RE = re.compile(r'^(layer\d+\.\d+)\.(?:conv|bn)[123]_d\.')
_BLOCK_RE = re.compile(r'^(layer\d+\.\d+)\.(conv|bn)([123])(_low)?\.(\w+)$')


def release_elastic_blocks(counts):
    """The blocks the release makes Elastic: stride 1 outside the last
    stage (stage 1, and stages 2-3 but their first block)."""
    return {f'layer{i + 1}.{j}' for i, n in enumerate(counts[:-1])
            for j in range(n) if i == 0 or j > 0}


def halved_blocks(source):
    """The blocks holding a ``_d`` half."""
    return {m.group(1) for m in map(_HALF_RE.match, source.keys()) if m}


def target_cfg(source, args):
    depth, kind = infer_depth(source, LAYOUTS, 'ElasticResNeXt')
    counts = LAYOUTS[depth, kind][1]
    halved = halved_blocks(source)
    width_keys = ['layer1.0.conv1.weight']
    if 'layer1.0' in halved:
        width_keys.append('layer1.0.conv1_d.weight')
    widths = infer_resnet_widths(source, width_keys=width_keys)
    cfg = dict(type='ElasticResNeXt', depth=depth,
               groups=widths.pop('groups', 1), **widths)
    if halved and not halved <= release_elastic_blocks(counts):
        # both halves in non-Elastic blocks too: the keys do not tell
        elastic = args.elastic or kind == 'Elastic'
        if not elastic:
            source.note(
                f'every block holds both halves and the blocks per stage '
                f'{counts} are ResNeXt\'s: converted as plain ResNeXt (no '
                'block pools); if the source is sElastic, rerun with '
                '--elastic.')
    else:
        elastic = bool(halved) or args.elastic
    if not elastic:
        cfg['elastic'] = False
    if kind != ('Elastic' if elastic else 'ResNeXt'):
        cfg['stage_blocks'] = counts
    if elastic:
        high = source_shape(source, 'layer1.0.conv1.weight')[0]
        low = source_shape(source, 'layer1.0.conv1_d.weight')[0]
        if high != low:
            cfg['high_ratio'] = high / (high + low)
    return cfg


def make_rule(target, args=None):
    def merged(key, half, dim, src):
        full, low = src.take_all([key, half])
        if key.endswith(NBT):
            return torch.maximum(full, low)
        rest = [s for d, s in enumerate(full.shape) if d != dim]
        if rest != [s for d, s in enumerate(low.shape) if d != dim]:
            raise ConversionError(
                f'{half} has shape {tuple(low.shape)}, {key} '
                f'{tuple(full.shape)}: the halves do not form one block.')
        return torch.cat([full, low], dim)

    def rule(key, src):
        m = _BLOCK_RE.match(key)
        if not m:
            return src.take(key)
        prefix, layer, k, low, name = m.groups()
        half = f'{prefix}.{layer}{k}_d.{name}'
        if low:
            return src.take(half)
        if layer + k == 'bn3' or target.get_submodule(prefix).elastic or \
                f'{prefix}.conv1_d.weight' not in src:
            return src.take(key)
        return merged(key, half, 1 if layer + k == 'conv3' else 0, src)

    return rule


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
        "replicate-padded, bilinear 2x upsampling, cropped)" + merged + '.'))


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
