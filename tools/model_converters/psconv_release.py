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
from msdet.models.converters import Converter
from msdet.models.release.psconv import (add_arguments, backbone_cfg,
                                         backbone_rule)
from msdet.utils.cli import run_tool


def target_cfg(source, args):
    return backbone_cfg(source)


def make_rule(target, args):
    return backbone_rule(target, args.zero_masked_blocks)


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
