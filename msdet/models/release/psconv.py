"""The PSConv release's backbones (d-li14/PSConv, an mmdet 1.x fork:
``mmdet/models/utils/psconv.py``) -> msdet's ``PSResNet`` / ``PSResNeXt``.
The layout and the mapping are described in
``tools/model_converters/psconv_release.py``; its detectors' checkpoints
(``backbone.*`` keys) use the same rule through
``psconv_detector_release.py``."""
import re

import torch

from ..backbones import PSResNet
from ..converters import ConversionError, infer_resnet_cfg

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


def backbone_cfg(source):
    """The ``PSResNet`` / ``PSResNeXt`` config of the release backbone
    ``source`` (its keys without a prefix)."""
    cfg = infer_resnet_cfg(source, PSResNet.arch_settings, 'PSResNet',
                           'layer1.0.conv2.conv.weight')
    return dict(type='PSResNeXt' if 'groups' in cfg else 'PSResNet', **cfg,
                ps_cfg=dict(pattern=(1, 2, 1, 4)))


def backbone_rule(target, zero_masked=False):
    """``rule(key, src)`` for every key of the built backbone ``target``:
    the three conv2 kernels merged into one PSConv weight, the channel
    permutations folded into conv1/bn1 and bn2/conv3; ``zero_masked``:
    drop nonzero masked kernels (reported) instead of refusing them."""
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
                              zero_masked, src)
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


def add_arguments(parser):
    """The command-line option of the converters that read the release's
    backbone (``psconv_release.py``, ``psconv_detector_release.py``)."""
    parser.add_argument(
        '--zero-masked-blocks', action='store_true',
        help='drop nonzero weights in the blocks the release masks '
        "(grouped checkpoints trained with the release's mask indexing); "
        'the result is then an approximation')
