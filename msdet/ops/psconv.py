"""Poly-Scale Convolution (PSConv; Li, Yao and Chen, ECCV 2020).

Eq. (3): for an input ``F`` (``C_in`` channels), filters ``G`` (``C_out x C_in
x K x K``) and a dilation matrix ``D`` (``C_out x C_in``),

    H[c, x, y] = sum_k sum_{i, j} G[c, k, i, j] F[k, x + i D[c, k], y + j D[c, k]],

a ``K x K`` convolution whose every kernel ``(c, k)`` has its own dilation
rate. Section 3.2 fills ``D`` cyclically: the channels of a group fall into
``t`` residue classes (``t``, the cyclic interval, is the length of the
pattern ``{d_1, ..., d_t}``); along a filter's input channels the rates cycle
through the pattern, and from one filter to the next the pattern shifts by one
channel. With ``res(.)`` the residue class of a channel inside its group,

    D[c, k] = dilation * pattern[(res(k) - res(c)) mod t],

so every row and every column of ``D`` holds every rate. A grouped PSConv
repeats this in each group (fig. 2, right). Defaults: ``pattern=(1, 2, 1,
4)``, ``t = 4`` (tables 3 and 4); ``dilation`` scales every rate (dilated
stages, e.g. DeepLab's output stride 16).

Channel layout (appendix B). Eq. (3) numbers the channels so that ``res(k) =
k mod t``. Appendix B groups the channels of one residue together: ``D`` is
then constant on each (output block, input block) and the layer is a few
dilated grouped convolutions; the rearrangement costs nothing when the
network is trained in it, since a layer's input channels are the output
channels of the layer before. msdet stores this layout: in every group,
residue ``r``'s ``C / t`` channels are contiguous, in block
``block_order(pattern).index(r)``; ``residue_channels`` maps it to eq. (3)'s
numbering (e.g. for ``tools/model_converters/``).

The layer is an ``nn.Conv2d`` with one ``weight`` of the dense weight's
shape (``C_out x C_in / groups x K x K``) and the same multiply-adds: every
kernel is applied once, by the rate-grouped convolutions of
``msdet.ops._psconv_plan`` (how they are grouped is an implementation detail,
checked against eq. (3) in ``tests/test_psconv.py``). The parameter stores
those convolutions' weights one after the other, so that a call copies no
weight: its rows are not output channels. The state dict holds ``G`` in the
block layout (``dense_weight()``), recorded as state_dict version 2: the
checkpoint format, which converters write and every msdet version reads;
loading turns it back into the parameter. Set weights through
``load_state_dict``, not by writing ``G`` into ``weight``; tools that scale a
conv weight's rows (conv-BN folding) do not apply to this layer.
"""
from typing import List, Sequence

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from ..utils.validation import check_ints, fail
from ._psconv_plan import Plan

#: PSConv state_dict versions and the weight layout each records. A state
#: dict that records none (no version: converters' output; version 1:
#: ``nn.Conv2d``'s, and msdet's before layouts were recorded, when every
#: config trained in this layout) is loaded as this layout.
LAYOUTS = {2: 'blocks'}


def block_order(pattern: Sequence[int]) -> List[int]:
    """The residues in the order their blocks are stored (appendix B).

    The first rate ``d`` with several offsets ``O = {o : pattern[o] == d}``
    whose input sets ``{(q + o) mod t : o in O}`` (over the output residues
    ``q``) partition the residues puts each set's residues side by side, so
    that its kernels form diagonal blocks: ``(0, 2, 1, 3)`` for ``(1, 2, 1,
    4)``. Otherwise residue order.
    """
    t = len(pattern)
    for rate in dict.fromkeys(pattern):
        offsets = [o for o in range(t) if pattern[o] == rate]
        sets = dict.fromkeys(
            tuple(sorted((q + o) % t for o in offsets)) for q in range(t))
        order = [r for s in sets for r in s]
        if len(offsets) > 1 and sorted(order) == list(range(t)):
            return order
    return list(range(t))


