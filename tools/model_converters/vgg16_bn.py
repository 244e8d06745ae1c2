"""VGG-BN checkpoints (torchvision keys; US-Net / MutualNet and slimmable
networks releases) -> msdet SlimmableVGG.

    python tools/model_converters/vgg16_bn.py SRC DST
        [--widths W [W ...]] [--switchable-bn] [--trust-source]

Source layouts, all with torchvision's ``vgg16_bn`` layer indices (likewise
``vgg11_bn``, ``vgg13_bn``, ``vgg19_bn``): ``features`` holds, per conv, a
3x3 conv with bias (``features.{i}.weight``, ``.bias``), its BN at
``features.{i + 1}`` and a ReLU, a max-pool ending each stage (VGG-16: convs
at 0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40); ``classifier.*`` (the
fully connected head) is dropped and reported. The depth is read from the
convs' indices, the width (``base_channels``) from the first conv. A VGG
without BN (``vgg16``) has its convs elsewhere and does not convert. The
BN is read from the keys:

- torchvision: one BN per conv (``weight``, ``bias``, ``running_mean``,
  ``running_var``, ``num_batches_tracked``).
- US-Net / MutualNet (the releases' ``USBatchNorm2d``, as the MutualNet
  paper's slimmable VGG-16 pre-training used, appendix A.2): the BN's affine
  ``weight`` / ``bias`` shared by all widths, no running statistics of its
  own (``track_running_stats=False``), and statistics-only BNs
  ``bn.{k}.running_mean``, ``.running_var``, ``.num_batches_tracked``, one
  per width ``k`` of the training's ``width_mult_list``, of
  ``make_divisible(C * w)`` channels. At any other width the release
  normalises with batch statistics (its eval mode only runs listed widths).
- slimmable networks (``SwitchableBatchNorm2d``): one complete BN per
  width, ``bn.{k}.weight``, ``.bias``, ``.running_*``.

The per-width layouts need ``--widths``: the release's ``width_mult_list``
in its order (``bn.{k}`` is the k-th width). Checkpoints as the releases'
``train.py`` saves them (``{'model': DataParallel state_dict, 'optimizer':
..., 'last_epoch': ...}``, keys with ``module.``) are read as they are.

Targets and what they compute:

- torchvision -> ``SlimmableVGG`` (shared BN): every tensor loads unchanged;
  at width 1.0 the backbone computes the source's pool2..pool5 features
  exactly. Narrower widths use the first channels of every layer, which the
  ImageNet model was not trained for: re-estimate BN statistics per width
  (``msdet.engine.recalibrate_bn``) and train slimmably.
- US-Net -> ``SlimmableVGG`` (shared BN, what the MutualNet configs use):
  the shared affine, and the statistics of the widest listed width (1.0).
  The release's function in train mode (batch statistics) at every width,
  and in eval mode at width 1.0. The other widths' statistics are dropped
  (reported): msdet re-estimates them per (width, input scale) with
  ``recalibrate_bn`` (post-statistics, MutualNet 3.1).
- US-Net with ``--switchable-bn`` -> ``SlimmableVGG(switchable_bn=widths)``:
  one private BN per listed width, its affine the first channels of the
  shared one, its statistics the width's: the release's function at every
  listed width, train and eval mode (only those widths run).
- slimmable -> ``SlimmableVGG(switchable_bn=widths)``, BN for BN: the
  release's function at every listed width.

Channel counts follow the releases' rounding (``msdet.ops.make_divisible``),
so ``bn.{k}`` has exactly the width's channels; a width that does not fit is
reported as a shape error.
"""
import re

from msdet.models.backbones import SlimmableVGG
from msdet.models.converters import (CLASSIFIER, ConversionError, Converter,
                                     source_shape)
from msdet.ops import SlimmableConv2d
from msdet.utils.cli import run_tool

DROP = {'classifier.': CLASSIFIER['fc.']}
_WEIGHT_RE = re.compile(r'^features\.(\d+)\.weight$')
_PER_WIDTH_RE = re.compile(r'^features\.(\d+)\.bn\.(\d+)\.(\w+)$')
#: Layouts of the BN keys (``bn_layout``).
TORCHVISION, USNET, SLIMMABLE = 'torchvision', 'US-Net', 'slimmable'


def conv_indices(stages):
    """``features`` indices of the convs of VGG-BN with ``stages`` convs per
    stage (conv, BN, ReLU each; a max-pool per stage)."""
    indices, i = [], 0
    for n in stages:
        indices += range(i, i + 3 * n, 3)
        i += 3 * n + 1
    return indices


def bn_layout(source):
    """``TORCHVISION``, ``USNET`` (per-width statistics only) or
    ``SLIMMABLE`` (per-width BNs), read from the BN keys."""
    names = {m.group(3) for m in map(_PER_WIDTH_RE.match, source.keys())
             if m}
    if 'weight' in names:
        return SLIMMABLE
    return USNET if 'running_mean' in names else TORCHVISION


def per_width_counts(source, index):
    """Channels of ``features.{index}.bn.{k}``, k = 0, 1, ..."""
    counts = []
    while f'features.{index}.bn.{len(counts)}.running_mean' in source:
        counts.append(source.shape(
            f'features.{index}.bn.{len(counts)}.running_mean')[0])
    return counts


