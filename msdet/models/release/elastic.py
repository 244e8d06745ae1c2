"""The ELASTIC release's checkpoints (allenai/elastic, ``models/resnext.py``)
-> msdet's ``ElasticResNeXt`` and its DeepLabv3 segmentor.

Backbone layout: a ResNeXt (stem ``conv1``/``bn1``) whose bottleneck
``layerX.Y`` holds a full-resolution half ``conv1``, ``bn1``, ``conv2``
(grouped), ``bn2``, ``conv3`` and a low-resolution half ``conv1_d`` ..
``conv3_d``, the two ``conv3`` outputs summed before the shared ``bn3``,
plus ``downsample.{0,1}`` and, in SE-ResNeXt (``se=True``), ``selayer``
(``conv1``/``conv2`` with bias) after ``bn3``. In an Elastic block (stride
1, outside the last stage) the ``_d`` half runs on the input 2x2
average-pooled (odd sides replicate-padded) and is upsampled 2x bilinearly
and cropped; a block that is not Elastic holds either the plain names only
or both halves at full resolution (the release builds the ``_d`` half in
every block). See ``tools/model_converters/elastic_release.py`` for the
mapping and ``elastic_voc_release.py`` for the DeepLabv3 (``aspp.*``) part.
"""
import re

import torch

from ..backbones import ElasticResNeXt
from ..converters import (NBT, ConversionError, infer_depth,
                          infer_resnet_widths, source_shape)

#: Blocks per stage by (depth, layout), for ``infer_depth``.
LAYOUTS = {(depth, kind): (None, tuple(blocks))
           for depth in ElasticResNeXt.arch_settings
           for kind, blocks in (
               ('Elastic', ElasticResNeXt.arch_settings[depth][1]),
               ('ResNeXt', ElasticResNeXt.plain_stage_blocks[depth]))}
_HALF_RE = re.compile(r'^(layer\d+\.\d+)\.(?:conv|bn)[123]_d\.')
_BLOCK_RE = re.compile(r'^(layer\d+\.\d+)\.(conv|bn)([123])(_low)?\.(\w+)$')
_SE_RE = re.compile(r'^(layer\d+\.\d+)\.se_layer\.(conv[12])\.conv\.(\w+)$')
_SE_SOURCE_RE = re.compile(r'^layer\d+\.\d+\.selayer\.conv1\.weight$')


def release_elastic_blocks(counts):
    """The blocks the release makes Elastic: stride 1 outside the last
    stage (stage 1, and stages 2-3 but their first block)."""
    return {f'layer{i + 1}.{j}' for i, n in enumerate(counts[:-1])
            for j in range(n) if i == 0 or j > 0}


def halved_blocks(source):
    """The blocks holding a ``_d`` half."""
    return {m.group(1) for m in map(_HALF_RE.match, source.keys()) if m}


def backbone_cfg(source, elastic_flag=False):
    """The ``ElasticResNeXt`` config of the release backbone ``source``
    (its keys without a prefix). ``elastic_flag``: the stride-1 blocks
    outside the last stage are Elastic even where the keys cannot tell
    (sElastic saved with both halves in every block)."""
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
        elastic = elastic_flag or kind == 'Elastic'
        if not elastic:
            source.note(
                f'every block holds both halves and the blocks per stage '
                f'{counts} are ResNeXt\'s: converted as plain ResNeXt (no '
                'block pools); if the source is sElastic, rerun with '
                '--elastic.')
    else:
        elastic = bool(halved) or elastic_flag
    if not elastic:
        cfg['elastic'] = False
    if kind != ('Elastic' if elastic else 'ResNeXt'):
        cfg['stage_blocks'] = counts
    if elastic:
        high = source_shape(source, 'layer1.0.conv1.weight')[0]
        low = source_shape(source, 'layer1.0.conv1_d.weight')[0]
        if high != low:
            cfg['high_ratio'] = high / (high + low)
    if any(map(_SE_SOURCE_RE.match, source.keys())):
        cfg['se'] = True
    return cfg


