"""Plain ImageNet ResNet-50/101 (torchvision keys) -> msdet ResizableResNet
(Resizable paper 3.2): every BN copied into each of its scale-aware BNs.

    python tools/model_converters/resizable_resnet.py SRC DST
        [--factors 0.5 0.625 0.75 0.875 1.0] [--trust-source]

For torchvision-layout checkpoints (``conv1``, ``bn1``, ``layerX.Y.conv1..3``,
``bn1..3``, ``downsample.{0,1}``, ``fc``). Convs and the stem BN load
unchanged; a BN after a resize point (``layerX.Y.bnK``,
``layerX.Y.downsample.1``) becomes ``....bns.{k}`` for every factor ``k``
of ``--factors`` (the backbone config's ``resize_factors``: the number of
private BNs must match). ``fc.*`` is dropped.

Exact at factor 1.0: with all factors 1.0 the backbone computes the source
ResNet's features; other configurations start from the same BN and need
super-network training (their private BNs then diverge).
"""
from msdet.models.backbones.resizable_resnet import (DEFAULT_FACTORS,
                                                     ResizableResNet)
from msdet.models.converters import (ConversionError, Converter,
                                     infer_resnet_cfg)
from msdet.utils.cli import run_tool


def add_arguments(parser):
    parser.add_argument('--factors', nargs='+', type=float,
                        default=list(DEFAULT_FACTORS),
                        help='resize factors of every stage (one private '
                        'BN each); the config\'s resize_factors')


def target_cfg(source, args=None):
    cfg = infer_resnet_cfg(source, ResizableResNet.arch_settings,
                           'ResizableResNet')
    if 'groups' in cfg:
        raise ConversionError('ResizableResNet has no grouped (ResNeXt) '
                              'blocks; give a plain ResNet-50/101.')
    return dict(type='ResizableResNet', resize_factors=list(args.factors),
                **cfg)


def make_rule(target, args=None):
    def rule(key, src):
        if '.bns.' in key:  # layerX.Y.bn1.bns.3.weight <- layerX.Y.bn1.weight
            head, _, rest = key.partition('.bns.')
            return src.take(f"{head}.{rest.split('.', 1)[1]}").clone()
        return src.take(key)
    return rule


def equivalence(args, src):
    return dict(kind='conditional', statement=(
        'every BN copied into each scale-aware BN: with all factors 1.0 the '
        'backbone computes the source ResNet\'s features; other spatial '
        'configurations need super-network training.'))


CONVERTER = Converter(
    layout='torchvision ResNet-50/101 (ImageNet classifier)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence,
    make_rule=make_rule,
    add_arguments=add_arguments)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
