"""PSConv release (mmdet 1.x fork) -> msdet PSResNet / PSResNeXt.

    python tools/model_converters/psconv_release.py SRC DST
        [--zero-masked-blocks] [--trust-source]

Source layout: a ResNet/ResNeXt whose bottleneck ``conv2`` is three convs
with summed outputs, its channels split into P = 4 contiguous parts (per
group for ResNeXt, G groups):

- ``conv2.gwconv.weight``: groups 4G, dilation 2: out part j reads in part j;
- ``conv2.gwconv_shift.weight``: groups 4G, dilation 4, on the input with
  its two channel halves (of each group) swapped: out part j reads in part
  (j + 2) % 4;
- ``conv2.conv.weight``: groups G, dilation 1, whose blocks [out part j,
  in part j] and [out part (j + 2) % 4, in part j] are zero: out part j
  reads in parts (j + 1) % 4 and (j + 3) % 4.

So the kernel from in part i to out part j has rate ``(2, 1, 4, 1)[(i - j)
% 4]``. msdet's PSConv has one dense weight whose kernel from an input
channel of residue r to an output channel of residue q has rate
``pattern[(r - q) % 4]`` (pattern (1, 2, 1, 4)); where residue r's m-th
channel sits is the layer's layout (``PSConv2d.residue_channels``). With
``s`` such that ``pattern[(o + s) % 4] == (2, 1, 4, 1)[o]`` (s = 1), release
channel ``m`` of part ``p`` (inside its group) becomes msdet's m-th channel
of residue

    input  (conv2's in,  = conv1's out):  (p + s) % 4
    output (conv2's out, = conv3's in):   p

so ``(r - q) % 4 = (i + s - j) % 4`` and every kernel keeps its rate. The
merged weight is permuted accordingly, and the permutations are folded into
the neighbours: conv1's output rows and bn1 (input permutation), bn2 and
conv3's input columns (output permutation). Every block then computes
exactly the release's function (eval and train mode); nothing else moves.

Exact when the conv's masked blocks are zero, as the release's PSConv2d
keeps them. The release's grouped PSGConv2d (as published) indexes its mask
by ``i + j * groups`` instead of ``j * 4 + i``, so unless groups is 1 or 4
most masked blocks may have been trained; such a block adds a rate-1 kernel
on top of a rate-2 or rate-4 one, which one PSConv weight cannot hold. The
converter checks every block and refuses such a checkpoint, naming the
tensors; ``--zero-masked-blocks`` drops those kernels instead (reported;
``meta['equivalence']['kind']`` is then ``'approximate'``).

msdet configs that dilate stages (``dilations``, e.g. DeepLab) scale every
rate; the release has no such setting, so equality holds for dilations 1.
"""
import re

import torch

from msdet.models.backbones import PSResNet
from msdet.models.converters import (ConversionError, Converter,
                                     infer_resnet_cfg)
from msdet.utils.cli import run_tool

PARTS = 4
#: Rate of the release's kernels [out part j, in part (j + o) % 4], by o:
#: gwconv (2), conv (1), gwconv_shift (4), conv (1).
RELEASE_RATES = (2, 1, 4, 1)


def rate_shift(pattern):
    """``s`` with ``pattern[(o + s) % t] == RELEASE_RATES[o]`` for all o."""
    pattern = tuple(pattern)
    for s in range(len(pattern)):
        if len(pattern) == PARTS and all(
                pattern[(o + s) % PARTS] == r
                for o, r in enumerate(RELEASE_RATES)):
            return s
    raise ConversionError(
        f'msdet PSConv pattern {pattern} cannot hold the release rates '
        f'{RELEASE_RATES} (by offset of in part to out part); use the '
        'default pattern (1, 2, 1, 4).')


def channel_dest(conv, channels, shift):
    """msdet index of each of the ``channels`` release channels on one side
    of ``conv`` (msdet's PSConv2d; ``shift`` = s for its input, 0 for its
    output)."""
    n = channels // conv.groups
    a = n // PARTS
    idx = torch.arange(channels)
    group, local = idx // n, idx % n
    part, pos = local // a, local % a
    return group * n + conv.residue_channels(n)[(part + shift) % PARTS, pos]


