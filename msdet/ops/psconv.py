"""Poly-Scale Convolution (PSConv, Li et al. ECCV 2020, sections 3.1-3.2, appendix B)."""
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS


@MODELS.register_module('PSConv')
class PSConv2d(nn.Conv2d):
    """Poly-scale convolution: one dilation rate per kernel, eq. (3).

    The dilation matrix ``D[c, k]`` (output channel ``c``, input channel ``k``,
    both counted inside their group) is ``dilation * pattern[(k - c) mod t]``:
    rates cycle along the input channels with cyclic interval ``t`` and the
    pattern shifts by one channel from one filter to the next (section 3.2),
    so every row and every column of ``D`` holds all rates. A grouped PSConv
    repeats the pattern in every group (fig. 2, right).

    The layer owns exactly one dense ``weight`` of shape
    ``(C_out, C_in / groups, k, k)``, like ``nn.Conv2d``. The forward groups
    channels by dilation (appendix B): ``D`` depends only on the residues
    ``c mod t`` and ``k mod t``, so for each distinct rate the kernels that use
    it form a grouped convolution over residue blocks. The per-rate grouped
    convolutions together touch every kernel exactly once, so the
    multiply-adds equal those of the dense convolution.

    Args:
        pattern (Sequence[int]): dilation rates of one cycle ``{d1..dt}``,
            default ``(1, 2, 1, 4)`` (paper table 4). Multiplied by
            ``dilation`` (for dilated stages, e.g. DeepLab's output stride 16).
        interval (int, optional): cyclic interval ``t``; must equal
            ``len(pattern)``. Defaults to ``len(pattern)``.
        padding: must keep the spatial size independent of the rate, i.e.
            ``padding == dilation * (kernel_size - 1) // 2``; it is scaled by
            each rate like the dilation.
        Other arguments are those of ``nn.Conv2d``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size=3,
                 stride=1,
                 padding=1,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = False,
                 pattern: Sequence[int] = (1, 2, 1, 4),
                 interval=None,
                 **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, **kwargs)
        self.pattern = tuple(self._check_args(pattern, interval))
        t = len(self.pattern)
        k_h, k_w = self.kernel_size
        if self.padding_mode != 'zeros':
            raise ValueError(f"PSConv: padding_mode={self.padding_mode!r} is "
                             "not supported; only 'zeros'.")
        for kk, p, d in zip(self.kernel_size, self.padding, self.dilation):
            if kk % 2 == 0 or 2 * p != d * (kk - 1):
                raise ValueError(
                    f'PSConv: kernel_size={self.kernel_size}, padding='
                    f'{self.padding}, dilation={self.dilation} do not keep '
                    'the size independent of the rate; allowed: odd kernel '
                    'and padding == dilation * (kernel_size - 1) // 2.')
        cin_g, cout_g = in_channels // groups, out_channels // groups
        for name, n in (('in', cin_g), ('out', cout_g)):
            if n % t:
                raise ValueError(
                    f'PSConv: cyclic interval t={t} must divide the {name} '
                    f'channels per group ({name}_channels={n * groups}, '
                    f'groups={groups} -> {n} per group).')
        self.interval = t
        self._rates = []
        for i, (rate, in_idx, out_idx, w_in, n_groups) in enumerate(
                self._build_plan(cin_g, cout_g)):
            self._rates.append((rate, n_groups))
            # Identity gathers are stored empty and skipped in forward.
            ident = torch.arange(len(in_idx))
            self.register_buffer(
                f'_in_idx{i}', None if torch.equal(in_idx, ident) else in_idx,
                persistent=False)
            inv = torch.argsort(out_idx)
            self.register_buffer(
                f'_out_inv{i}', None if torch.equal(inv, ident[:len(inv)])
                else inv, persistent=False)
            self.register_buffer(f'_w_out{i}', out_idx, persistent=False)
            self.register_buffer(f'_w_in{i}', w_in, persistent=False)

    @staticmethod
    def _check_args(pattern, interval):
        try:
            pattern = [int(d) for d in pattern]
        except TypeError:
            raise ValueError(f'PSConv: pattern must be a sequence of ints, '
                             f'got {pattern!r}') from None
        if not pattern:
            raise ValueError('PSConv: pattern is empty; give at least one '
                             'dilation rate, e.g. (1, 2, 1, 4).')
        if min(pattern) < 1:
            raise ValueError(f'PSConv: dilation rates must be >= 1, got '
                             f'pattern={tuple(pattern)}.')
        if interval is not None and interval != len(pattern):
            raise ValueError(
                f'PSConv: cyclic interval t={interval!r} must equal the '
                f'pattern length {len(pattern)} (pattern={tuple(pattern)}).')
        return pattern

    @property
    def dilation_matrix(self) -> torch.Tensor:
        """``D`` of eq. (3): ``(C_out, C_in / groups)`` effective rates."""
        t = self.interval
        c = torch.arange(self.out_channels // self.groups)
        c = c.repeat(self.groups)
        k = torch.arange(self.in_channels // self.groups)
        rel = (k[None, :] - c[:, None]) % t
        return torch.tensor(self.pattern)[rel] * self.dilation[0]

    def _build_plan(self, cin_g, cout_g):
        """One grouped conv per distinct rate (appendix B).

        Output residue block ``q`` reads, at rate ``d``, the input residue
        blocks ``S_q = {(q + o) mod t : pattern[o] == d}``. Output blocks with
        the same ``S_q`` share one conv group. Returns, per rate, the input
        channel gather, the position of each conv output channel, the weight
        gather and the number of conv groups.
        """
        t, groups = self.interval, self.groups

        def block(n_per_group, g, r):
            return list(range(g * n_per_group + r, (g + 1) * n_per_group, t))

        plan = []
        for rate in OrderedDict.fromkeys(self.pattern):
            offsets = [o for o, d in enumerate(self.pattern) if d == rate]
            sets = OrderedDict()
            for q in range(t):
                key = tuple(sorted((q + o) % t for o in offsets))
                sets.setdefault(key, []).append(q)
            in_idx, out_idx, w_in = [], [], []
            for g in range(groups):
                for s_blocks, q_blocks in sets.items():
                    ins = [k for r in s_blocks for k in block(cin_g, g, r)]
                    in_idx += ins
                    local = [k - g * cin_g for k in ins]
                    for q in q_blocks:
                        for c in block(cout_g, g, q):
                            out_idx.append(c)
                            w_in.append(local)
            plan.append((rate, torch.tensor(in_idx), torch.tensor(out_idx),
                         torch.tensor(w_in), groups * len(sets)))
        return plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for i, (rate, n_groups) in enumerate(self._rates):
            in_idx = getattr(self, f'_in_idx{i}')
            out_inv = getattr(self, f'_out_inv{i}')
            weight = self.weight[getattr(self, f'_w_out{i}')[:, None],
                                 getattr(self, f'_w_in{i}')]
            y = F.conv2d(x if in_idx is None else x.index_select(1, in_idx),
                         weight, None, self.stride,
                         tuple(p * rate for p in self.padding),
                         tuple(d * rate for d in self.dilation), n_groups)
            if out_inv is not None:
                y = y.index_select(1, out_inv)
            out = y if out is None else out + y
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self):
        return (super().extra_repr() +
                f', pattern={self.pattern}, interval={self.interval}')
