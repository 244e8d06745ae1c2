"""Slimmable VGG with BN (MutualNet section 4.3, appendix A.2)."""
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from msdet.ops.switchable import (SlimmableBatchNorm2d, SlimmableConv2d,
                                  SwitchableBatchNorm2d, active_channels,
                                  check_width_range)

from ...utils.validation import check_int
from .base import PretrainedMixin, check_pretrained, check_stage_args


@MODELS.register_module()
class SlimmableVGG(PretrainedMixin, BaseModule):
    """VGG-BN whose width is switched at run time (MutualNet 4.3, fig. 2).

    ``features`` has the layer order and names of torchvision's and mmcv's
    ``vgg{depth}_bn`` (per conv: 3x3 conv with bias, BN, ReLU; a 2x2 max-pool
    ends each stage), so an ImageNet ``vgg16_bn`` checkpoint's ``features.*``
    loads as is and the full-width network *is* mmcv's
    ``VGG(16, with_bn=True)``. Stage ``i`` has ``base_channels * (1, 2, 4, 8,
    8)[i]`` channels and its (pooled) output stride ``2 ** (i + 1)``; the
    default ``out_indices=(1, 2, 3, 4)`` are pool2..pool5 (after conv2_2,
    conv3_3, conv4_3, conv5_3): strides 4, 8, 16, 32 with 128, 256, 512, 512
    channels for the FPN.

    Every conv is a ``SlimmableConv2d``: the width-``w`` sub-network uses the
    first ``make_divisible(w * C, divisor)`` channels of every layer
    (section 3.2; rounded as the released slimmable ops round, e.g. 24 of 64
    channels at width 0.3), set with ``msdet.ops.set_subnet(model,
    width=w)``. The
    outputs are the narrow features; the (full-width, shared) FPN takes them
    with sliced lateral convs, ``neck=dict(type='FPN',
    conv_cfg=dict(type='SlimmableConv2d', slim_out=False))``: the lateral
    conv uses the first ``c`` input channels of its weight, which equals
    zero-filling the missing channels but costs only the narrow FLOPs.

    BN: by default one ``SlimmableBatchNorm2d`` per conv shared by all widths,
    whose statistics are re-estimated per (width, input scale) after training
    (post-statistics, section 3.1, ``msdet.engine.recalibrate_bn``); BN then
    always trains on batch statistics (``norm_eval=False``). With
    ``switchable_bn=[w1, w2, ...]`` each conv gets private BNs for these
    widths only (slimmable networks' switchable BN) and the model can only
    run those widths.

    A ``conv_cfg`` is not taken: every conv must be slimmable.

    Args:
        depth (int): 11, 13, 16 (paper) or 19.
        base_channels (int): channels of stage 0 at full width. Default 64.
        num_stages (int): 1..5 stages. Default 5.
        out_indices (Sequence[int]): stages whose pooled output is returned.
        frozen_stages (int): stages ``0..frozen_stages-1`` are frozen (eval,
            no gradient); -1 freezes none.
        norm_eval (bool): BN in eval mode while training; only with
            ``switchable_bn`` (shared BN has no per-width statistics).
        width_range (tuple): (min, max) widths, 0 < min <= max <= 1.
        divisor (int): channel counts are rounded to multiples of it
            (``msdet.ops.make_divisible``). Default 8.
        switchable_bn (Sequence[float], optional): widths with private BNs.
        norm_cfg (dict): ``dict(type='BN', requires_grad=True)``; eps and
            momentum are passed on.
        init_cfg (dict | list, optional): default Kaiming convs (mmcv VGG);
            a ``Pretrained`` checkpoint must be a local file.
    """
    arch_settings = {
        11: (1, 1, 2, 2, 2),
        13: (2, 2, 2, 2, 2),
        16: (2, 2, 3, 3, 3),
        19: (2, 2, 4, 4, 4),
    }

    def __init__(self,
                 depth=16,
                 base_channels=64,
                 num_stages=5,
                 out_indices=(1, 2, 3, 4),
                 frozen_stages=-1,
                 norm_eval=False,
                 width_range=(0.25, 1.0),
                 divisor=8,
                 switchable_bn=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 init_cfg=None):
        name = type(self).__name__
        check_stage_args(name, depth, self.arch_settings, num_stages, 5,
                         out_indices, frozen_stages)
        check_int(name, 'base_channels', base_channels, 1)
        width_range = check_width_range(width_range, name)
        bn_kwargs, bn_grad = self._check_norm(name, norm_cfg, norm_eval,
                                              switchable_bn, width_range)
        check_pretrained(name, init_cfg)
        super().__init__(
            init_cfg=init_cfg or dict(type='Kaiming', layer='Conv2d'))
        self.depth, self.out_indices = depth, tuple(out_indices)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval

        layers, self.stage_ranges = [], []
        in_channels = 3
        for i, num_convs in enumerate(self.arch_settings[depth][:num_stages]):
            planes = base_channels * min(2**i, 8)
            start = len(layers)
            for _ in range(num_convs):
                layers += [
                    SlimmableConv2d(in_channels, planes, 3, padding=1,
                                    width_range=width_range, divisor=divisor),
                    self._norm(planes, switchable_bn, divisor, bn_kwargs),
                    nn.ReLU(inplace=True)
                ]
                in_channels = planes
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            self.stage_ranges.append((start, len(layers)))
        self.features = nn.Sequential(*layers)
        if not bn_grad:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.requires_grad_(False)

    @staticmethod
    def _check_norm(name, norm_cfg, norm_eval, switchable_bn, width_range):
        cfg = dict(norm_cfg)
        norm_type = cfg.pop('type', None)
        if norm_type not in ('BN', 'BN2d'):
            raise ValueError(f'{name}: norm_cfg type {norm_type!r}; only '
                             "'BN' (width-sliced or switchable BatchNorm2d).")
        requires_grad = cfg.pop('requires_grad', True)
        if switchable_bn is not None:
            widths = list(switchable_bn)
            if not widths or any(w not in width_range for w in widths) \
                    or len(set(widths)) != len(widths):
                raise ValueError(
                    f'{name}: switchable_bn={switchable_bn!r}; allowed: a '
                    'non-empty list of distinct widths within width_range='
                    f'{tuple(width_range)}.')
        elif norm_eval:
            raise ValueError(
                f'{name}: norm_eval=True freezes BN statistics shared by all '
                'widths, which are only valid after recalibration; use '
                'norm_eval=False, or switchable_bn=[widths] for private BNs.')
        return cfg, requires_grad

    @staticmethod
    def _norm(planes, switchable_bn, divisor, bn_kwargs):
        if switchable_bn is None:
            return SlimmableBatchNorm2d(planes, **bn_kwargs)
        return SwitchableBatchNorm2d(
            [active_channels(planes, w, divisor) for w in switchable_bn],
            key='width', choices=switchable_bn, **bn_kwargs)

    def forward(self, x):
        outs = []
        for i, (start, end) in enumerate(self.stage_ranges):
            for j in range(start, end):
                x = self.features[j](x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        for start, end in self.stage_ranges[:max(self.frozen_stages, 0)]:
            for j in range(start, end):
                self.features[j].eval()
                for p in self.features[j].parameters():
                    p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
