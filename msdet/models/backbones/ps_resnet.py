"""PS-ResNet and PS-ResNeXt (PSConv paper, sections 4.1 and 4.3)."""
from mmcv.cnn import build_conv_layer
from mmdet.models.backbones.resnet import ResNet
from mmdet.models.backbones.resnext import Bottleneck as _XBottleneck
from mmdet.models.backbones.resnext import ResNeXt
from mmengine.registry import MODELS

from .utils import check_resnet_args, zero_init_last_norm


class PSBottleneck(_XBottleneck):
    """ResNe(X)t bottleneck whose 3x3 conv is a PSConv (paper 4.1, 4.3).

    The 1x1 convs, norms and the shortcut are the parent's; only ``conv2`` is
    rebuilt, with the same shape, stride, dilation and groups, so parameter
    count and FLOPs equal the plain block's (paper table 2).
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


class _PSMixin:
    """Passes ``ps_cfg`` to every block; shared by PSResNet and PSResNeXt."""

    def __init__(self, depth, ps_cfg=None, init_cfg=None, **kwargs):
        check_resnet_args(type(self), depth,
                          kwargs.get('num_stages', 4),
                          kwargs.get('out_indices', (0, 1, 2, 3)),
                          kwargs.get('frozen_stages', -1), init_cfg)
        self.ps_cfg = dict(ps_cfg or {})
        super().__init__(depth=depth, init_cfg=init_cfg, **kwargs)
        zero_init_last_norm(self, init_cfg)

    def make_res_layer(self, **kwargs):
        return super().make_res_layer(ps_cfg=self.ps_cfg, **kwargs)


@MODELS.register_module()
class PSResNet(_PSMixin, ResNet):
    """PS-ResNet: mmdet's ResNet with every bottleneck 3x3 conv a PSConv.

    Stem, 1x1 convs, downsample shortcuts (and the detector's FPN) stay
    standard, as in the paper's detection experiments (section 4.3). All
    arguments of mmdet's ``ResNet`` keep their meaning; ``ps_cfg`` is passed
    to each PSConv (e.g. ``dict(pattern=(1, 2, 1, 4))``).
    """
    arch_settings = {
        50: (PSBottleneck, (3, 4, 6, 3)),
        101: (PSBottleneck, (3, 4, 23, 3)),
        152: (PSBottleneck, (3, 8, 36, 3)),
    }


@MODELS.register_module()
class PSResNeXt(_PSMixin, ResNeXt):
    """PS-ResNeXt (e.g. 101 32x4d): grouped PSConv, the cyclic pattern
    repeated in each group (paper fig. 2 right, tables 1 and 7)."""
    arch_settings = {
        50: (PSBottleneck, (3, 4, 6, 3)),
        101: (PSBottleneck, (3, 4, 23, 3)),
        152: (PSBottleneck, (3, 8, 36, 3)),
    }
