"""Plain ImageNet ResNet / ResNeXt (torchvision keys) -> msdet PSResNet /
PSResNeXt: a WARM START, not an equivalent model.

    python tools/model_converters/torchvision_resnet.py SRC DST
        [--trust-source]

For ResNet-50/101(/152) and ResNeXt (e.g. 101 32x4d) checkpoints in
torchvision's key layout (``conv1``, ``bn1``, ``layerX.Y.conv1..3``,
``bn1..3``, ``downsample.{0,1}``, ``fc``). Depth, groups and base width are
read from the shapes (groups > 1 gives ``PSResNeXt``). PS-ResNet has the
same keys and shapes as mmdet's ResNet, so every tensor loads unchanged;
``fc.*`` (the classifier) is dropped and reported.

Warm start: each 3x3 conv becomes a PSConv whose kernels use dilation rates
(1, 2, 1, 4) instead of 1, so the model computes a different function from
the source (and from the PSConv paper's ImageNet-trained PS-ResNets):
fine-tune it. Only with ``ps_cfg=dict(pattern=(1, ))`` (every rate 1, a
plain conv) does the converted backbone reproduce the source.
"""
from msdet.models.backbones import PSResNet
from msdet.models.converters import Converter, infer_resnet_cfg
from msdet.utils.cli import run_tool


def target_cfg(source, args=None):
    cfg = infer_resnet_cfg(source, PSResNet.arch_settings, 'PSResNet')
    return dict(type='PSResNeXt' if 'groups' in cfg else 'PSResNet', **cfg)


def equivalence(args, src):
    return dict(kind='warm start', statement=(
        'plain 3x3 weights loaded into PSConvs (rates 1, 2, 1, 4): a '
        'different function from the source; fine-tune it. (Identical '
        'only with ps_cfg=dict(pattern=(1, )), a plain conv.)'))


CONVERTER = Converter(
    layout='torchvision ResNet/ResNeXt (ImageNet classifier)',
    description=__doc__,
    target_cfg=target_cfg,
    equivalence=equivalence)


def main(argv=None):
    return CONVERTER.main(argv)


if __name__ == '__main__':
    run_tool(main)