def merged_weight(prefix, gw, gw_shift, conv, groups, zero_masked, src):
    """The release's three kernels of conv2 in one dense weight, in the
    release's channel order; checks the masked blocks are zero."""
    cout, n = conv.shape[:2]
    b, a = cout // (groups * PARTS), n // PARTS
    want = (cout, a) + tuple(conv.shape[2:])
    for name, w in (('gwconv', gw), ('gwconv_shift', gw_shift)):
        if tuple(w.shape) != want:
            raise ConversionError(
                f'{prefix}.{name}.weight has shape {tuple(w.shape)}; with '
                f'{prefix}.conv.weight {tuple(conv.shape)} and groups='
                f'{groups} the release has {want}.')
    merged = conv.clone()
    nonzero, peak = 0, 0.0
    for g in range(groups):
        for j in range(PARTS):
            rows = slice((g * PARTS + j) * b, (g * PARTS + j + 1) * b)
            for i, w in ((j, gw), ((j + 2) % PARTS, gw_shift)):
                cols = slice(i * a, (i + 1) * a)
                block = merged[rows, cols]
                if block.any():
                    nonzero += 1
                    peak = max(peak, block.abs().max().item())
                merged[rows, cols] = w[rows]
    if nonzero:
        msg = (f'{prefix}.conv.weight: {nonzero} of {2 * PARTS * groups} '
               'blocks that the release masks (out part j, in parts j and '
               f'(j + 2) % 4) are nonzero (max |w| = {peak:.3g}); their '
               'rate-1 kernels overlap the rate-2/4 kernels')
        if not zero_masked:
            raise ConversionError(
                msg + '. Not representable exactly; --zero-masked-blocks '
                'drops them (an approximation).')
        src.note(msg + ': dropped (--zero-masked-blocks).')
    return merged


def target_cfg(source, args):
    cfg = infer_resnet_cfg(source, PSResNet.arch_settings, 'PSResNet',
                           'layer1.0.conv2.conv.weight')
    return dict(type='PSResNeXt' if 'groups' in cfg else 'PSResNet', **cfg,
                ps_cfg=dict(pattern=(1, 2, 1, 4)))


def make_rule(target, args):
    block_re = re.compile(r'^(layer\d+\.\d+)\.(conv1\.weight|bn1\.\w+|'
                          r'conv2\.weight|bn2\.\w+|conv3\.weight)$')
    dests = {}

    def block_dest(prefix):
        if prefix not in dests:
            conv2 = target.get_submodule(prefix).conv2
            s = rate_shift(conv2.pattern)
            c, g = conv2.in_channels, conv2.groups
            dests[prefix] = (channel_dest(conv2, c, s),
                             channel_dest(conv2, conv2.out_channels, 0),
                             c // g, g)
        return dests[prefix]

    def rule(key, src):
        m = block_re.match(key)
        if not m or key.endswith('num_batches_tracked'):
            return src.take(key)
        prefix, name = m.groups()
        in_dest, out_dest, n, groups = block_dest(prefix)
        if name == 'conv2.weight':
            gw, gw_shift, conv = src.take_all(
                f'{prefix}.conv2.{k}.weight'
                for k in ('gwconv', 'gwconv_shift', 'conv'))
            if conv.shape[0] != len(out_dest) or conv.shape[1] != n:
                raise ConversionError(
                    f'{prefix}.conv2.conv.weight has shape '
                    f'{tuple(conv.shape)}; msdet has {len(out_dest)} '
                    f'channels in {groups} groups.')
            w = merged_weight(f'{prefix}.conv2', gw, gw_shift, conv, groups,
                              args.zero_masked_blocks, src)
            w = torch.empty_like(w).index_copy_(0, out_dest, w)
            return torch.empty_like(w).index_copy_(1, in_dest[:n], w)
        value = src.take(key)
        if name.startswith('conv3'):  # its input columns = conv2's output
            dim, dest = 1, out_dest
        elif name.startswith(('conv1', 'bn1')):  # = conv2's input
            dim, dest = 0, in_dest
        else:  # bn2: conv2's output
            dim, dest = 0, out_dest
        if value.shape[dim] != len(dest):
            return value  # the shape check reports it
        return torch.empty_like(value).index_copy_(dim, dest, value)

    return rule


def equivalence(args, src):
    if src.notes:
        return dict(kind='approximate', statement=(
            'masked conv blocks were nonzero and dropped '
            '(--zero-masked-blocks): an approximation of the release, '
            'fine-tune it.'))
    return dict(kind='exact', statement=(
        'same function as the release (PSConv pattern (1, 2, 1, 4), '
        'dilations 1): its three conv2 kernels merged into one PSConv '
        'weight, channel permutations folded into conv1/bn1 and bn2/conv3.'))


def add_arguments(parser):
    parser.add_argument(
        '--zero-masked-blocks', action='store_true',
        help='drop nonzero weights in the blocks the release masks '
        "(grouped checkpoints trained with the release's mask indexing); "
        'the result is then an approximation')


CONVERTER = Converter(
    layout='PSConv release (conv2.gwconv / gwconv_shift / conv)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    add_arguments=add_arguments)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
