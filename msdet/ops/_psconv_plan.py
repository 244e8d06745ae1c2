"""How ``PSConv2d`` runs and stores its weight (private): its kernels grouped
by dilation rate into a few dilated grouped convolutions over channel blocks
(PSConv appendix B), each convolution's weight a piece of the parameter.

In the block layout (``psconv.block_order``) the kernels from input block
``r`` to output block ``q`` (residues) all have the rate ``pattern[(r - q) mod
t]``. For each rate the plan runs one grouped convolution whose groups are
sets of input blocks read together: where the rate's input sets tile the
block order (rate 1 of ``(1, 2, 1, 4)``: output blocks ``{0, 2}`` read input
blocks ``{0, 2}`` and ``{1, 3}`` read ``{1, 3}``) one group per set, so the
layer is 3 convolutions; otherwise one convolution per offset ``o`` with one
group per block (output ``q`` reads input ``q + o``). Every kernel is in
exactly one convolution, so the multiply-adds are the dense layer's.

Storage: the parameter holds the convolutions' weights one after the
other, so that each convolution reads a view of it and a call copies no
weight. Its shape is the dense weight's, ``(C_out, C_in / groups, K, K)``
(initialisation, optimisers and checkpoint shape checks see a conv weight),
but its rows are not output channels: ``dense`` gives the dense weight ``G``
of eq. (3) in the block layout (what the state dict holds) and
``convs_weight`` turns such a ``G`` back into the parameter; both move chunks
of ``B_in * K * K`` values (one output channel x one input block) by one
fixed index.

A convolution whose group ``i`` writes another output block than block ``i``
(rates 2 and 4 above) has its blocks summed into the layer's order, onto the
convolution that writes in order (the one holding offset 0). Without
autograd the blocks are added in place into that output's slots (no copy;
measured 2-14% faster per layer at batch 1); with autograd (in-place adds
into views would copy the gradient in the backward) and under tracing (ONNX
export), blocks of all such convolutions are added slot by slot, stacked
once (one copy) and added. Plain differentiable ops throughout: gradients
by autograd (a hand-written backward measured no faster), ONNX export and
``torch.compile`` compute the same.
``bench/convs.py`` times the layer against a dense convolution and its
convolutions alone.
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
        # the convolution holding offset 0 (output q reads input q) writes in
        # the layer's order: the sum starts from it
        if all(r is not None for r in self.reorder):
            raise AssertionError(f'PSConv plan {self.convs}: no convolution '
                                 'writes in the layer order')
        to_convs = self._chunk_index()
        self.to_convs = torch.tensor(to_convs)
        self.to_dense = torch.argsort(self.to_convs)

    def _chunk_index(self) -> List[int]:
        """Where the convolutions' weights come from in the dense weight,
        one after the other: indices of chunks of the dense weight viewed as
        ``(C_out * t, B_in * K * K)`` (one output channel x one input
        block)."""
        t, index = len(self.order), []
        for conv in self.convs:
            for g in range(self.groups):
                for ins, outs in zip(conv.ins, conv.outs):
                    for q in outs:
                        for m in range(self.b_out):
                            row = (g * t + self.slot[q]) * self.b_out + m
                            index += [row * t + self.slot[r] for r in ins]
        return index

    def _move(self, weight, index):
        """``weight``'s chunks rearranged by ``index``; same shape."""
        chunks = weight.reshape(len(index), -1)
        return chunks.index_select(0, index.to(weight.device)).view(
            weight.shape)

    def dense(self, weight: torch.Tensor) -> torch.Tensor:
        """The dense weight ``G`` (block layout) of the parameter
        ``weight`` (differentiable)."""
        return self._move(weight, self.to_dense)

    def convs_weight(self, dense: torch.Tensor) -> torch.Tensor:
        """The parameter holding the dense weight ``dense`` (block
        layout)."""
        return self._move(dense, self.to_convs)

    def __call__(self, x, weight, stride, padding, dilation):
        """The layer's output (no bias) in the block layout."""
        t, groups = len(self.order), self.groups
        c_out, _, kh, kw = weight.shape
        pieces = weight.reshape(c_out * t, -1).split(
            [c_out * len(conv.ins[0]) for conv in self.convs])
        direct, moved = [], []
        for conv, w, reorder in zip(self.convs, pieces, self.reorder):
            y = F.conv2d(x, w.view(c_out, -1, kh, kw), None, stride,
                         tuple(p * conv.rate for p in padding),
                         tuple(d * conv.rate for d in dilation),
                         groups * len(conv.ins))
            if reorder is None:
                direct.append(y)
            else:
                n, _, height, width = y.shape
                moved.append((y.view(n, groups, t, -1, height,
                                     width).unbind(2), reorder))
        out = direct[0]
        for y in direct[1:]:
            out = out + y
        if not moved:
            return out
        if out.requires_grad or torch.jit.is_tracing():
            slots = []
            for s in range(t):
                blocks = [b[reorder[s]] for b, reorder in moved]
                total = blocks[0]
                for b in blocks[1:]:
                    total = total + b
                slots.append(total)
            return out + torch.stack(slots, 2).reshape(out.shape)
        n, _, height, width = out.shape
        slots = out.view(n, groups, t, -1, height, width)
        for s in range(t):
            for blocks, reorder in moved:
                slots[:, :, s].add_(blocks[reorder[s]])
        return out
