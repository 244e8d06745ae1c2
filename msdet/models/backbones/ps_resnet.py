"""PS-ResNet and PS-ResNeXt (PSConv paper, sections 4.1 and 4.3)."""
from mmcv.cnn import build_conv_layer
from mmdet.models.backbones.resnet import ResNet
from mmdet.models.backbones.resnext import Bottleneck as _XBottleneck
from mmdet.models.backbones.resnext import ResNeXt
from mmengine.registry import MODELS

from .base import ResNetFamily


class PSBottleneck(_XBottleneck):
    """ResNe(X)t bottleneck whose 3x3 conv is a PSConv (paper 4.1, 4.3).

    The 1x1 convs, norms and the shortcut are the parent's; only ``conv2`` is
    rebuilt, with the same shape, stride, dilation and groups, so parameter
    count and FLOPs equal the plain block's (paper table 2).

    Args:
        ps_cfg (dict, optional): arguments of the PSConv, e.g.
            ``dict(pattern=(1, 2, 1, 4))`` (the default).
    """

    def __init__(self, inplanes, planes, groups=1, ps_cfg=None, **kwargs):
        if kwargs.get('dcn') is not None:
            raise ValueError('PSBottleneck: dcn replaces the 3x3 conv that '
                             'PSConv replaces; use one or the other '
                             '(dcn=None).')
        super().__init__(inplanes, planes, groups=groups, **kwargs)
        width = self.conv2.in_channels
        self.conv2 = build_conv_layer(
            dict(type='PSConv', **(ps_cfg or {})),
            width,
            width,
            kernel_size=3,
            stride=self.conv2_stride,
            padding=self.dilation,
            dilation=self.dilation,
            groups=groups,
            bias=False)


class _PSResNetFamily(ResNetFamily):
    """Gives ``ps_cfg`` to every block; shared by PSResNet and PSResNeXt."""
    arch_settings = {
        50: (PSBottleneck, (3, 4, 6, 3)),
        101: (PSBottleneck, (3, 4, 23, 3)),
        152: (PSBottleneck, (3, 8, 36, 3)),
    }

    def __init__(self, depth, ps_cfg=None, **kwargs):
        self.ps_cfg = dict(ps_cfg or {})
        super().__init__(depth=depth, **kwargs)

    def block_args(self, stage, num_blocks, **stage_args):
        return [dict(ps_cfg=self.ps_cfg)] * num_blocks


@MODELS.register_module()
class PSResNet(_PSResNetFamily, ResNet):
    """PS-ResNet: mmdet's ResNet with every bottleneck 3x3 conv a PSConv.

    Stem, 1x1 convs, downsample shortcuts (and the detector's FPN) stay
    standard, as in the paper's detection experiments (section 4.3). All
    arguments of mmdet's ``ResNet`` keep their meaning; ``ps_cfg`` is passed
    to each PSConv (e.g. ``dict(pattern=(1, 2, 1, 4))``).
    """


@MODELS.register_module()
class PSResNeXt(_PSResNetFamily, ResNeXt):
    """PS-ResNeXt (e.g. 101 32x4d): grouped PSConv, the cyclic pattern
    repeated in each group (paper fig. 2 right, tables 1 and 7)."""
