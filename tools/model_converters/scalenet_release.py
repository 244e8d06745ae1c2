"""ScaleNet reference release -> msdet ScaleNet.

    python tools/model_converters/scalenet_release.py SRC DST
        [--structure STRUCTURE.json] [--trust-source]

Source layout: a ResNet (stem ``conv1``/``bn1``, ``layerX.Y.conv1``,
``bn1``, ``conv3``, ``bn3``, ``downsample.{0,1}``, classifier ``fc``) whose
SA block keeps one conv and one BN per scale i (pools 1, 2, 4, 7):
``layerX.Y.conv2.{i}.weight`` and ``layerX.Y.bn2.{i}.*``, a scale with 0
channels having neither. ``--structure`` is the structure the release was
trained with (its JSON file of ``[C1, C2, C3, C4, side]`` entries, or any
form msdet's ``ScaleNet(structure=...)`` takes); by default the published
allocation of the source's depth (50 or 101).

Mapping: ``conv2.{i}`` -> ``conv2.branches.{i}``; the per-scale BNs
``bn2.{i}`` concatenated in scale order -> msdet's one ``bn2`` over the
concatenated scales (BN is per channel, so this is the same affine map in
eval mode and the same batch statistics in train mode: both BNs follow the
upsampling); every other key unchanged; ``fc.*`` dropped. The per-scale
kernel size (1x1 or 3x3) comes from the structure in both; a mismatch is
reported as a shape error. The parameter mapping is exact.

The converted model computes the release's function where both do the
same resampling, i.e. when every SA block's map side h (and width) is a
multiple of its pooled side floor(h / s) for each present scale s > 1 and
at least s, and every strided block's input has even sides. Elsewhere
they differ by design (``ScaleNet`` / ``ScaleAggregation`` docstrings):

- upsampling: the release switches to bilinear where h is not a multiple
  of floor(h / s); msdet always uses nearest (paper 3.1). At 224x224 this
  is the case for scale 4 on the 14x14 stage and scale 2 on the 7x7 stage,
  so there the converted model's stage 3 and 4 outputs differ from the
  release's (by how much depends on the weights); at 896x896 (maps 224,
  112, 56, 28) the published structures give equal outputs. Most detection
  input sizes hit bilinear somewhere: treat the weights as the release's
  parameters, not as a bit-identical network;
- pooling a map smaller than s: the release produces an empty map (error),
  msdet pools the whole map;
- stride pooling: the release rounds odd sides down, msdet up (equal for
  even sides, e.g. every size of mmdet's 32-padded batches);
- kernel size of scale 7 on a side-8 map: release 1x1, msdet 3x3 (no
  published structure has side 8).
"""
import os.path as osp
import re

import torch

from msdet.models.backbones import ScaleNet
from msdet.models.converters import Converter, infer_depth, source_shape
from msdet.utils.cli import run_tool

_SA_RE = re.compile(r'^(layer\d+\.\d+)\.(?:conv2\.branches\.(\d+)\.weight|'
                    r'bn2\.(\w+))$')


def target_cfg(source, args):
    cfg = dict(type='ScaleNet',
               depth=infer_depth(source, ScaleNet.arch_settings, 'ScaleNet'))
    base = source_shape(source, 'layer1.0.conv3.weight')[0] // 4
    stem = source_shape(source, 'conv1.weight')[0]
    if base != 64:
        cfg['base_channels'] = base
    if stem != base:
        cfg['stem_channels'] = stem
    if args.structure is not None:
        cfg['structure'] = osp.abspath(args.structure)
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
    return dict(kind='conditional', statement=(
        "exact parameter mapping; the same function as the release where "
        "both resample alike (every SA map side a multiple of its pooled "
        "side for each present scale, at least the pool size; even sides "
        "at strided blocks, e.g. 896x896). Elsewhere msdet upsamples with "
        "nearest where the release uses bilinear (e.g. scale 4 at 14x14, "
        "scale 2 at 7x7, so at 224x224): the outputs differ there. See the "
        "script's docstring."))


def add_arguments(parser):
    parser.add_argument(
        '--structure', help='the structure the release was trained with '
        '(JSON); default: the published allocation of the depth')


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
