"""The backbones compared, their baselines and paper figures; whole-backbone
timing (eval forward, training step; 1 and 2 threads), compiled vs eager,
a time profile per module type, and parameter / FLOP counts."""
import statistics
import time
from collections import namedtuple

import torch
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope

from msdet.evaluation.complexity import backbone_gflops
from msdet.ops import set_subnet

from .convs import to_release_form
from .timing import measure, summarize

#: ``cfg``: the backbone; ``settings``: ``set_subnet`` keys; ``baseline``:
#: the name it is timed against (in the same interleaved rounds);
#: ``paper``: (params in M, GFLOPs) of the ImageNet classifier, ``None``
#: where the paper gives none; ``quick``: overrides for ``--quick``;
#: ``form``: ``None``, or a function turning the built backbone into the
#: official release's computation of the same design (plain torch).
Spec = namedtuple('Spec', 'name cfg settings baseline paper quick form',
                  defaults=(None, ))
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
    # the same network computed as the PSConv release does (three convs per
    # PSConv, 1.5x its multiply-adds)
    Spec('PS-ResNet-50 release form', dict(type='PSResNet', depth=50), {},
         'ResNet-50', None, SMALL, to_release_form),
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
    if spec.form is not None:
        model = spec.form(model)
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


def cases(sizes, train_size, threads):
    """(mode, size, threads) of the timing section: eval forward at every
    size and a training step at ``train_size``, at every thread count."""
    return [(mode, tuple(size), n) for n in threads
            for mode, size in [('eval', s) for s in sizes] +
            [('train', train_size)]]


def timed(specs, quick, reps, device, sizes, train_size, threads):
    """Latency of every backbone and its ratio to its baseline: eval forward
    (batch 1, no autograd) at each of ``sizes`` and a training step
    (forward + backward, train mode, batch 2) at ``train_size``, each at
    every thread count of ``threads`` (CPU; ``[None]``: as set). Backbones
    sharing a baseline are timed in the same interleaved rounds."""
    rows = []
    groups = {}
    for spec in specs:
        groups.setdefault(spec.baseline, []).append(spec)
    before = torch.get_num_threads()
    for mode, size, n in cases(sizes, train_size, threads):
        if n is not None:
            torch.set_num_threads(n)
        for baseline, members in groups.items():
            fns = {spec.name: step_fn(build(spec, quick).to(device), mode,
                                      size, device) for spec in members}
            res = measure(fns, baseline, reps, device=device)
            for name, r in res.items():
                rows.append(
                    dict(name=name, mode=mode, size=list(size), threads=n,
                         baseline=baseline, ms=round(r['ms'], 3),
                         ratio=round(r['ratio'], 4), times_ms=r['times_ms']))
                print(f'[backbones] {mode} {size[0]}x{size[1]} {n} thr '
                      f"{name}: {r['ms']:.1f} ms, x{r['ratio']:.3f} "
                      f'{baseline}', flush=True)
            del fns
    torch.set_num_threads(before)
    return rows


def step_fn(model, mode, size, device):
    """A zero-argument call of ``model``: ``'eval'``, a batch-1 forward
    without autograd (eval mode); ``'train'``, forward + backward of a
    batch of 2 in train mode (gradients reset first)."""
    if mode == 'eval':
        model.eval()
        x = torch.randn(1, 3, *size, device=device)

        def run():
            with torch.no_grad():
                model(x)

        return run
    model.train()
    x = torch.randn(2, 3, *size, device=device)
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        for p in params:
            p.grad = None
        sum(o.float().mean() for o in model(x)).backward()

    return step


def compile_first(specs):
    """One spec per backbone design (config type and form): what the compile
    section compiles."""
    seen, keep = set(), []
    for spec in specs:
        key = (spec.cfg['type'], spec.form)
        if key not in seen:
            seen.add(key)
            keep.append(spec)
    return keep