@MODELS.register_module('PSConv')
class PSConv2d(nn.Conv2d):
    """Poly-scale convolution, eq. (3) with section 3.2's cyclic ``D`` (see
    the module docstring); registered as conv type ``'PSConv'``.

    Args:
        pattern (Sequence[int]): the dilation rates of one cycle, ``{d_1 ..
            d_t}``; ``t`` must divide the input and output channels per
            group. Default ``(1, 2, 1, 4)``.
        padding: must keep the output size independent of the rate:
            ``dilation * (kernel_size - 1) // 2`` (odd kernels).
        Other arguments are ``nn.Conv2d``'s (``padding_mode='zeros'`` only).
    """
    #: state_dict version: the weight's channel layout (``LAYOUTS``).
    _version = 2

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
                 **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, **kwargs)
        self.pattern = check_ints(
            'PSConv', 'pattern', pattern, low=1,
            allowed='a non-empty sequence of ints >= 1 (the dilation rates '
            'of one cycle, e.g. (1, 2, 1, 4))')
        t = len(self.pattern)
        if self.padding_mode != 'zeros':
            fail('PSConv', 'padding_mode', self.padding_mode, "'zeros'")
        if any(k % 2 == 0 or 2 * p != d * (k - 1) for k, p, d in zip(
                self.kernel_size, self.padding, self.dilation)):
            fail('PSConv', 'padding', self.padding,
                 f'dilation * (kernel_size - 1) // 2 with an odd kernel '
                 f'(kernel_size={self.kernel_size}, dilation='
                 f'{self.dilation}), so that every rate keeps the size')
        for arg, channels in (('in_channels', in_channels),
                              ('out_channels', out_channels)):
            if channels % (groups * t):
                fail('PSConv', arg, channels,
                     f'a multiple of groups * t = {groups} * {t} (groups='
                     f'{groups}; t={t}, the length of pattern={self.pattern}:'
                     ' every group holds whole cycles)')
        self.order = block_order(self.pattern)
        self._plan = Plan(self.pattern, self.order, groups,
                          out_channels // groups)

    def residue_channels(self, n: int) -> torch.Tensor:
        """``(t, n / t)``: where residue ``r``'s ``m``-th channel sits in a
        group of ``n`` channels (block ``order.index(r)``)."""
        block = n // len(self.pattern)
        return torch.stack([self.order.index(r) * block + torch.arange(block)
                            for r in range(len(self.pattern))])

    @property
    def dilation_matrix(self) -> torch.Tensor:
        """``D`` of eq. (3), ``(C_out, C_in / groups)``, for this layer's
        channels: ``dilation * pattern[(res(k) - res(c)) mod t]``."""
        t = len(self.pattern)

        def residues(n):  # residue of each channel of a group of n
            return torch.tensor(self.order).repeat_interleave(n // t)

        res_in = residues(self.in_channels // self.groups)
        res_out = residues(self.out_channels // self.groups).repeat(
            self.groups)
        rel = (res_in[None, :] - res_out[:, None]) % t
        return torch.tensor(self.pattern)[rel] * self.dilation[0]

    def dense_weight(self) -> torch.Tensor:
        """``G`` of eq. (3) (``C_out x C_in / groups x K x K``) in the block
        layout: the kernel from input channel ``k`` to output channel ``c``
        at ``[c, k]``, applied at rate ``dilation_matrix[c, k]``
        (differentiable)."""
        return self._plan.dense(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._plan(x, self.weight, self.stride, self.padding,
                         self.dilation)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if not keep_vars:  # keep_vars: the parameters themselves (tracing)
            destination[prefix + 'weight'] = self.dense_weight().detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        version = local_metadata.get('version')
        layout = LAYOUTS[self._version]
        if version is not None and version >= 2 and \
                LAYOUTS.get(version) != layout:
            raise ValueError(
                f'PSConv {prefix[:-1] or "(top level)"}: the checkpoint '
                f'records weight layout {LAYOUTS.get(version, "unknown")!r} '
                f'(state_dict version {version}), this PSConv stores layout '
                f'{layout!r} (version {self._version}); the kernels would '
                'meet other input channels at other rates. Load it with the '
                'msdet version that wrote it, or convert it.')
        key = prefix + 'weight'
        dense = state_dict.get(key)
        if dense is not None and tuple(dense.shape) == tuple(
                self.weight.shape):
            # G -> the parameter's layout, without touching the caller's dict
            state_dict = {k: v for k, v in state_dict.items()
                          if k.startswith(prefix)}
            with torch.no_grad():
                state_dict[key] = self._plan.convs_weight(dense)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self):
        return super().extra_repr() + f', pattern={self.pattern}'
