"""ScaleNet reference release -> msdet ScaleNet.

    python tools/model_converters/scalenet_release.py SRC DST
        [--structure STRUCTURE.json] [--trust-source]

Source layout (the release's ``pytorch/scalenet.py``): a ResNet (stem
``conv1``/``bn1``, ``layerX.Y.conv1``, ``bn1``, ``conv3``, ``bn3``,
``downsample.{0,1}``, classifier ``fc``) whose SA block keeps one conv and
one BN per scale i (pools 1, 2, 4, 7): ``layerX.Y.conv2.{i}.weight`` and
``layerX.Y.bn2.{i}.*``, a scale with 0 channels having neither.

Structure: by default read from the checkpoint, as the published allocation
(``structures/*.json`` of the release, bundled with msdet) whose channels
per scale equal the checkpoint's: ScaleNet-50, ScaleNet-50-light (written
as ``structure='scalenet50_light'``), ScaleNet-101 or ScaleNet-152.
``--structure`` gives another one (the release's JSON file of ``[C1, C2,
C3, C4, side]`` entries, or any form msdet's ``ScaleNet(structure=...)``
takes).

Mapping: ``conv2.{i}`` -> ``conv2.branches.{i}``; the per-scale BNs
``bn2.{i}`` concatenated in scale order -> msdet's one ``bn2`` over the
concatenated scales (BN is per channel, so this is the same affine map in
eval mode and the same batch statistics in train mode: both BNs follow the
upsampling); every other key unchanged; ``fc.*`` dropped. The per-scale
kernel size (1x1 or 3x3) comes from the structure in both; a mismatch is
reported as a shape error.

The backbone config sets ``resample='release'``: msdet's SA blocks then
resample exactly as the release does, so the converted backbone computes
the release's function at every input size the release runs at:

- upsampling: nearest where the map's sides are multiples of the pooled
  map's, else bilinear with ``align_corners=False`` (the release's
  ``F.upsample(size=..., mode=...)``; e.g. at 224 px scale 4 on the 14x14
  stage and scale 2 on the 7x7 stage, and most detection sizes);
- pooling: max pools with kernel = stride, rounding down, no padding, both
  inside the SA block (``floor(h / s)``) and in front of a strided block
  (``floor(h / 2)``).

The paper's ``resample='nearest'`` (msdet's default) differs from the
release wherever the release upsamples bilinearly (at 224 px stages 3-4, at
800x1216 every stage) and, for odd map sides, in the strided pool's
rounding; it agrees where every pooled side divides its map (e.g. 896
px). Remaining differences, outside what the release runs or builds: a map
smaller than a pool is an error in the release and pooled whole in msdet;
a scale-7 branch on a side-8 design map is 1x1 in the release and 3x3 in
msdet (no published structure has side 8).
"""
import os.path as osp
import re

import torch

from msdet.models.backbones import ScaleNet
from msdet.models.backbones.scalenet_structure import DEFAULT, PUBLISHED
from msdet.models.converters import (ConversionError, Converter, infer_depth,
                                     source_shape)
from msdet.ops.scale_aggregation import SCALES
from msdet.utils.cli import run_tool

_SA_RE = re.compile(r'^(layer\d+\.\d+)\.(?:conv2\.branches\.(\d+)\.weight|'
                    r'bn2\.(\w+))$')


def source_structure(source, depth):
    """The checkpoint's output channels per scale of every SA block, in
    network order (0 where a scale has no conv)."""
    blocks = ScaleNet.arch_settings[depth][1]
    return [[(source.shape(f'layer{i + 1}.{j}.conv2.{k}.weight') or (0, ))[0]
             for k in range(len(SCALES))]
            for i, n in enumerate(blocks) for j in range(n)]


def published_structure(source, depth):
    """The name of the published allocation whose channels the checkpoint
    has; one ``ConversionError`` if none has them."""
    channels = source_structure(source, depth)
    need = sum(ScaleNet.arch_settings[depth][1])
    names = [n for n, blocks in PUBLISHED.items() if len(blocks) == need]
    for name in names:
        if [b[:-1] for b in PUBLISHED[name]] == channels:
            return name
    raise ConversionError(
        f'the checkpoint\'s channels per scale (layer1.0: {channels[0]}, '
        f'layer1.1: {channels[1]}, ...) are none of the published depth-'
        f'{depth} allocations ({", ".join(names)}); give the structure it '
        'was trained with: --structure FILE.')


def target_cfg(source, args):
    depth = infer_depth(source, ScaleNet.arch_settings, 'ScaleNet')
    cfg = dict(type='ScaleNet', depth=depth)
    base = source_shape(source, 'layer1.0.conv3.weight')[0] // 4
    stem = source_shape(source, 'conv1.weight')[0]
    if base != 64:
        cfg['base_channels'] = base
    if stem != base:
        cfg['stem_channels'] = stem
    structure = getattr(args, 'structure', None)
    if structure is not None:
        cfg['structure'] = osp.abspath(structure)
    else:
        name = published_structure(source, depth)
        if name != DEFAULT[depth]:
            cfg['structure'] = name
    cfg['resample'] = 'release'
    return cfg


def make_rule(target, args=None):
    def rule(key, src):
        m = _SA_RE.match(key)
        if not m:
            return src.take(key)
        prefix, branch, name = m.groups()
        if branch is not None:
            return src.take(f'{prefix}.conv2.{branch}.weight')
        scales = list(target.get_submodule(prefix).conv2.branches)
        parts = src.take_all(f'{prefix}.bn2.{i}.{name}' for i in scales)
        if name == 'num_batches_tracked':
            return torch.stack(parts).max()
        return torch.cat(parts)

    return rule


def equivalence(args, src):
    return dict(kind='exact', statement=(
        "the release's function at every input size it runs at "
        "(resample='release': its nearest/bilinear upsampling and rounding-"
        "down pools); msdet's default resample='nearest' (paper 3.1) "
        'differs wherever the release upsamples bilinearly (e.g. 224 px, '
        "800x1216). See the script's docstring."))


def add_arguments(parser):
    parser.add_argument(
        '--structure', help='the structure the release was trained with '
        '(JSON); default: the published allocation whose channels the '
        'checkpoint has')


CONVERTER = Converter(
    layout='ScaleNet release (conv2.{i} / bn2.{i} per scale)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    add_arguments=add_arguments)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