def compiled(specs, quick, reps, device, size, train_size):
    """``torch.compile`` (inductor) against eager for one spec per design
    (``compile_first``), eval forward at ``size`` and training step at
    ``train_size``, interleaved: compiled / eager time, the first call's
    seconds (compilation), and the error where compilation fails. A design
    timed against another backbone (``Spec.baseline``) has that baseline,
    eager and compiled, in the same rounds: its ratio to the baseline
    eager / eager and compiled / compiled."""
    by_name = {spec.name: spec for spec in specs}
    rows = []
    for spec in compile_first(specs):
        base = by_name.get(spec.baseline)
        base = None if base is None or base.name == spec.name else base
        for mode, sz in (('eval', size), ('train', train_size)):
            torch._dynamo.reset()
            row = dict(name=spec.name, mode=mode, size=list(sz))
            try:
                fns = {}
                for key, s in (('', spec), ('baseline ', base)):
                    if s is None:
                        continue
                    model = build(s, quick).to(device)
                    fns[key + 'eager'] = step_fn(model, mode, sz, device)
                    fast = step_fn(torch.compile(model), mode, sz, device)
                    start = time.perf_counter()
                    fast()
                    row[key.replace(' ', '_') + 'compile_s'] = round(
                        time.perf_counter() - start, 1)
                    fns[key + 'compiled'] = fast
                res = measure(fns, 'eager', reps, device=device)
                row.update(eager_ms=round(res['eager']['ms'], 3),
                           compiled_ms=round(res['compiled']['ms'], 3),
                           ratio=round(res['compiled']['ratio'], 4),
                           times_ms=res['compiled']['times_ms'],
                           eager_times_ms=res['eager']['times_ms'])
                note = ''
                if base is not None:
                    row['baseline'] = base.name
                    for key in ('eager', 'compiled'):
                        vs = summarize({key: res[key]['times_ms'],
                                        'base': res['baseline ' + key][
                                            'times_ms']}, 'base')
                        row[key + '_x_baseline'] = round(vs[key]['ratio'], 4)
                        row['baseline_' + key + '_times_ms'] = res[
                            'baseline ' + key]['times_ms']
                    note = (f", x{row['eager_x_baseline']:.3f} / "
                            f"x{row['compiled_x_baseline']:.3f} "
                            f'{base.name} (eager / compiled)')
                print(f'[compile] {mode} {spec.name}: compiled/eager '
                      f"x{row['ratio']:.3f} (compile {row['compile_s']} s)"
                      + note, flush=True)
            except Exception as e:  # reported, the suite goes on
                row['error'] = f'{type(e).__name__}: {e}'.splitlines()[0]
                print(f"[compile] {mode} {spec.name}: {row['error']}",
                      flush=True)
            rows.append(row)
            fns = None
    torch._dynamo.reset()
    return rows


def module_type(module):
    """The profile's key of ``module``: its class name, with the kernel size
    for convolutions (``Conv2d 3x3``: the layers PSConv replaces)."""
    name = type(module).__name__
    if isinstance(module, torch.nn.Conv2d):
        name += ' {}x{}'.format(*module.kernel_size)
    return name


class ModuleTimer:
    """Forward time of a model split by module type: hooks on every module
    time each call; a module's own (exclusive) time is its call's time less
    its children's calls, summed per ``module_type``."""

    def __init__(self, model):
        self.model, self.stack, self.own = model, [], {}
        self.handles = []
        for m in model.modules():
            self.handles.append(m.register_forward_pre_hook(self._enter))
            self.handles.append(m.register_forward_hook(self._leave))

    def _enter(self, module, args):
        self.stack.append([time.perf_counter(), 0.0])

    def _leave(self, module, args, output):
        start, children = self.stack.pop()
        spent = time.perf_counter() - start
        name = module_type(module)
        self.own[name] = self.own.get(name, 0.0) + spent - children
        if self.stack:
            self.stack[-1][1] += spent

    def remove(self):
        for h in self.handles:
            h.remove()


def profile(specs, quick, reps, device, sizes):
    """Per backbone and size: eval forward time (batch 1) split by module
    type (``ModuleTimer``; median over ``reps`` rounds after a warm-up, the
    backbones of a size called in turn within each round), as ms and as a
    share of the forward."""
    rows = []
    for size in sizes:
        runs = {}
        for spec in specs:
            model = build(spec, quick).to(device)
            runs[spec.name] = (model, step_fn(model, 'eval', size, device))
            runs[spec.name][1]()
        calls = {name: [] for name in runs}
        for _ in range(reps):
            for name, (model, run) in runs.items():
                timer = ModuleTimer(model)
                run()
                timer.remove()
                calls[name].append(timer.own)
        for name, own in calls.items():
            ms = {k: 1e3 * statistics.median(c[k] for c in own)
                  for k in own[0]}
            total = sum(ms.values())
            ms = dict(sorted(ms.items(), key=lambda kv: -kv[1]))
            rows.append(dict(name=name, size=list(size),
                             total_ms=round(total, 3),
                             ms={k: round(v, 3) for k, v in ms.items()},
                             share={k: round(v / total, 4)
                                    for k, v in ms.items()}))
            print(f'[profile] {size[0]}x{size[1]} {name}: ' + ', '.join(
                f'{k} {100 * v / total:.0f}%' for k, v in list(ms.items())[
                    :4]), flush=True)
        del runs
    return rows
