"""Run-time switchable layers and the one mechanism that switches a model.

A sub-network is chosen by *settings* (e.g. ``width=0.5``) applied to every
:class:`Switchable` module of a model by :func:`set_subnet`; what a model can
switch is :func:`subnet_space`. Width follows US-Net / MutualNet (MutualNet
section 3.2, "W_{0:w}"): a sub-network of width ``w`` uses the first
``make_divisible(w * C)`` channels of every slimmable layer, weights shared,
with the channel rounding of the released slimmable ops (US-Net, MutualNet).
Other users add their own keys: a module declares ``{key: allowed}`` in
``switch_space`` and reads the value in ``switch`` (e.g. a Resizable ResNet
declares one resize factor per stage, and its scale-aware BN is a
:class:`SwitchableBatchNorm2d` keyed by that stage's factor).

An allowed set is a :class:`Range` ``(low, high)`` (closed interval) or a
``list`` of discrete values; where several modules declare the same key, the
model allows the intersection.

Layers whose *input* width follows the incoming tensor (every layer here)
need no setting for it: only output widths are switched.
"""
import math
from collections import namedtuple
from typing import Dict, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ..utils.validation import check_int


class Range(namedtuple('Range', ['low', 'high'])):
    """Closed interval of allowed values of a continuous setting."""

    def __contains__(self, value):
        return self.low <= value <= self.high


Allowed = Union[Range, list]


def make_divisible(value: float, divisor: int = 8, min_value: int = 1) -> int:
    """The channel rounding of the released slimmable ops (US-Net and
    MutualNet, after TF-slim's MobileNet): ``value`` rounded to the nearest
    multiple of ``divisor`` (ties up), at least ``min_value`` (1), plus one
    more ``divisor`` where rounding lost more than 10% of ``value``. So
    widths may get counts that are not multiples of ``divisor``: 64 channels
    at width 0.05 (3.2) give 9, at 0.3 (19.2) 24."""
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def active_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels of a ``channels``-wide layer at ``width`` (MutualNet 3.2):
    ``make_divisible(channels * width, divisor)``, at most ``channels``
    (reached only where ``channels`` is not a multiple of ``divisor``)."""
    return min(channels, make_divisible(channels * width, divisor))


def check_width_range(width_range, name: str) -> Range:
    """``(min, max)`` with ``0 < min <= max <= 1``, else one clear error."""
    try:
        low, high = (float(w) for w in width_range)
    except (TypeError, ValueError):
        raise ValueError(f'{name}: width_range={width_range!r}; allowed: '
                         '(min, max) with 0 < min <= max <= 1.') from None
    if not 0 < low <= high <= 1:
        raise ValueError(f'{name}: width_range={tuple(width_range)!r}; '
                         'allowed: (min, max) with 0 < min <= max <= 1.')
    return Range(low, high)


def is_allowed(value, allowed: Allowed) -> bool:
    """Whether ``value`` lies in a :class:`Range` or equals a listed value."""
    if isinstance(allowed, Range):
        return isinstance(value, (int, float)) and value in allowed
    return any(_same(value, a) for a in allowed)


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _intersect(a: Allowed, b: Allowed) -> Allowed:
    if isinstance(a, Range) and isinstance(b, Range):
        return Range(max(a.low, b.low), min(a.high, b.high))
    if isinstance(a, Range):
        a, b = b, a
    return [v for v in a if is_allowed(v, b)]


class Switchable:
    """Mixin for modules with run-time settings (see the module docstring).

    ``switch_space()`` returns ``{key: Range | list}``; ``switch(**settings)``
    is called by :func:`set_subnet` with validated values of its own keys.
    """

    def switch_space(self) -> Dict[str, Allowed]:
        raise NotImplementedError

    def switch(self, **settings) -> None:
        raise NotImplementedError


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DDP / EMA / other wrappers that hold the model as ``.module``."""
    while isinstance(getattr(model, 'module', None), nn.Module):
        model = model.module
    return model


