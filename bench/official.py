"""The official forms of ScaleNet-50 and Elastic-ResNeXt-50, rebuilt in plain
torch from an msdet backbone's weights, for timing msdet's implementation
against the released designs' own computation.

Each rebuild computes what the authors' release computes, op for op, with
msdet's tensors (copied, split where the release keeps two modules for one
of msdet's) and returns the four stage outputs as msdet's backbones do:

- ``OfficialElasticResNeXt`` (allenai/elastic ``models/resnext.py``): every
  bottleneck holds two halves of the paths, each with its own 1x1, grouped
  3x3 (half the groups) and 1x1 convs and BNs; in an Elastic block the
  second half runs on the input 2x2 average-pooled (``nn.AvgPool2d``, odd
  sides replicate-padded first) and is upsampled by ``nn.Upsample``
  (bilinear, x2) and cropped; a block that is not Elastic runs both halves
  at full resolution. The two ``conv3`` outputs are summed before ``bn3``.
- ``OfficialScaleNet`` (Eli-YiLi/ScaleNet ``pytorch/scalenet.py``): a strided
  block max-pools its input (rounding down); each scale max-pools by its
  factor (``F.max_pool2d``), convolves, upsamples (nearest where the sizes
  divide, else bilinear) and has its own BN; the scales are concatenated
  and then ReLU'd.

``official(model)`` picks the rebuild. The rebuilds compute the same
function as msdet's backbone in eval and train mode (ScaleNet: with
``resample='release'``, or any ``resample`` where every pooled side divides
its map; tests/test_bench_blocks.py).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from msdet.models.backbones import ElasticResNeXt, ScaleNet


def _conv_slice(conv, out=None, inp=None, groups=None):
    """A plain ``nn.Conv2d`` holding ``conv.weight[out][:, inp]``."""
    w = conv.weight
    w = w[out] if out is not None else w
    w = w[:, inp] if inp is not None else w
    new = nn.Conv2d(
        (w.shape[1] * (groups or conv.groups)), w.shape[0],
        conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        groups or conv.groups, bias=False)
    new.weight.data.copy_(w)
    return new


def _bn_slice(bn, sl):
    new = nn.BatchNorm2d(bn.weight[sl].numel(), bn.eps, bn.momentum)
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        getattr(new, name).data.copy_(getattr(bn, name)[sl])
    new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def _stem(model):
    """mmdet ResNet's stem (7x7 conv stem, no deep stem) as the releases
    build it: conv1, bn1, ReLU, 3x3 stride-2 max pool."""
    return nn.Sequential(copy.deepcopy(model.conv1),
                         copy.deepcopy(model.norm1), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1))


def _downsample(block):
    return None if block.downsample is None else copy.deepcopy(
        block.downsample)


class OfficialElasticBlock(nn.Module):
    """The release's ``BottleneckX`` with ``block``'s weights: the paths
    split into the high half (msdet's ``conv1``... of an Elastic block, the
    first half of a plain block's channels) and the ``_d`` half."""

    def __init__(self, block):
        super().__init__()
        self.elastic = block.elastic
        if block.elastic:
            high = [block.conv1, block.norm1, block.conv2, block.norm2,
                    block.conv3]
            low = [block.conv1_low, block.norm1_low, block.conv2_low,
                   block.norm2_low, block.conv3_low]
            high = [copy.deepcopy(m) for m in high]
            low = [copy.deepcopy(m) for m in low]
        else:  # the release's two full-resolution halves
            width, groups = block.conv2.out_channels, block.conv2.groups
            a, b = slice(0, width // 2), slice(width // 2, width)
            high, low = [
                [_conv_slice(block.conv1, out=s),
                 _bn_slice(block.norm1, s),
                 _conv_slice(block.conv2, out=s, groups=groups // 2),
                 _bn_slice(block.norm2, s),
                 _conv_slice(block.conv3, inp=s)] for s in (a, b)]
        (self.conv1, self.bn1, self.conv2, self.bn2, self.conv3) = high
        (self.conv1_d, self.bn1_d, self.conv2_d, self.bn2_d,
         self.conv3_d) = low
        self.bn3 = copy.deepcopy(block.norm3)
        self.selayer = copy.deepcopy(block.se_layer)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(block)
        if self.elastic:
            self.down = nn.AvgPool2d(2, stride=2)
            self.ups = nn.Upsample(scale_factor=2, mode='bilinear',
                                   align_corners=False)

    def forward(self, x):
        residual = x
        out_d = x
        if self.elastic:
            if x.size(2) % 2 or x.size(3) % 2:
                out_d = F.pad(out_d, (0, x.size(3) % 2, 0, x.size(2) % 2),
                              mode='replicate')
            out_d = self.down(out_d)
        out_d = self.relu(self.bn1_d(self.conv1_d(out_d)))
        out_d = self.relu(self.bn2_d(self.conv2_d(out_d)))
        out_d = self.conv3_d(out_d)
        if self.elastic:
            out_d = self.ups(out_d)
            if out_d.size(2) > x.size(2) or out_d.size(3) > x.size(3):
                out_d = out_d[:, :, :x.size(2), :x.size(3)]
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.conv3(out)
        out = out + out_d
        out = self.bn3(out)
        if self.selayer is not None:
            out = self.selayer(out)
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class OfficialSABlock(nn.Module):
    """The release's ``SABlock`` with ``block``'s weights: one BN per scale
    (msdet's ``norm2`` split by scale)."""

    def __init__(self, block):
        super().__init__()
        sa = block.conv2
        self.stride = block.pool.kernel_size if block.pool else 1
        self.downsample = _downsample(block)
        self.conv1 = copy.deepcopy(block.conv1)
        self.bn1 = copy.deepcopy(block.norm1)
        self.scales = sa.scales
        self.conv2 = nn.ModuleList()
        self.bn2 = nn.ModuleList()
        start = 0
        for i, c in enumerate(sa.branch_channels):
            conv = sa.branches[str(i)] if c else None
            self.conv2.append(copy.deepcopy(conv))
            self.bn2.append(
                _bn_slice(block.norm2, slice(start, start + c)) if c else
                None)
            start += c
        self.conv3 = copy.deepcopy(block.conv3)
        self.bn3 = copy.deepcopy(block.norm3)

    def forward(self, x):
        if self.stride > 1:
            x = F.max_pool2d(x, self.stride, self.stride)
        residual = self.downsample(x) if self.downsample is not None else x
        out1 = F.relu(self.bn1(self.conv1(x)))
        size = [out1.size(2), out1.size(3)]
        outs = []
        for s, conv, bn in zip(self.scales, self.conv2, self.bn2):
            if conv is None:
                continue
            y = out1 if s == 1 else F.max_pool2d(out1, s, s)
            y = conv(y)
            if s != 1:
                mode = 'nearest' if (size[0] % y.shape[2] == 0 and
                                     size[1] % y.shape[3] == 0) else \
                    'bilinear'
                y = F.interpolate(y, size=size, mode=mode)
            outs.append(bn(y))
        out2 = F.relu(torch.cat(outs, 1))
        out3 = self.bn3(self.conv3(out2))
        out3 += residual
        return F.relu(out3)


class _Official(nn.Module):
    """Stem, then the stages of rebuilt blocks; the stage outputs of
    ``out_indices`` and the ``norm_eval`` of the backbone."""

    def __init__(self, model, block_cls):
        super().__init__()
        self.stem = _stem(model)
        self.stages = nn.ModuleList(
            nn.Sequential(*map(block_cls, getattr(model, name)))
            for name in model.res_layers)
        self.out_indices = tuple(model.out_indices)
        self.norm_eval = model.norm_eval
        self.train(model.training)

    def train(self, mode=True):
        """As mmdet's ResNet: BN stays in eval mode with ``norm_eval``."""
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class OfficialElasticResNeXt(_Official):

    def __init__(self, model):
        super().__init__(model, OfficialElasticBlock)


class OfficialScaleNet(_Official):

    def __init__(self, model):
        super().__init__(model, OfficialSABlock)


def official(model):
    """The official form of an msdet ``ElasticResNeXt`` or ``ScaleNet``
    (7x7 stem, mmdet's default options), with its weights."""
    if model.deep_stem or getattr(model, 'avg_down', False):
        raise ValueError('official(): the releases use the 7x7 stem and '
                         'no avg_down.')
    if isinstance(model, ElasticResNeXt):
        return OfficialElasticResNeXt(model)
    if isinstance(model, ScaleNet):
        return OfficialScaleNet(model)
    raise TypeError(f'official(): no official form of '
                    f'{type(model).__name__}; allowed ElasticResNeXt, '
                    'ScaleNet.')
