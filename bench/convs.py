"""One 3x3 layer, four ways: dense, dilated (d=2), PSConv and the "three
masked convolutions" form of the PSConv release (``MaskedThreeConv``),
forward (inference: eval mode, no autograd) and forward+backward (training
mode), fp32."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from msdet.ops import PSConv2d

from .timing import measure, summarize

#: (channels, height, width) of the bottleneck 3x3 convs of ResNet-50's four
#: stages at 224x224 ("stage") and at a 800x1344 detection input.
STAGE_SHAPES = [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
DETECTION_SHAPES = [(64, 200, 336), (128, 100, 168), (256, 50, 84),
                    (512, 25, 42)]
QUICK_SHAPES = [(16, 12, 12), (32, 6, 6)]
VARIANTS = ('dense', 'dilated', 'psconv', 'masked3')


class MaskedThreeConv(nn.Module):
    """PSConv (rates 1, 2, 1, 4) as the PSConv release computes it: a dense
    rate-1 3x3 conv whose kernels owned by the dilated rates are zeroed, a
    rate-2 conv with 4 groups (diagonal blocks of 4x4 channel parts) and a
    rate-4 conv with 4 groups on the input with its halves swapped (blocks
    ``[i, (i + 2) mod 4]``), summed: 1.5x the dense multiply-adds. The zeroed
    kernels are zeroed once (they would still get gradients: only timing is
    of interest here). ``stride`` as the release's strided bottlenecks."""

    def __init__(self, channels, out_channels=None, stride=1):
        super().__init__()
        c, out = channels, out_channels or channels
        if c % 4 or out % 4:
            raise ValueError(f'MaskedThreeConv: channels={c}, out_channels='
                             f'{out}; allowed: multiples of 4.')
        self.conv = nn.Conv2d(c, out, 3, stride, padding=1, bias=False)
        self.rate2 = nn.Conv2d(c, out, 3, stride, padding=2, dilation=2,
                               groups=4, bias=False)
        self.rate4 = nn.Conv2d(c, out, 3, stride, padding=4, dilation=4,
                               groups=4, bias=False)
        part_out = torch.arange(out) // (out // 4)
        part_in = torch.arange(c) // (c // 4)
        owned = (part_out[:, None] == part_in[None, :]) | (
            part_out[:, None] == (part_in[None, :] + 2) % 4)
        with torch.no_grad():
            self.conv.weight[owned] = 0

    def forward(self, x):
        swapped = torch.cat(x.chunk(2, 1)[::-1], 1)
        return self.conv(x) + self.rate2(x) + self.rate4(swapped)


def to_release_form(model):
    """``model`` with every (ungrouped, rate-1) ``PSConv2d`` replaced by the
    release's three convolutions (``MaskedThreeConv``, same channels and
    stride): a PS-ResNet computed as the PSConv release computes it."""
    for name, module in list(model.named_modules()):
        if isinstance(module, PSConv2d):
            if module.groups != 1 or module.dilation != (1, 1):
                raise ValueError(f'to_release_form: {name} has groups='
                                 f'{module.groups}, dilation='
                                 f'{module.dilation}; the release form is '
                                 'ungrouped at dilation 1.')
            parent, _, attr = name.rpartition('.')
            setattr(model.get_submodule(parent), attr, MaskedThreeConv(
                module.in_channels, module.out_channels,
                module.stride[0]).to(module.weight.device))
    return model


def build(variant, channels):
    if variant == 'dense':
        return nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    if variant == 'dilated':
        return nn.Conv2d(channels, channels, 3, padding=2, dilation=2,
                         bias=False)
    if variant == 'psconv':
        return PSConv2d(channels, channels, 3, padding=1)
    return MaskedThreeConv(channels)


def _runner(module, x, backward):
    params = list(module.parameters())
    if not backward:

        def forward():
            with torch.no_grad():
                module(x)

        return forward
    grad = torch.ones_like(module(x.detach()))

    def forward_backward():
        x.grad = None
        for p in params:
            p.grad = None
        module(x).backward(grad)

    return forward_backward


def psconv_convs_only(conv, x):
    """Just the rate-grouped convolutions of ``conv``'s plan: what PSConv
    costs without its block sums."""
    plan = conv._plan
    c_out, _, kh, kw = conv.weight.shape
    pieces = conv.weight.detach().reshape(c_out * len(plan.order), -1).split(
        [c_out * len(c.ins[0]) for c in plan.convs])
    calls = [(w.view(c_out, -1, kh, kw), c)
             for w, c in zip(pieces, plan.convs)]

    def run():
        with torch.no_grad():
            for w, c in calls:
                F.conv2d(x, w, None, 1, c.rate, c.rate,
                         conv.groups * len(c.ins))

    return 'rate-grouped', run


def bench_shape(channels, height, width, kind, batch, reps, device):
    """Rows for one shape: forward and forward+backward."""
    rows = []
    torch.manual_seed(0)
    modules = {v: build(v, channels).to(device) for v in VARIANTS}
    for mode in ('fwd', 'fwd+bwd'):
        backward = mode == 'fwd+bwd'
        for m in modules.values():  # inference in eval mode
            m.train(backward)
        x = torch.randn(batch, channels, height, width, device=device,
                        requires_grad=backward)
        fns = {v: _runner(m, x, backward) for v, m in modules.items()}
        plan = None
        if not backward:
            plan, fns['psconv_convs'] = psconv_convs_only(
                modules['psconv'], x)
        res = measure(fns, 'dense', reps, device=device)
        rows.append(
            dict(shape=[channels, height, width], kind=kind, mode=mode,
                 batch=batch, plan=plan or 'rate-grouped',
                 **_figures(res)))
        del x, fns
    return rows


def _figures(res):
    return dict(
        ms={k: round(v['ms'], 4) for k, v in res.items()},
        ratio={k: round(v['ratio'], 4) for k, v in res.items()},
        times_ms={k: v['times_ms'] for k, v in res.items()},
        psconv_speedup_vs_masked3=round(
            res['masked3']['ratio'] / res['psconv']['ratio'], 4))


def merge(runs):
    """The rows of several processes' runs (same shapes) as one run: per
    (shape, mode) the rounds of all processes, figures recomputed."""
    rows = []
    for parts in zip(*runs):
        times = {k: [t for p in parts for t in p['times_ms'][k]]
                 for k in parts[0]['times_ms']}
        rows.append(dict(parts[0], processes=len(parts),
                         **_figures(summarize(times, 'dense'))))
    return rows


def run(quick, reps, device, batch=2):
    shapes = ([(s, 'stage') for s in QUICK_SHAPES] if quick else
              [(s, 'stage') for s in STAGE_SHAPES] +
              [(s, 'detection') for s in DETECTION_SHAPES])
    rows = []
    for (c, h, w), kind in shapes:
        n = reps if kind == 'stage' else max(3, reps // 4)
        rows += bench_shape(c, h, w, kind, batch, n, device)
        print(f'[convs] {c}x{h}x{w}: psconv/dense fwd '
              f"{rows[-2]['ratio']['psconv']:.2f}, fwd+bwd "
              f"{rows[-1]['ratio']['psconv']:.2f}", flush=True)
    return rows