def subnet_space(model: nn.Module) -> Dict[str, Allowed]:
    """What ``model`` can switch, e.g. ``{'width': Range(0.25, 1.0)}``; an
    empty dict for a plain model."""
    space: Dict[str, Allowed] = {}
    for m in unwrap_model(model).modules():
        if isinstance(m, Switchable):
            for key, allowed in m.switch_space().items():
                space[key] = (_intersect(space[key], allowed)
                              if key in space else allowed)
    return space


def set_subnet(model: nn.Module, **settings) -> None:
    """Apply ``settings`` (e.g. ``width=0.5``) to every switchable module.

    Raises ValueError naming the bad key or value and what is allowed when a
    setting is unknown to the model or out of its range. Keys not given keep
    their current value.
    """
    model = unwrap_model(model)
    space = subnet_space(model)
    for key, value in settings.items():
        if key not in space:
            raise ValueError(
                f'set_subnet: {key!r} is not a setting of '
                f'{type(model).__name__}; it can switch: '
                f'{space or "nothing (a plain model)"}.')
        allowed = space[key]
        if not is_allowed(value, allowed):
            what = (f'[{allowed.low}, {allowed.high}]'
                    if isinstance(allowed, Range) else f'one of {allowed}')
            raise ValueError(f'set_subnet: {key}={value!r} is out of range; '
                             f'allowed: {what}.')
    for m in model.modules():
        if isinstance(m, Switchable):
            own = m.switch_space()
            mine = {k: v for k, v in settings.items() if k in own}
            if mine:
                m.switch(**mine)


def check_sync_bn(cfg) -> None:
    """Refuse mmengine's ``sync_bn`` for a model with width-sliced BNs.

    In a distributed run (a launcher set) mmengine's runner replaces every
    BN by a ``SyncBatchNorm`` of its full width (``cfg.sync_bn``), which
    fails at any narrower width for :class:`SlimmableBatchNorm2d` (BN shared
    by all widths). Called by msdet's tools before the runner is built; it
    builds the model once to find such layers, and raises one
    ``ValueError`` naming them and the alternatives. Private BNs per width
    (:class:`SwitchableBatchNorm2d`, e.g. ``SlimmableVGG(switchable_bn=
    [...])``, Resizable's scale-aware BN) hold ordinary BNs, which SyncBN
    converts correctly: they are not refused.
    """
    if cfg.get('sync_bn') is None or cfg.get('launcher', 'none') == 'none':
        return  # mmengine converts nothing outside a distributed run
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model = MODELS.build(cfg.model)
    sliced = [name for name, m in model.named_modules()
              if isinstance(m, SlimmableBatchNorm2d)]
    if sliced:
        raise ValueError(
            f'sync_bn={cfg.sync_bn!r}: the runner would turn every BN into '
            'a full-width SyncBatchNorm, but this model has '
            f'{len(sliced)} width-sliced BNs shared by all widths '
            f'(SlimmableBatchNorm2d: {", ".join(sliced[:3])}'
            f'{", ..." if len(sliced) > 3 else ""}), which then fail at '
            'any narrower width. Remove sync_bn (each process normalises '
            'with its own batch statistics), or give the backbone private '
            'BNs per width (SlimmableVGG: switchable_bn=[w1, w2, ...]), '
            'which SyncBN converts correctly.')


