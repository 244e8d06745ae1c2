"""Resizable ResNet (Resizable paper, sections 3.1-3.2, appendix A.1).

A ResNet whose feature maps are resized by an arbitrary factor once per
stage: a *spatial configuration* is one factor per stage, each from that
stage's predefined list (e.g. {0.5, 0.625, 0.75, 0.875, 1.0}); all
configurations share every conv (eq. 2) and differ only in the factor each
stage's resize op G(x; s) (eq. 1, ``msdet.ops.feature_resize``) applies and
in the scale-aware BN they select (3.2).

Where the resize sits (appendix A.1: "Resize operation is place at the first
non-stride block at each stage"): on the *input* of the first block of the
stage whose stride is 1, i.e. for mmdet's ResNet (strides 1, 2, 2, 2)

- ``layer1``: before block 0 (after the stem's max-pool; the stage has no
  strided block), so the whole stage runs at ``s1``;
- ``layer2``..``layer4``: before block 1, after the stage's strided block 0
  (its 3x3 conv and its downsample shortcut halve the map as in ResNet),
  so blocks 1.. run at ``s_i`` times the strided block's output.

The resize goes on the block input, so it feeds both the residual branch
and the identity shortcut (which must have the same size). A strided block
therefore always sees the previous stage's resized map: the strided convs
keep their stride 2 and the factors compound (stage ``i`` runs at
``prod_{j<=i} s_j`` of the ResNet's resolution); FLOPs of a stage fall
with ``(prod s_j)^2``.

Scale-aware BN (3.2, "the shared convolutional layer is followed by a group
of BN layers, where the number of BN layers in this group is equal to the
number of scale factors"): every BN after the first resize point is a
``msdet.ops.SwitchableBatchNorm2d`` with one private BN per factor, keyed by
the setting ``resize{i}`` of the closest resize point before it: the BNs of
``layer{i}`` from its resize point on are keyed ``resize{i}``; those of the
strided block 0 of ``layer{i+1}`` (conv and downsample BNs) still normalise
maps whose size was last changed by stage ``i``'s resize, so they are keyed
``resize{i}`` too (the paper keys BNs per stage and does not say which
factor a strided block's BN follows; this is the choice made here). The stem
BN comes before any resize and stays one ``BatchNorm2d``.

The active configuration is set by msdet's model-wide switching mechanism,
``msdet.ops.set_subnet(model, resize1=0.5, resize2=1.0, ...)``;
``subnet_space`` lists the factors per stage. Initially every stage is at
its largest factor. With all factors 1.0 the network is exactly mmdet's
ResNet (same parameters -> same outputs, BN ``bns.{k}`` of the factor 1.0
holding the ResNet's BN; ``tools/model_converters/resizable_resnet.py``).

Detection (not covered by the paper, which resizes classifiers ending in
global pooling): with ``restore_outputs=True`` (default) every output stage
``out_indices`` is resized back (bilinear) to the size the plain ResNet
would give, so FPN, anchors and RoI extractors keep their strides
(4, 8, 16, 32) whatever the configuration; the compute saved is the
backbone's. ``restore_outputs=False`` returns the resized maps (e.g. for
FLOPs of the bare backbone as in table 1, or a classifier).
"""
from mmdet.models.backbones.resnet import Bottleneck, ResNet
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from msdet.ops.feature_resize import (check_factors, feature_resize,
                                      resize_to, spatial_size)
from msdet.ops.switchable import Switchable, SwitchableBatchNorm2d

from .base import ResNetFamily

DEFAULT_FACTORS = (0.5, 0.625, 0.75, 0.875, 1.0)


def check_stage_factors(resize_factors, num_stages, name):
    """One factor list per stage: a flat list (the same for every stage) or
    ``num_stages`` lists; each non-empty, distinct, in (0, 1]."""
    if resize_factors is None:
        resize_factors = DEFAULT_FACTORS
    try:
        items = list(resize_factors)
    except TypeError:
        raise ValueError(f'{name}: resize_factors={resize_factors!r}; '
                         'allowed: a list of factors in (0, 1] or one such '
                         f'list per stage ({num_stages}).') from None
    if items and all(isinstance(f, (list, tuple)) for f in items):
        if len(items) != num_stages:
            raise ValueError(f'{name}: resize_factors has {len(items)} '
                             f'lists for {num_stages} stages; give one list '
                             'per stage or one list for all.')
        return [check_factors(f, f'{name} stage {i + 1}')
                for i, f in enumerate(items)]
    return [check_factors(items, name)] * num_stages