def _options(args):
    widths = getattr(args, 'widths', None)
    return (None if widths is None else [float(w) for w in widths],
            bool(getattr(args, 'switchable_bn', False)))


def target_cfg(source, args=None):
    convs = sorted(int(m.group(1)) for m in map(_WEIGHT_RE.match,
                                                source.keys())
                   if m and len(source.shape(m.group(0))) == 4)
    depths = [d for d, stages in SlimmableVGG.arch_settings.items()
              if conv_indices(stages) == convs]
    if not depths:
        raise ConversionError(
            f'the source has 3x3 convs at features {convs}; VGG-BN '
            'depths (conv, BN, ReLU per conv, a max-pool per stage) have '
            'them at ' + '; '.join(
                f'{d}: {conv_indices(s)}'
                for d, s in SlimmableVGG.arch_settings.items()) + '.')
    cfg = dict(type='SlimmableVGG', depth=depths[0])
    base = source_shape(source, 'features.0.weight')[0]
    if base != 64:
        cfg['base_channels'] = base
    widths, switchable = _options(args)
    layout = bn_layout(source)
    if layout == TORCHVISION:
        if widths is not None or switchable:
            raise ConversionError(
                '--widths / --switchable-bn are for per-width BN layouts '
                '(US-Net, slimmable); this source has one BN per conv '
                '(torchvision).')
        return cfg
    counts = per_width_counts(source, 1)
    if widths is None or len(widths) != len(counts):
        raise ConversionError(
            f'the source has per-width BNs ({layout} layout: features.1.bn.'
            f'{{0..{len(counts) - 1}}} with {counts} channels); give the '
            f'{len(counts)} widths they belong to, in the order of the '
            "training's width_mult_list: --widths W1 ... "
            f'(got {widths}).')
    if layout == SLIMMABLE or switchable:
        cfg['switchable_bn'] = widths
    elif max(widths) != 1.0:
        raise ConversionError(
            f'--widths {widths}: the shared BN takes the statistics of '
            'width 1.0, which the source does not have; convert with '
            '--switchable-bn (one BN per listed width).')
    if min(widths) < 0.25:  # SlimmableVGG's default range starts at 0.25
        cfg['width_range'] = (min(widths), 1.0)
    return cfg


def make_rule(target, args=None):
    """Convs and torchvision BNs keep their keys; per-width BNs map as the
    module docstring says."""
    widths, _ = _options(args)
    widest = None if widths is None else widths.index(max(widths))
    sizes = {k: tuple(v.shape) for k, v in target.state_dict().items()}

    def rule(key, src):
        parts = key.split('.')
        index = int(parts[1])
        if isinstance(target.features[index], SlimmableConv2d) or \
                f'features.{index}.running_mean' in src:
            return src.take(key)  # a conv, or a torchvision BN
        name, prefix = parts[-1], f'features.{index}'
        if parts[2] == 'bns':  # switchable_bn target: bns.{k}.{name}
            k = parts[3]
            if name in ('weight', 'bias') and f'{prefix}.{name}' in src:
                # US-Net: the shared affine's first channels
                return src.take(f'{prefix}.{name}')[:sizes[key][0]]
            return src.take(f'{prefix}.bn.{k}.{name}')
        if name in ('weight', 'bias'):  # US-Net shared affine
            return src.take(key)
        if name == 'running_mean':
            for k in range(len(widths)):
                if k != widest:
                    src.drop(f'{prefix}.bn.{k}.', (
                        f'per-width BN statistics of widths other than '
                        f'{widths[widest]}: msdet re-estimates them per '
                        '(width, input scale) with recalibrate_bn (or '
                        'convert with --switchable-bn)'))
        return src.take(f'{prefix}.bn.{widest}.{name}')

    return rule


def equivalence(args, src):
    layout = bn_layout(src)
    widths, switchable = _options(args)
    if layout == TORCHVISION:
        return dict(kind='conditional', statement=(
            "at width 1.0 the backbone computes the source's features "
            'exactly (pool2..pool5); narrower widths need BN recalibration '
            'per width (msdet.engine.recalibrate_bn) and slimmable '
            'training.'))
    if layout == SLIMMABLE or switchable:
        return dict(kind='exact', statement=(
            f"the release's function at its widths {widths} (one private "
            'BN per width; only these widths run).'))
    return dict(kind='conditional', statement=(
        "the release's function in train mode (batch statistics) at every "
        'width and in eval mode at width 1.0; the statistics of the other '
        f'widths of {widths} are dropped: re-estimate them per (width, '
        'input scale) with msdet.engine.recalibrate_bn, or convert with '
        '--switchable-bn to keep them (then only those widths run).'))


def add_arguments(parser):
    parser.add_argument(
        '--widths', nargs='+', type=float, metavar='W',
        help="per-width BN layouts: the training's width_mult_list, in its "
        'order (bn.{k} belongs to the k-th width)')
    parser.add_argument(
        '--switchable-bn', action='store_true',
        help='US-Net layout: keep every width\'s statistics as private BNs '
        '(SlimmableVGG(switchable_bn=widths)) instead of the shared BN')


CONVERTER = Converter(
    layout='VGG-BN: torchvision, US-Net / MutualNet or slimmable networks',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    drop=DROP,
    add_arguments=add_arguments)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
