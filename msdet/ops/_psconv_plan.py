"""How ``PSConv2d`` runs (private): its kernels grouped by dilation rate into
a few dilated grouped convolutions over channel blocks (PSConv appendix B).

In the block layout (``psconv.block_order``) the kernels from input block
``r`` to output block ``q`` (residues) all have the rate ``pattern[(r - q) mod
t]``. For each rate the plan runs one grouped convolution whose groups are
sets of input blocks read together: where the rate's input sets tile the
block order (rate 1 of ``(1, 2, 1, 4)``: output blocks ``{0, 2}`` read input
blocks ``{0, 2}`` and ``{1, 3}`` read ``{1, 3}``) one group per set, so the
layer is 3 convolutions; otherwise one convolution per offset ``o`` with one
group per block (output ``q`` reads input ``q + o``). Every kernel is in
exactly one convolution, so the multiply-adds are the dense layer's.

The convolutions' weights are gathered from the dense weight on every call
(one ``index_select`` of ``B_in * K * K``-value chunks, about one copy of the
weight): nothing is kept between calls, so nothing can go stale when the
weight changes. A convolution whose group ``i`` writes another output block
than block ``i`` (rates 2 and 4 above) has its output blocks put in the
layer's order (one copy) before the sum. Plain differentiable ops throughout:
gradients by autograd (a hand-written backward measured no faster), ONNX
export and ``torch.compile`` compute the same. ``bench/convs.py`` times the
layer against a dense convolution and its convolutions alone.
"""
from typing import List, NamedTuple, Sequence, Tuple

import torch
import torch.nn.functional as F


class RateConv(NamedTuple):
    """One grouped convolution at ``rate``: its group ``i`` (inside a PSConv
    group) reads the input residues ``ins[i]`` and writes the output residues
    ``outs[i]``."""
    rate: int
    ins: Tuple[Tuple[int, ...], ...]
    outs: Tuple[Tuple[int, ...], ...]


class Plan:
    """The convolutions of a PSConv layer with ``pattern`` in the block
    ``order``, ``groups`` groups and ``out_per_group`` output channels per
    group."""

    def __init__(self, pattern: Sequence[int], order: Sequence[int],
                 groups: int, out_per_group: int):
        t = len(pattern)
        self.order, self.groups = list(order), groups
        self.b_out = out_per_group // t
        self.slot = {r: s for s, r in enumerate(order)}
        self.convs: List[RateConv] = []
        for rate in dict.fromkeys(pattern):
            offsets = [o for o in range(t) if pattern[o] == rate]
            reads = {}  # input residues -> the output residues reading them
            for q in self.order:
                ins = tuple(sorted(((q + o) % t for o in offsets),
                                   key=self.slot.get))
                reads.setdefault(ins, []).append(q)
            sets = sorted(reads, key=lambda ins: self.slot[ins[0]])
            if sum(sets, ()) == tuple(self.order):
                self.convs.append(RateConv(rate, tuple(sets), tuple(
                    tuple(reads[ins]) for ins in sets)))
            else:
                self.convs += [
                    RateConv(rate, tuple((r, ) for r in self.order),
                             tuple(((r - o) % t, ) for r in self.order))
                    for o in offsets
                ]
        # per convolution: its output blocks in the layer's order (None:
        # they already are), as positions in its output
        self.reorder = []
        for conv in self.convs:
            outs = [q for qs in conv.outs for q in qs]
            self.reorder.append(None if outs == self.order else
                                [outs.index(r) for r in self.order])

    def weight_index(self) -> torch.Tensor:
        """Where the convolutions' weights come from, one after the other:
        indices of chunks of the dense weight viewed as ``(C_out * t, B_in *
        K * K)`` (one output channel x one input block)."""
        t, index = len(self.order), []
        for conv in self.convs:
            for g in range(self.groups):
                for ins, outs in zip(conv.ins, conv.outs):
                    for q in outs:
                        for m in range(self.b_out):
                            row = (g * t + self.slot[q]) * self.b_out + m
                            index += [row * t + self.slot[r] for r in ins]
        return torch.tensor(index)

    def __call__(self, x, weight, index, stride, padding, dilation):
        """The layer's output (no bias) in the block layout."""
        t, groups = len(self.order), self.groups
        c_out, c_in, kh, kw = weight.shape
        weights = weight.reshape(-1, c_in // t * kh * kw).index_select(
            0, index).split([c_out * len(c.ins[0]) for c in self.convs])
        ys = []
        for conv, w, reorder in zip(self.convs, weights, self.reorder):
            y = F.conv2d(x, w.view(c_out, -1, kh, kw), None, stride,
                         tuple(p * conv.rate for p in padding),
                         tuple(d * conv.rate for d in dilation),
                         groups * len(conv.ins))
            if reorder is not None:
                n, _, height, width = y.shape
                blocks = y.view(n, groups, t, -1, height, width).unbind(2)
                y = torch.stack([blocks[p] for p in reorder],
                                2).reshape(y.shape)
            ys.append(y)
        return sum(ys[1:], ys[0])