@MODELS.register_module('SlimmableConv2d')
class SlimmableConv2d(nn.Conv2d, Switchable):
    """Conv whose sub-network of width ``w`` is ``W[:c_out, :c_in]`` (3.2).

    ``c_in`` is the channel count of the input (a prefix of ``in_channels``);
    ``c_out = active_channels(C_out, w, divisor)`` (the release's rounding,
    ``make_divisible``) when ``slim_out``, else ``C_out``. At full width it
    is exactly ``nn.Conv2d`` (same parameters, same output).
    ``slim_out=False`` gives a conv that only accepts narrow inputs, e.g. the
    FPN lateral convs behind a slimmable backbone
    (``conv_cfg=dict(type='SlimmableConv2d', slim_out=False)``).
    Only ``groups=1``.

    Args:
        slim_out (bool): switch the output width. Default True.
        width_range (tuple): (min, max) widths allowed, 0 < min <= max <= 1.
        divisor (int): channel counts are rounded to multiples of it
            (``make_divisible``). Default 8.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1,
                 padding=0, dilation=1, groups=1, bias=True, slim_out=True,
                 width_range=(0.25, 1.0), divisor=8, **kwargs):
        name = type(self).__name__
        check_int(name, 'groups', groups, 1, 1, allowed='1')
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, **kwargs)
        self.slim_out = bool(slim_out)
        self.width_range = check_width_range(width_range, name)
        self.divisor = check_int(name, 'divisor', divisor, 1)
        self.width = self.width_range.high

    def switch_space(self):
        return {'width': self.width_range} if self.slim_out else {}

    def switch(self, width):
        self.width = float(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_in = x.shape[1]
        if c_in > self.in_channels:
            raise ValueError(f'{type(self).__name__}: input has {c_in} '
                             f'channels, the layer at most '
                             f'{self.in_channels}.')
        c_out = (active_channels(self.out_channels, self.width, self.divisor)
                 if self.slim_out else self.out_channels)
        bias = None if self.bias is None else self.bias[:c_out]
        return self._conv_forward(x, self.weight[:c_out, :c_in], bias)

    def extra_repr(self):
        return (super().extra_repr() + f', slim_out={self.slim_out}, '
                f'width_range={tuple(self.width_range)}, '
                f'divisor={self.divisor}')


class SlimmableBatchNorm2d(nn.BatchNorm2d):
    """BN shared by all widths: a width-``w`` input of ``c`` channels uses the
    first ``c`` affine parameters and running statistics (US-Net, MutualNet
    3.1). The shared statistics are only meaningful after post-statistics
    recalibration for one (width, input scale) (``msdet.engine``
    ``recalibrate_bn``). At full width it is exactly ``nn.BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        c = x.shape[1]
        if c > self.num_features:
            raise ValueError(f'SlimmableBatchNorm2d: input has {c} channels, '
                             f'the layer at most {self.num_features}.')
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats

        def part(t):
            return None if t is None else t[:c]

        return F.batch_norm(
            x, part(self.running_mean) if track else None,
            part(self.running_var) if track else None, part(self.weight),
            part(self.bias), use_batch, momentum, self.eps)


class SwitchableBatchNorm2d(nn.Module, Switchable):
    """One private ``BatchNorm2d`` per value of the setting ``key``.

    Slimmable networks' switchable BN for a fixed list of widths
    (``key='width'``, one BN of ``make_divisible(w * C)`` features per width;
    an option to MutualNet 3.1's post-statistics), or a Resizable ResNet's
    scale-aware BN (one BN per resize factor of a stage). The active BN is
    the one of the current value (initially the largest).

    Args:
        num_features (int | Sequence[int]): features of every BN, or one
            count per value of ``choices``.
        key (str): the setting that selects the BN.
        choices (Sequence): the allowed values, one BN each.
        **bn_kwargs: passed to every ``nn.BatchNorm2d`` (eps, momentum, ...).
    """

    def __init__(self, num_features: Union[int, Sequence[int]], key: str,
                 choices: Sequence, **bn_kwargs):
        super().__init__()
        choices = list(choices)
        if not choices or any(
                _same(a, b) for i, a in enumerate(choices)
                for b in choices[i + 1:]):
            raise ValueError(f'SwitchableBatchNorm2d: choices={choices!r}; '
                             'allowed: a non-empty list of distinct values.')
        counts = ([num_features] * len(choices) if isinstance(
            num_features, int) else list(num_features))
        if len(counts) != len(choices):
            raise ValueError(
                f'SwitchableBatchNorm2d: {len(counts)} num_features for '
                f'{len(choices)} choices; give one count per choice.')
        self.key, self.choices = key, choices
        self.bns = nn.ModuleList(
            nn.BatchNorm2d(n, **bn_kwargs) for n in counts)
        self.active = choices.index(max(choices))

    def switch_space(self):
        return {self.key: list(self.choices)}

    def switch(self, **settings):
        value = settings[self.key]
        self.active = next(i for i, c in enumerate(self.choices)
                           if _same(c, value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.active](x)

    def extra_repr(self):
        return f'key={self.key!r}, choices={self.choices}'
