"""Which sub-networks one training iteration runs (MutualNet 3.1-3.2, fig. 2).

A sampler is a registered ``TASK_UTILS`` object with

- ``bind(space)``: check itself against the model's ``subnet_space`` (once,
  before training);
- ``sample(rng, iteration, epoch) -> list[Subnet]``: the sub-networks of one
  iteration, in training order. ``rng`` comes from :func:`iteration_rng`
  (seed + iteration), so every DDP rank draws the same sub-networks and a
  resumed run continues the same sequence;
- ``default() -> Subnet``: the sub-network the model is left at between
  iterations, validated and BN-recalibrated with.

``Subnet.settings`` go to ``msdet.ops.set_subnet``; ``Subnet.scale`` is the
input scale ``(long, short)`` the mini-batch is resized to, or None to keep
it as loaded (e.g. a sampler of spatial configurations).
"""
import math
from collections import namedtuple

import numpy as np
from mmengine.registry import TASK_UTILS

from msdet.ops.switchable import Range, check_width_range
from msdet.utils.validation import check_int, is_int

Subnet = namedtuple('Subnet', ['name', 'settings', 'scale'])


def iteration_rng(seed: int, iteration: int) -> np.random.Generator:
    """The random generator of one iteration, a pure function of both."""
    return np.random.default_rng([int(seed), int(iteration)])


def check_scales(scales, name):
    """Non-empty list of ``(long, short)`` positive ints, else a clear error.
    Returned sorted from the highest resolution (by short, then long side)."""
    allowed = 'a non-empty list of (long, short) pairs of positive ints'
    try:
        out = [tuple(s) for s in scales]
    except TypeError:
        raise ValueError(f'{name}: scales={scales!r}; allowed: '
                         f'{allowed}.') from None
    if not out or any(
            len(s) != 2 or not all(is_int(v) and v > 0 for v in s)
            for s in out):
        raise ValueError(f'{name}: scales={scales!r}; allowed: {allowed}, '
                         'e.g. [(1000, 600), (1000, 480)].')
    return sorted(out, key=lambda s: (min(s), max(s)), reverse=True)


@TASK_UTILS.register_module()
class SandwichSampler:
    """The sandwich rule with input resolutions (MutualNet 3.2, fig. 2; 4.3).

    Every iteration: the largest width at the highest resolution, the
    smallest width, and ``num_subnets - 2`` random widths, named
    ``largest``, ``smallest``, ``random1``, ... . In ``'mutualnet'`` mode
    every sub-network but the largest gets a random scale from ``scales``;
    in ``'usnet'`` mode (the US-Net baseline) all train at the one scale
    given. Random widths are uniform in ``width_range`` for a continuous
    width space; for a model with a fixed list of widths (switchable BN)
    they are drawn from the listed widths strictly inside the range (all
    listed widths if there are none inside).

    Args:
        width_range (tuple): (min, max) widths, 0 < min <= max <= 1; must lie
            in the model's width space. Default (0.25, 1.0) (paper).
        scales (Sequence[tuple]): input scales ``(long, short)``. Default
            1000 x {600, 480, 360, 240} (paper 4.3).
        num_subnets (int): sub-networks per iteration, >= 2. Default 4.
        mode (str): ``'mutualnet'`` or ``'usnet'``.
    """

    def __init__(self,
                 width_range=(0.25, 1.0),
                 scales=((1000, 600), (1000, 480), (1000, 360), (1000, 240)),
                 num_subnets=4,
                 mode='mutualnet'):
        name = type(self).__name__
        self.width_range = check_width_range(width_range, name)
        self.scales = check_scales(scales, name)
        check_int(name, 'num_subnets', num_subnets, 2,
                  allowed='an int >= 2 (largest + smallest + random)')
        if mode not in ('mutualnet', 'usnet'):
            raise ValueError(f"{name}: mode={mode!r}; allowed: 'mutualnet' "
                             "or 'usnet'.")
        if mode == 'usnet' and len(self.scales) != 1:
            raise ValueError(f"{name}: mode='usnet' trains at one fixed "
                             f'scale, got scales={scales!r}; give one, e.g. '
                             '[(1000, 600)].')
        self.num_subnets, self.mode = num_subnets, mode
        self._widths = self.width_range

    def bind(self, space):
        name = type(self).__name__
        allowed = space.get('width')
        if allowed is None:
            raise ValueError(f'{name}: the model cannot switch width '
                             f'(subnet_space: {space}); use a width-'
                             'switchable backbone such as SlimmableVGG.')
        low, high = self.width_range
        if isinstance(allowed, Range):
            ok = allowed.low <= low and high <= allowed.high
        else:
            inside = sorted(w for w in allowed if low <= w <= high)
            ok = bool(inside) and math.isclose(inside[0], low) and \
                math.isclose(inside[-1], high)
        if not ok:
            raise ValueError(f'{name}: width_range={tuple(self.width_range)} '
                             f"does not fit the model's widths {allowed}.")
        if not isinstance(allowed, Range):
            self._widths = inside

    def default(self):
        return Subnet('largest', {'width': self.width_range.high},
                      self.scales[0])

    def sample(self, rng, iteration, epoch):
        def scale():
            if self.mode == 'usnet':
                return self.scales[0]
            return self.scales[rng.integers(len(self.scales))]

        def random_width():
            if isinstance(self._widths, Range):
                return float(rng.uniform(self._widths.low, self._widths.high))
            inner = self._widths[1:-1] or self._widths
            return inner[rng.integers(len(inner))]

        subnets = [self.default(),
                   Subnet('smallest', {'width': self.width_range.low},
                          scale())]
        for k in range(self.num_subnets - 2):
            subnets.append(Subnet(f'random{k + 1}', {'width': random_width()},
                                  scale()))
        return subnets