@MODELS.register_module()
class ResizableResNet(ResNetFamily, ResNet, Switchable):
    """Resizable ResNet-50/101 with mmdet's ``ResNet`` interface (module
    docstring: where the resize sits, how BNs are keyed).

    All arguments of mmdet's ``ResNet`` keep their meaning. Settings:
    ``resize1`` .. ``resize{num_stages}``.

    Args:
        resize_factors (Sequence | Sequence[Sequence]): the predefined
            factors of every stage, or one list per stage; each factor in
            (0, 1]. Default (0.5, 0.625, 0.75, 0.875, 1.0) (Resizable 4.1).
        restore_outputs (bool): resize every output back to the plain
            ResNet's size (for FPN / detection heads). Default True.
    """
    arch_settings = {
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
    }

    def __init__(self, depth, resize_factors=DEFAULT_FACTORS,
                 restore_outputs=True, **kwargs):
        name = type(self).__name__
        norm_cfg = kwargs.get('norm_cfg', dict(type='BN', requires_grad=True))
        if norm_cfg.get('type') not in ('BN', 'BN2d'):
            raise ValueError(
                f"{name}: norm_cfg type {norm_cfg.get('type')!r}; scale-aware "
                "BN needs plain BatchNorm (type='BN'); one private BN per "
                'factor (paper 3.2).')
        if kwargs.get('plugins'):
            raise ValueError(f'{name}: plugins are not supported.')
        self.restore_outputs = bool(restore_outputs)
        super().__init__(depth=depth, **kwargs)
        self.factor_lists = check_stage_factors(resize_factors,
                                                self.num_stages, name)
        self.factors = [max(f) for f in self.factor_lists]
        # the block index of each stage's resize point (first stride-1 block)
        self.resize_at = []
        for i, layer_name in enumerate(self.res_layers):
            blocks = getattr(self, layer_name)
            first = next((j for j, b in enumerate(blocks)
                          if b.conv2.stride == (1, 1) and
                          b.conv1.stride == (1, 1)), None)
            if first is None:
                raise ValueError(
                    f'{name}: stage {i + 1} has no non-stride block to '
                    'place the resize at (appendix A.1); give it at least '
                    'two blocks or stride 1.')
            self.resize_at.append(first)
        self._make_scale_aware_bns(norm_cfg)

    def _make_scale_aware_bns(self, norm_cfg):
        """Replace every BN after the first resize point by a
        ``SwitchableBatchNorm2d`` keyed by the last resize before it."""
        requires_grad = norm_cfg.get('requires_grad', True)
        bn_args = {k: v for k, v in norm_cfg.items()
                   if k in ('eps', 'momentum')}
        for i, layer_name in enumerate(self.res_layers):
            for j, block in enumerate(getattr(self, layer_name)):
                if j >= self.resize_at[i]:
                    stage = i
                elif i > 0:
                    stage = i - 1  # strided block: last resize was stage i-1
                else:
                    continue  # before the first resize point
                self._swap_bns(block, stage, requires_grad, bn_args)

    def _swap_bns(self, module, stage, requires_grad, bn_args):
        for child_name, child in module.named_children():
            if isinstance(child, _BatchNorm):
                new = SwitchableBatchNorm2d(
                    child.num_features, f'resize{stage + 1}',
                    self.factor_lists[stage], eps=child.eps,
                    momentum=child.momentum, **{
                        k: v for k, v in bn_args.items()
                        if k not in ('eps', 'momentum')})
                for p in new.parameters():
                    p.requires_grad = requires_grad
                setattr(module, child_name, new)
            elif not isinstance(child, SwitchableBatchNorm2d):
                self._swap_bns(child, stage, requires_grad, bn_args)

    # --- switching --------------------------------------------------------

    def switch_space(self):
        return {f'resize{i + 1}': list(f)
                for i, f in enumerate(self.factor_lists)}

    def switch(self, **settings):
        for i in range(len(self.factor_lists)):
            value = settings.get(f'resize{i + 1}')
            if value is not None:
                self.factors[i] = float(value)

    # --- forward ----------------------------------------------------------

    def forward(self, x):
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        nominal = spatial_size(x)  # plain ResNet size
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            stride = self.strides[i]
            nominal = tuple((v - 1) // stride + 1 for v in nominal)
            for j, block in enumerate(getattr(self, layer_name)):
                if j == self.resize_at[i]:
                    x = feature_resize(x, self.factors[i])  # G(x; s_i)
                x = block(x)
            if i in self.out_indices:
                resized = any(f != 1 for f in self.factors[:i + 1])
                outs.append(resize_to(x, nominal) if self.restore_outputs
                            and resized else x)
        return tuple(outs)


def enumerate_configurations(space, stages=None):
    """Every spatial configuration of ``space`` (``subnet_space`` of a
    model), as settings dicts, optionally only of some stages' keys."""
    import itertools
    keys = sorted((k for k in space if k.startswith('resize')),
                  key=lambda k: int(k[len('resize'):]))
    if stages is not None:
        keys = [k for k in keys if k in stages]
    for values in itertools.product(*(space[k] for k in keys)):
        yield dict(zip(keys, values))


__all__ = ['ResizableResNet', 'enumerate_configurations',
           'check_stage_factors', 'DEFAULT_FACTORS']
