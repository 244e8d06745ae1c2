"""ImageNet VGG-16-BN (torchvision keys) -> msdet SlimmableVGG.

    python tools/model_converters/vgg16_bn.py SRC DST [--trust-source]

Source layout: torchvision's ``vgg16_bn`` (likewise ``vgg11_bn``,
``vgg13_bn``, ``vgg19_bn``): ``features`` holds, per conv, a 3x3 conv with
bias (``features.{i}.weight``, ``.bias``), its BN (``features.{i + 1}.weight``,
``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``) and a
ReLU, a max-pool ending each stage (VGG-16: convs at 0, 3, 7, 10, 14, 17,
20, 24, 27, 30, 34, 37, 40); ``classifier.*`` (the fully connected head) is
dropped and reported. The depth is read from the convs' indices, the width
(``base_channels``) from the first conv. A VGG without BN (``vgg16``) has
its convs elsewhere and does not convert.

``SlimmableVGG`` has the same layers at the same indices (the full-width
network is torchvision's ``features``), so every tensor loads unchanged.

Conditional: at width 1.0 (the default) the backbone computes the source's
pool2..pool5 features exactly. Narrower widths use the first channels of
every layer, which the ImageNet model was not trained for: re-estimate the
shared BN statistics per width (``msdet.engine.recalibrate_bn``) and train
slimmably (MutualNet / US-Net pre-training). The target is the default
shared BN; ``switchable_bn`` configs have other BN keys (``...bns.{k}``).
"""
import re

from msdet.models.backbones import SlimmableVGG
from msdet.models.converters import (CLASSIFIER, ConversionError, Converter,
                                     source_shape)
from msdet.utils.cli import run_tool

DROP = {'classifier.': CLASSIFIER['fc.']}
_WEIGHT_RE = re.compile(r'^features\.(\d+)\.weight$')


def conv_indices(stages):
    """``features`` indices of the convs of VGG-BN with ``stages`` convs per
    stage (conv, BN, ReLU each; a max-pool per stage)."""
    indices, i = [], 0
    for n in stages:
        indices += range(i, i + 3 * n, 3)
        i += 3 * n + 1
    return indices


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
    return cfg


def equivalence(args, src):
    return dict(kind='conditional', statement=(
        "at width 1.0 the backbone computes the source's features exactly "
        '(pool2..pool5); narrower widths need BN recalibration per width '
        '(msdet.engine.recalibrate_bn) and slimmable training.'))


CONVERTER = Converter(
    layout='torchvision VGG-BN (ImageNet classifier)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    drop=DROP)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
