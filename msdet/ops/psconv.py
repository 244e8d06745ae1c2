"""Poly-Scale Convolution (PSConv, Li et al. ECCV 2020, sections 3.1-3.2, appendix B)."""
from collections import OrderedDict, namedtuple
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch.autograd.function import once_differentiable

#: One convolution of a plan: the input block it reads (``None``: the whole
#: block-ordered input), its rate (``pattern`` entry), groups, input channels
#: per group, number of weight chunks (``_plan``), and the output block
#: (residue) of each of its output positions inside one PSConv group.
_Conv = namedtuple('_Conv', 'src rate groups width chunks blocks')
#: ``impl='auto'`` runs the ``blocks`` plan (if ``groups=1``) for blocks
#: narrower than ``NARROW_BLOCK`` channels on inputs of ``LARGE_MAP`` pixels
#: or more (measured on an AVX-512 CPU, oneDNN 3.x, blocks layout: with
#: 16-channel blocks the grouped plan is faster at 112x112, the blocks plan
#: at 200x336).
NARROW_BLOCK, LARGE_MAP = 32, 160 * 160


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
    channels by dilation (appendix B): with the channels of a group sorted by
    residue ``mod t`` into ``t`` blocks, ``D`` is a block matrix whose block
    ``(q, r)`` has the rate ``pattern[(r - q) mod t]``, so the layer is a few
    dilated convolutions over blocks that together touch every kernel once:
    the multiply-adds equal those of the dense convolution. Two plans
    compute them (``_plan``); the gradient is written by hand
    (``_PSConvFunction``).

    ``layout`` says where residue ``r``'s ``m``-th channel sits in a group:
    ``'interleaved'`` at ``m * t + r`` (eq. 3 as written), ``'blocks'``
    (default) at ``slot(r) * B + m``, the residues stored as contiguous
    blocks in the order the grouped plan reads them (appendix B's
    rearrangement, with the permutation folded into the neighbouring layers
    by training in this layout). Both are the same operator up to a fixed
    channel permutation (``residue_channels``); ``blocks`` reads its input
    and writes its output in place, ``interleaved`` gathers both per call.

    Args:
        pattern (Sequence[int]): dilation rates of one cycle ``{d1..dt}``,
            default ``(1, 2, 1, 4)`` (paper table 4). Multiplied by
            ``dilation`` (for dilated stages, e.g. DeepLab's output stride 16).
        interval (int, optional): cyclic interval ``t``; must equal
            ``len(pattern)``. Defaults to ``len(pattern)``.
        padding: must keep the spatial size independent of the rate, i.e.
            ``padding == dilation * (kernel_size - 1) // 2``; it is scaled by
            each rate like the dilation.
        layout (str): ``'blocks'`` or ``'interleaved'``, see above.
        impl (str): ``'grouped'``, ``'blocks'`` (``groups=1`` only) or
            ``'auto'`` (``blocks`` for narrow blocks on large maps, where
            oneDNN's narrow grouped kernels are slowest; see ``_plan``). The
            same function either way, up to float rounding.
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
                 impl: str = 'auto',
                 layout: str = 'blocks',
                 **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, **kwargs)
        self.pattern = tuple(self._check_args(pattern, interval))
        t = len(self.pattern)
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
        plans = ('grouped', 'blocks') if groups == 1 else ('grouped', )
        if impl not in plans + ('auto', ):
            raise ValueError(f'PSConv: impl={impl!r}; allowed with groups='
                             f"{groups}: {plans + ('auto', )}.")
        if layout not in ('blocks', 'interleaved'):
            raise ValueError(f'PSConv: layout={layout!r}; allowed: '
                             "'blocks', 'interleaved'.")
        self.interval, self.impl, self.layout = t, impl, layout
        self._cached = None  # (key, per-rate weights), see ``_weights``
        order, _ = self._block_order()
        #: slot (index along dim 2 of ``_canon``) of each residue
        self._slot = (list(range(t)) if layout == 'interleaved' else
                      [order.index(r) for r in range(t)])
        if impl == 'auto':
            narrow = cin_g // t < NARROW_BLOCK
            plans = plans if narrow else ('grouped', )
        self._plans = {}
        for name in plans if impl == 'auto' else (impl, ):
            self._plan(name, cin_g, cout_g)

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
        res_in, res_out = (torch.empty(n, dtype=torch.long).index_copy_(
            0, self.residue_channels(n).flatten(),
            torch.arange(t).repeat_interleave(n // t))
            for n in (self.in_channels // self.groups,
                      self.out_channels // self.groups))
        rel = (res_in[None, :] - res_out.repeat(self.groups)[:, None]) % t
        return torch.tensor(self.pattern)[rel] * self.dilation[0]

    def residue_channels(self, n):
        """``(t, n / t)`` index, inside a group of ``n`` channels, of residue
        ``r``'s ``m``-th channel under this layer's ``layout``."""
        t, b = self.interval, n // self.interval
        m = torch.arange(b)
        return torch.stack([self._channel(r, m, b) for r in range(t)])

    def _channel(self, r, m, b):
        """Channel of residue ``r``, position ``m`` (blocks of ``b``)."""
        if self.layout == 'interleaved':
            return m * self.interval + r
        return self._slot[r] * b + m

    def _offsets(self):
        """``{rate: [offsets o with pattern[o] == rate]}``."""
        offsets = OrderedDict()
        for o, rate in enumerate(self.pattern):
            offsets.setdefault(rate, []).append(o)
        return offsets

    def _block_order(self):
        """The residue order in which the grouped plan stores its input and
        the merged rate: the first rate with several offsets whose input sets
        (``_sets``) partition the blocks; its sets lie side by side. Without
        one, ``(0 .. t-1, None)``."""
        t = self.interval
        for rate, offs in self._offsets().items():
            blocks = [r for s in self._sets(offs) for r in s]
            if len(offs) > 1 and sorted(blocks) == list(range(t)):
                return blocks, rate
        return list(range(t)), None

    # ---------------------------------------------------------------- plans
    def _plan(self, name, cin_g, cout_g):
        """Build plan ``name``: its convolutions and weight gather.

        Output block ``q`` reads input block ``r = (q + o) mod t`` at rate
        ``pattern[o]``.

        - ``grouped``: the input is stored once, blocks in ``order``; each
          rate is one grouped convolution reading all of it. A rate whose
          offsets ``O`` give sets ``{(q + o) mod t : o in O}`` that partition
          the blocks (rate 1 of ``(1, 2, 1, 4)``: ``{0, 2}``, ``{1, 3}``) has
          one group per set (``order`` puts each set's blocks side by side);
          every other rate has one convolution per offset, one group per
          block. Output channels are ordered by block, then channel.
        - ``blocks`` (``groups=1``): each input block is its own NHWC tensor
          and each (input block, rate) one dense convolution, whose output
          blocks are ``{(r - o) mod t}``: oneDNN runs these narrow dense
          convolutions far faster than grouped ones with narrow groups.

        The weights of a plan's convolutions, one after the other, are a
        permutation of the dense weight's chunks (``_w_perm_<name>``): its
        kernels, or in the blocks layout the ``B * k * k`` contiguous values
        from one output channel to one input block, gathered far faster.
        """
        t, groups = self.interval, self.groups
        b_in, b_out = cin_g // t, cout_g // t
        offsets = self._offsets()
        order, merged = self._block_order()
        convs = []  # (src, rate, groups, [input blocks], [output blocks])
        if name == 'blocks':
            for r in range(t):
                convs += [(r, rate, 1, [(r, )], [[(r - o) % t for o in offs]])
                          for rate, offs in offsets.items()]
        else:
            # the merged rate first: in the blocks layout it writes the
            # output in place (``_run``)
            for rate, offs in sorted(offsets.items(),
                                     key=lambda kv: kv[0] != merged):
                if rate == merged:
                    sets = self._sets(offs)
                    convs.append((None, rate, groups * len(sets), list(sets),
                                  list(sets.values())))
                else:
                    convs += [(None, rate, groups * t, [(r, ) for r in order],
                               [[(r - o) % t] for r in order]) for o in offs]
        chunk = self._chunk = b_in if self.layout == 'blocks' else 1
        kernels, plan = [], []
        for src, rate, conv_groups, ins, outs in convs:
            first = len(kernels)
            for g in range(groups if src is None else 1):
                for s_in, s_out in zip(ins, outs):
                    cols = [self._channel(r, m, b_in) // chunk for r in s_in
                            for m in range(0, b_in, chunk)]
                    for q in s_out:
                        for m in range(b_out):
                            c = g * cout_g + self._channel(q, m, b_out)
                            kernels += [c * cin_g // chunk + k for k in cols]
            plan.append(_Conv(src, rate, conv_groups, len(cols) * chunk,
                              len(kernels) - first,
                              tuple(q for s in outs for q in s)))
        perm = torch.tensor(kernels, dtype=torch.int32)
        inv = torch.argsort(perm).int()
        self.register_buffer(f'_w_perm_{name}', perm, persistent=False)
        self.register_buffer(f'_w_inv_{name}', inv, persistent=False)
        if name == 'grouped':
            # slots of each conv's output blocks; None: the conv's output is
            # the layer's layout (all blocks, in slot order, not interleaved)
            self._out_slots = []
            for i, conv in enumerate(plan):
                slots = [self._slot[q] for q in conv.blocks]
                self._out_slots.append(
                    None if self.layout == 'blocks' and
                    slots == list(range(t)) else f'_out_blocks{i}')
                self.register_buffer(f'_out_blocks{i}', torch.tensor(slots),
                                     persistent=False)
            self.register_buffer('_order', torch.tensor(order),
                                 persistent=False)
            self.register_buffer('_order_inv', torch.argsort(self._order),
                                 persistent=False)
        # output block q = sum of (conv, position) terms
        terms = [[(i, p) for i, conv in enumerate(plan)
                  for p, b in enumerate(conv.blocks) if b == q]
                 for q in range(t)]
        self._plans[name] = (plan, terms)

    def _sets(self, offsets):
        """Blocks read by each output block at these offsets, grouped:
        ``{input blocks: [output blocks]}``."""
        t, sets = self.interval, OrderedDict()
        for q in range(t):
            key = tuple(sorted((q + o) % t for o in offsets))
            sets.setdefault(key, []).append(q)
        return sets

    def _which(self, x):
        """The plan that runs on input ``x``."""
        if self.impl != 'auto':
            return self.impl
        large = x.shape[2] * x.shape[3] >= LARGE_MAP
        return 'blocks' if 'blocks' in self._plans and large else 'grouped'

    # -------------------------------------------------------------- layouts
    def _canon(self, x):
        """``(N, C, H, W)`` as a ``(N, G, t, B, H, W)`` view; dim 2 is the
        slot (``_slot``) of the residue ``c mod t``."""
        n, c, h, w = x.shape
        t = self.interval
        if self.layout == 'blocks':
            return x.view(n, self.groups, t, c // (self.groups * t), h, w)
        return x.view(n, self.groups, c // (self.groups * t), t, h,
                      w).transpose(2, 3)

    def _block_inputs(self, xb):
        """Per-residue NCHW views of the ``(t, N, H, W, B)`` block tensor."""
        return [xb[s].permute(0, 3, 1, 2) for s in self._slot]

    def _by_block(self, y, n_blocks):
        """A convolution's output ``(N, G * n_blocks * B, H, W)`` as
        ``(N, G, n_blocks, B, H, W)``."""
        n, c, h, w = y.shape
        return y.view(n, self.groups, n_blocks, -1, h, w)

    def _inputs(self, name, x):
        """The input rearranged for plan ``name`` (one copy) and the
        tensors its convolutions read."""
        n, c, h, w = x.shape
        if name == 'blocks':
            xb = self._canon(x)[:, 0].permute(1, 0, 3, 4, 2).contiguous()
            return xb, self._block_inputs(xb)
        if self.layout == 'blocks':
            return x, [x]
        xg = self._canon(x).index_select(2, self._order).view(n, c, h, w)
        return xg, [xg]

    # ------------------------------------------------------------- forward
    def _run(self, x, weight):
        """The convolution without autograd. Returns the plan's name, the
        rearranged input, the per-convolution weights and the output."""
        name = self._which(x)
        plan, terms = self._plans[name]
        base, inputs = self._inputs(name, x)
        ws = self._weights(name, weight)
        ys = [
            self._by_block(
                F.conv2d(inputs[c.src or 0], wi, None, self.stride,
                         self._scaled(self.padding, c.rate),
                         self._scaled(self.dilation, c.rate), c.groups),
                len(c.blocks)) for c, wi in zip(plan, ws)
        ]
        n, _, _, _, ho, wo = ys[0].shape
        if name == 'grouped' and self._out_slots[0] is None:
            # the first conv writes every block in place: add the others
            out = ys[0].view(n, self.out_channels, ho, wo)
            out_b = self._canon(out)
            for q, qterms in enumerate(terms):
                for i, p in qterms:
                    if i:
                        out_b[:, :, self._slot[q]].add_(ys[i][:, :, p])
            return name, base, ws, out
        out = _empty(x, (n, self.out_channels, ho, wo), _format(x))
        # Sum straight into the output where it has the convolutions'
        # layout, else in theirs (transposing adds are slow), then copy.
        same = (ys[0].stride(3) > ys[0].stride(4)) == (out.stride(1) >
                                                        out.stride(2))
        out_b = self._canon(out)
        for q, qterms in enumerate(terms):
            dst = out_b[:, :, self._slot[q]]
            parts = [ys[i][:, :, p] for i, p in qterms]
            if len(parts) > 1 and same:
                torch.add(parts[0], parts[1], out=dst)
                parts = [dst] + parts[2:]
            for part in parts[1:]:
                parts[0].add_(part)
            if not same or len(qterms) == 1:
                dst.copy_(parts[0])
        return name, base, ws, out

    def _weights(self, name, weight):
        """The weights of plan ``name``'s convolutions (one gather).

        In eval mode without autograd they are kept for the next call while
        ``weight`` is the same tensor at the same version (inference is then
        as weight-bound as a dense conv, not twice). Setting the module's
        mode (``train()`` / ``eval()``, which the runner's loops and
        mmengine's EMA hook do after swapping weights through ``.data``)
        drops them.
        """
        cache = not (self.training or torch.is_grad_enabled()
                     or torch.jit.is_tracing())
        key = (name, weight.data_ptr(), weight._version, weight.dtype,
               weight.device)
        if cache and self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        plan, _ = self._plans[name]
        kh, kw = self.kernel_size
        chunks = weight.reshape(-1, self._chunk * kh * kw).index_select(
            0, getattr(self, f'_w_perm_{name}')).split(
                [c.chunks for c in plan])
        ws = [w.view(-1, c.width, kh, kw) for w, c in zip(chunks, plan)]
        self._cached = (key, ws) if cache else None
        return ws

    def train(self, mode=True):
        self._cached = None
        return super().train(mode)

    @staticmethod
    def _scaled(pair, rate):
        return tuple(v * rate for v in pair)

    def _backward(self, name, grad, base, ws, need_x, need_w):
        """Gradients of ``_run`` w.r.t. its input and the dense weight."""
        plan, _ = self._plans[name]
        grad_b = self._canon(grad)
        if name == 'blocks':
            grad_b = grad_b[:, 0].permute(1, 0, 3, 4, 2).contiguous()
            grad_b = [grad_b[s] for s in self._slot]
            inputs = self._block_inputs(base)
        else:
            inputs = [base]
        gxs, gws = [None] * len(inputs), []
        for i, (c, wi) in enumerate(zip(plan, ws)):
            if name == 'blocks':
                gy = (grad_b[c.blocks[0]] if len(c.blocks) == 1 else
                      torch.cat([grad_b[q] for q in c.blocks], -1))
                gy = gy.permute(0, 3, 1, 2)
            elif self._out_slots[i] is None:
                gy = grad
            else:
                n, _, _, _, h, w = grad_b.shape
                gy = grad_b.index_select(
                    2, getattr(self, self._out_slots[i])).view(n, -1, h, w)
            gx, gw, _ = torch.ops.aten.convolution_backward(
                gy, inputs[c.src or 0], wi, None, self.stride,
                self._scaled(self.padding, c.rate),
                self._scaled(self.dilation, c.rate), False, (0, 0), c.groups,
                (need_x, need_w, False))
            if need_x:
                j = c.src or 0
                gxs[j] = gx if gxs[j] is None else gxs[j].add_(gx)
            gws.append(gw)
        grad_x = grad_w = None
        if need_x and name == 'blocks':
            grad_x = _empty(gxs[0], (gxs[0].shape[0], self.in_channels) +
                            gxs[0].shape[2:], torch.contiguous_format)
            dst = self._canon(grad_x)
            for r, gx in enumerate(gxs):
                dst[:, 0, self._slot[r]].copy_(gx)
        elif need_x and self.layout == 'blocks':
            grad_x = gxs[0]
        elif need_x:
            n, c, h, w = gxs[0].shape
            by_block = gxs[0].contiguous().view(n, self.groups, self.interval,
                                                -1, h, w)
            grad_x = by_block.transpose(2, 3).index_select(
                3, self._order_inv).view(n, c, h, w)
        if need_w:
            k = self._chunk * self.kernel_size[0] * self.kernel_size[1]
            grad_w = torch.cat([g.reshape(-1, k) for g in gws]).index_select(
                0, getattr(self, f'_w_inv_{name}')).view(self.weight.shape)
        return grad_x, grad_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _format(x) is None:
            x = x.contiguous()
        if torch.jit.is_tracing() or not (
                torch.is_grad_enabled() and
                (x.requires_grad or self.weight.requires_grad)):
            # A trace (e.g. FLOP counting) records the aten convolutions.
            with torch.no_grad():
                out = self._run(x, self.weight)[3]
        else:
            out = _PSConvFunction.apply(x, self.weight, self)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self):
        return (super().extra_repr() +
                f', pattern={self.pattern}, interval={self.interval}, '
                f'layout={self.layout!r}')


def _format(x):
    """``x``'s memory format (NCHW or channels_last), ``None`` if neither."""
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


def _empty(like, shape, memory_format):
    return torch.empty(shape, dtype=like.dtype, device=like.device,
                       memory_format=memory_format)


class _PSConvFunction(torch.autograd.Function):
    """``PSConv2d._run`` with a hand-written backward: the per-convolution
    gradients (``aten.convolution_backward``) gathered back through the same
    block permutations in one copy each, where autograd would zero-fill a
    full-size buffer per block slice."""

    @staticmethod
    def forward(ctx, x, weight, conv):
        name, base, ws, out = conv._run(x, weight)
        ctx.conv, ctx.name = conv, name
        ctx.save_for_backward(base, *ws)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        base, *ws = ctx.saved_tensors
        if _format(grad) is None:
            grad = grad.contiguous()
        grad_x, grad_w = ctx.conv._backward(ctx.name, grad, base, ws,
                                            *ctx.needs_input_grad[:2])
        return grad_x, grad_w, None
