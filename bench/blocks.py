"""Block-level timing and profile: an Elastic block against the ResNeXt
block it replaces, an SA block against the ResNet bottleneck it replaces,
each also against its official form (``bench.official``), one block per
stage at the stage's shape for a 224x224 and an 800x1216 image.

    python -m bench.blocks [--quick] [--threads 1 2] [--reps N]

Modes: ``eval`` (batch 1, eval mode, no autograd) and ``train`` (batch 2,
train mode, forward + backward). Each row gives the block's median time,
its ratio to the baseline block (interleaved rounds, ``bench.timing``) and
where its time goes: the profiler's self CPU time per op category
(``CATEGORIES``), so a ratio above 1 can be traced to convolutions,
normalisation, pooling, resampling or element-wise ops.
"""
import argparse
import re

import torch
from mmdet.models.backbones.resnet import Bottleneck as ResNetBottleneck
from mmdet.models.backbones.resnext import Bottleneck as ResNeXtBottleneck
from torch.profiler import ProfilerActivity, profile

from msdet.models.backbones.elastic_resnext import ElasticBottleneck
from msdet.models.backbones.scalenet import SABottleneck
from msdet.models.backbones.scalenet_structure import PUBLISHED

from .official import OfficialElasticBlock, OfficialSABlock
from .timing import measure

#: Op categories of the profile, first match wins (self CPU time of aten ops
#: and of msdet's autograd functions, by name).
CATEGORIES = (
    ('conv', r'conv|mkldnn|thnn|\b(addmm|mm|bmm)\b'),
    ('norm', r'batch_norm'),
    ('pool', r'pool|maximum|AvgPool'),
    ('resample', r'upsample|interpolate|lerp|Upsample'),
    ('elementwise', r'add|mul|relu|clamp|cat|copy|sigmoid|pad|fill|sub'),
)
_CATS = [(name, re.compile(rx, re.I)) for name, rx in CATEGORIES]
#: Image sizes whose stage shapes the blocks are timed at (quick: tiny).
SIZES = [(224, 224), (800, 1216)]
QUICK_SIZES = [(224, 224)]  # the release SA block needs 7x7 in stage 4


def category(op_name):
    for name, rx in _CATS:
        if rx.search(op_name):
            return name
    return 'other'


def _randomize(module):
    """BN statistics and affine parameters away from the identity (a block
    behaves as a trained one: no all-zero branches)."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return module


def block_cases(quick=False):
    """``(pair, stage, dict(msdet=, official=, baseline=))`` for one
    non-strided block per stage: Elastic blocks in stages 1-3 (the stages
    that have them) against ResNeXt-50 32x4d's block; SA blocks of the
    published ScaleNet-50 allocation (``layerX.1``) in stages 1-4 against
    ResNet-50's bottleneck. Quick: a quarter of the widths, 8 paths."""
    base, groups = (16, 8) if quick else (64, 32)
    cases = []
    for stage in range(3):
        planes = base * 2**stage
        kw = dict(groups=groups, base_width=2 if quick else 4,
                  base_channels=base)
        elastic = _randomize(
            ElasticBottleneck(planes * 4, planes, elastic=True, **kw))
        cases.append(('Elastic / ResNeXt', stage, dict(
            msdet=elastic, official=OfficialElasticBlock(elastic),
            baseline=_randomize(ResNeXtBottleneck(planes * 4, planes,
                                                  **kw)))))
    first = [0, 3, 7, 13]  # layerX.0 of ScaleNet-50 in the structure
    for stage in range(4):
        planes = base * 2**stage
        entry = PUBLISHED['scalenet50'][first[stage] + 1]
        channels = [max(1, c * base // 64) if c else 0 for c in entry[:-1]]
        sa = _randomize(SABottleneck(
            planes * 4, planes, branch_channels=channels,
            design_size=entry[-1]))
        cases.append(('SA / ResNet', stage, dict(
            msdet=sa, official=OfficialSABlock(sa),
            baseline=_randomize(ResNetBottleneck(planes * 4, planes)))))
    return cases


def stage_side(size, stage):
    """The stage's input map at image ``size`` (stem /4, stages /2)."""
    return tuple(-(-s // 4) // 2**stage for s in size)


def step(block, mode, x):
    """A zero-argument call: eval forward without autograd, or a training
    forward + backward (gradients reset first)."""
    if mode == 'eval':
        block.eval()

        def run():
            with torch.no_grad():
                block(x)

        return run
    block.train()
    params = list(block.parameters())

    def train():
        for p in params:
            p.grad = None
        block(x).mean().backward()

    return train


def profile_ms(fn, calls=3):
    """Self CPU ms per call of ``fn`` by op category (``CATEGORIES``)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    out = {name: 0.0 for name, _ in CATEGORIES}
    out['other'] = 0.0
    for evt in prof.key_averages():
        out[category(evt.key)] += evt.self_cpu_time_total / 1e3 / calls
    return {k: round(v, 3) for k, v in out.items()}


def run(quick=False, reps=7, threads=(1, ), modes=('eval', 'train'),
        sizes=None):
    """Rows ``dict(pair, stage, size, input, mode, threads, impl, ms,
    ratio, profile)``, ``impl`` in ``msdet`` / ``official`` / ``baseline``
    (ratio to the baseline block of the same round)."""
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    before = torch.get_num_threads()
    rows = []
    cases = block_cases(quick)
    for n in threads:
        torch.set_num_threads(n)
        for mode in modes:
            for size in sizes:
                for pair, stage, impls in cases:
                    batch = 1 if mode == 'eval' else 2
                    shape = (batch, impls['baseline'].conv1.in_channels,
                             *stage_side(size, stage))
                    x = torch.randn(*shape)
                    fns = {k: step(m, mode, x) for k, m in impls.items()}
                    res = measure(fns, 'baseline', reps)
                    for impl, r in res.items():
                        rows.append(dict(
                            pair=pair, stage=stage + 1, size=list(size),
                            input=list(shape[1:]), mode=mode, threads=n,
                            impl=impl, ms=round(r['ms'], 3),
                            ratio=round(r['ratio'], 4),
                            profile=profile_ms(fns[impl])))
                    print(f'[blocks] {mode} {n} thr {size[0]}x{size[1]} '
                          f'{pair} stage {stage + 1}: ' + ', '.join(
                              f"{k} x{r['ratio']:.3f}"
                              for k, r in res.items() if k != 'baseline'),
                          flush=True)
    torch.set_num_threads(before)
    return rows


def markdown(rows):
    """The rows as a markdown table (one line per block and impl)."""
    cats = [name for name, _ in CATEGORIES] + ['other']
    head = ['pair', 'stage', 'image', 'mode', 'thr', 'impl', 'ms',
            'ratio'] + [f'{c} ms' for c in cats]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['pair'], str(r['stage']), 'x'.join(map(str, r['size'])),
                 r['mode'], str(r['threads']), r['impl'], f"{r['ms']:.2f}",
                 f"{r['ratio']:.3f}"] + [
                     f"{r['profile'][c]:.2f}" for c in cats]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny blocks and sizes: a smoke test')
    parser.add_argument('--threads', type=int, nargs='+', default=[1])
    parser.add_argument('--reps', type=int, default=None)
    parser.add_argument('--modes', nargs='+', choices=('eval', 'train'),
                        default=['eval', 'train'])
    args = parser.parse_args(argv)
    rows = run(args.quick, args.reps or (2 if args.quick else 9),
               args.threads, args.modes)
    print(markdown(rows))
    return rows


if __name__ == '__main__':
    main()