def backbone_rule(target):
    """``rule(key, src)`` for every key of the built ``ElasticResNeXt``
    ``target``: the ``_d`` half of an Elastic block -> the ``_low``
    branch; a non-Elastic block holding both halves -> one block with the
    halves concatenated (conv1, bn1, conv2, bn2 along output channels, the
    ``_d`` half second; conv3 along input channels), which computes the
    same sum; ``selayer.convK`` -> ``se_layer.convK.conv``."""

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
        se = _SE_RE.match(key)
        if se:
            return src.take('{}.selayer.{}.{}'.format(*se.groups()))
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


# ------------------------------------------------------- DeepLabv3 (VOC)
#: The release's ASPP (``aspp.*``) -> msdet's ``ElasticASPPHead``:
#: branch k of ``aspp1..4`` (1x1, rates 6, 12, 18) and the image pooling
#: branch ``aspp5``, each conv + BN; ``conv2``/``bn2`` the 1x1 fusion,
#: ``conv3`` the classifier.
ASPP_KEYS = dict(
    {f'aspp_modules.{i}.conv': f'aspp{i + 1}' for i in range(4)},
    **{f'aspp_modules.{i}.bn': f'aspp{i + 1}_bn' for i in range(4)},
    **{'image_pool.1.conv': 'aspp5', 'image_pool.1.bn': 'aspp5_bn',
       'bottleneck.conv': 'conv2', 'bottleneck.bn': 'bn2',
       'conv_seg': 'conv3'})
#: The release's ASPP rates (``ASPP(mult=1)``) and the multi-grid of its
#: last stage (``_make_mg``: dilation 2 x (1, 2, 4), stride 1: OS16).
ASPP_DILATIONS = (1, 6, 12, 18)
MULTI_GRID = (1, 2, 4)
#: What a DeepLabv3 backbone config sets besides the architecture.
DEEPLAB_BACKBONE = ('strides', 'dilations', 'out_indices', 'norm_cfg',
                    'norm_eval')


def deeplab_cfg(source, template, elastic_flag=False):
    """The mmseg ``EncoderDecoder`` config of a release DeepLabv3
    checkpoint ``source``: ``template`` (an msdet DeepLabv3 config's
    ``model``) with the backbone's architecture and the head's widths read
    from the source."""
    if source.shape('aspp.aspp2.weight') is None:
        raise ConversionError("the source has no 'aspp.aspp2.weight': not "
                              'a release DeepLabv3 checkpoint (backbone + '
                              "'aspp.*'); an ImageNet checkpoint converts "
                              'with elastic_release.py.')
    backbone = dict(backbone_cfg(source, elastic_flag))
    backbone.setdefault('elastic', True)
    backbone.update({k: template['backbone'][k] for k in DEEPLAB_BACKBONE},
                    multi_grid=MULTI_GRID, init_cfg=None)
    channels, in_channels = source_shape(source, 'aspp.aspp2.weight')[:2]
    head = dict(template['decode_head'], in_channels=in_channels,
                channels=channels, dilations=ASPP_DILATIONS,
                num_classes=source_shape(source, 'aspp.conv3.weight')[0])
    return dict(template, backbone=backbone, decode_head=head)


def deeplab_rule(target):
    """``rule(key, src)`` for every key of the built segmentor: the
    backbone's keys by ``backbone_rule``, the head's from ``aspp.*``; the
    fusion conv's input columns reordered from the release's concatenation
    (branches, then image pooling) to mmseg's (image pooling first)."""
    backbone = backbone_rule(target.backbone)

    def rule(key, src):
        part, _, rest = key.partition('.')
        if part == 'backbone':
            return backbone(rest, src)
        if part != 'decode_head':
            raise ConversionError('not in the release DeepLabv3')
        module, _, name = rest.rpartition('.')
        if module not in ASPP_KEYS:
            raise ConversionError('not in the release DeepLabv3')
        value = src.take(f'aspp.{ASPP_KEYS[module]}.{name}')
        if module == 'bottleneck.conv':  # [a1..a4, pool] -> [pool, a1..a4]
            c = value.shape[1] // 5
            value = torch.cat([value[:, 4 * c:], value[:, :4 * c]], 1)
        return value

    return rule
