"""The backbones compared, their baselines and paper figures; whole-backbone
forward timing and parameter / FLOP counts."""
from collections import namedtuple

import torch
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope

from msdet.evaluation.complexity import backbone_gflops
from msdet.ops import set_subnet

from .timing import measure

#: ``cfg``: the backbone; ``settings``: ``set_subnet`` keys; ``baseline``:
#: the name it is timed against (in the same interleaved rounds);
#: ``paper``: (params in M, GFLOPs) of the ImageNet classifier, ``None``
#: where the paper gives none; ``quick``: overrides for ``--quick``.
Spec = namedtuple('Spec', 'name cfg settings baseline paper quick')
#: Parameters and multiply-adds of the ImageNet classifier on a 2048-channel
#: ResNet-family output, which the papers' figures include.
FC_PARAMS, FC_FLOPS = 2048 * 1000 + 1000, 2048 * 1000
SMALL = dict(base_channels=16)
SMALL_X = dict(base_channels=16, groups=8)

#: The Resizable paper (table 1) gives four FLOPs points but not their
#: configurations; these per-stage factors are those of a grid over
#: {0.5, ..., 1.0} whose FLOPs (FlopAnalyzer, classifier included) are
#: closest: 4.111, 2.826, 1.997 and 1.102 G.
RESIZABLE_POINTS = [
    ((1.0, 1.0, 1.0, 1.0), 4.1),
    ((1.0, 0.875, 0.875, 0.875), 2.8),
    ((0.75, 0.875, 1.0, 1.0), 2.0),
    ((0.75, 0.625, 0.625, 1.0), 1.1),
]


def _resizable(factors, gflops):
    name = 'Resizable-ResNet-50 ' + '/'.join(f'{f:g}' for f in factors)
    settings = {f'resize{i + 1}': f for i, f in enumerate(factors)}
    # the bare backbone (paper table 1); detectors restore the output sizes
    return Spec(name,
                dict(type='ResizableResNet', depth=50, restore_outputs=False),
                settings, 'ResNet-50', (None, gflops), SMALL)


SPECS = [
    Spec('ResNet-50', dict(type='ResNet', depth=50), {}, 'ResNet-50',
         (25.557, 4.089), SMALL),
    Spec('PS-ResNet-50', dict(type='PSResNet', depth=50), {}, 'ResNet-50',
         (25.557, 4.089), SMALL),
    Spec('ScaleNet-50', dict(type='ScaleNet', depth=50), {}, 'ResNet-50',
         (31.483, 3.818), SMALL),
    Spec('ResNeXt-50 32x4d',
         dict(type='ResNeXt', depth=50, groups=32, base_width=4), {},
         'ResNeXt-50 32x4d', (25.0, 4.2), SMALL_X),
    Spec('Elastic-ResNeXt-50 32x4d', dict(type='ElasticResNeXt', depth=50),
         {}, 'ResNeXt-50 32x4d', (25.2, 4.2), SMALL_X),
    Spec('sElastic-ResNeXt-50 32x4d',
         dict(type='ElasticResNeXt', depth=50, stage_blocks=(3, 4, 6, 3)),
         {}, 'ResNeXt-50 32x4d', (25.0, 3.4), SMALL_X),
] + [
    Spec(f'SlimmableVGG-16 w{w:g}', dict(type='SlimmableVGG', depth=16),
         dict(width=w), 'SlimmableVGG-16 w1', None, SMALL)
    for w in (1.0, 0.5, 0.25)
] + [_resizable(*point) for point in RESIZABLE_POINTS]


def build(spec, quick, **overrides):
    """The backbone of ``spec`` in eval mode, its settings applied."""
    cfg = dict(spec.cfg, init_cfg=None, **(spec.quick if quick else {}))
    cfg.update(overrides)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg)
    if spec.settings:
        set_subnet(model, **spec.settings)
    model.eval()  # mmdet's ResNet.train returns None: no chaining
    return model


def complexity(specs, quick, device):
    """Params and GFLOPs at 224x224 (1 MAC = 1 FLOP, mmengine.analysis) of
    every backbone, next to the paper's figures, which count the ImageNet fc
    of ResNet-family backbones (added here; VGG: backbone only). Params of a
    switchable backbone are all its (shared) parameters; its FLOPs are the
    active sub-network's."""
    rows, size = [], 64 if quick else 224
    for spec in specs:
        model = build(spec, quick).to(device)
        fc = spec.cfg['type'] != 'SlimmableVGG'
        params = (sum(p.numel() for p in model.parameters()) +
                  (FC_PARAMS if fc else 0)) / 1e6
        gflops = backbone_gflops(
            model, torch.zeros(1, 3, size, size, device=device)) + (
                FC_FLOPS / 1e9 if fc else 0)
        paper_params, paper_gflops = spec.paper or (None, None)
        rows.append(
            dict(
                name=spec.name,
                classifier_included=fc,
                params_m=round(params, 3),
                gflops=round(gflops, 3),
                paper_params_m=paper_params,
                paper_gflops=paper_gflops,
                params_rel_diff=_rel(params, paper_params),
                gflops_rel_diff=_rel(gflops, paper_gflops)))
        print(f'[complexity] {spec.name}: {params:.3f}M, {gflops:.3f}G',
              flush=True)
    return rows


def _rel(value, paper):
    return None if paper is None else round(value / paper - 1, 4)


def forward(specs, quick, reps, device, sizes):
    """Forward latency (batch 1, eval, no autograd) of every backbone and
    its ratio to its baseline, per input size; backbones sharing a baseline
    are timed in the same interleaved rounds."""
    rows = []
    groups = {}
    for spec in specs:
        groups.setdefault(spec.baseline, []).append(spec)
    for size in sizes:
        for baseline, members in groups.items():
            models, fns = {}, {}
            x = torch.randn(1, 3, *size, device=device)
            for spec in members:
                models[spec.name] = build(spec, quick).to(device)
                fns[spec.name] = _forward_fn(models[spec.name], x)
            res = measure(fns, baseline, reps, device=device)
            for name, r in res.items():
                rows.append(
                    dict(name=name, size=list(size), baseline=baseline,
                         ms=round(r['ms'], 3), ratio=round(r['ratio'], 4),
                         times_ms=r['times_ms']))
                print(f'[backbones] {size[0]}x{size[1]} {name}: '
                      f"{r['ms']:.1f} ms, x{r['ratio']:.3f} {baseline}",
                      flush=True)
            del models, fns
    return rows


def _forward_fn(model, x):

    def run():
        with torch.no_grad():
            model(x)

    return run
