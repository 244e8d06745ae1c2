"""Markdown rendering of benchmark results: the full report of one run and
the compact table of model_zoo.md (CPU run, plus a GPU column when a CUDA
run exists)."""
from .machine import one_line


def _f(value, fmt='.2f', none='-'):
    return none if value is None else format(value, fmt)


def _pct(value):
    return '-' if value is None else f'{100 * value:+.1f}%'


def _table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _shape(row):
    return 'x'.join(map(str, row['shape']))


def conv_table(rows):
    return _table(
        ['shape', 'kind', 'mode', 'plan', 'dense ms', 'PSConv', 'dilated',
         'masked3', 'PSConv convs only', 'PSConv speed-up vs masked3'],
        [[_shape(r), r['kind'], r['mode'], r['plan'],
          _f(r['ms']['dense'], '.3f'), _f(r['ratio']['psconv']),
          _f(r['ratio']['dilated']), _f(r['ratio']['masked3']),
          _f(r['ratio'].get('psconv_convs')),
          _f(r['psconv_speedup_vs_masked3'])] for r in rows])


def _size(size):
    return f'{size[0]}x{size[1]}'


def _threads(n):
    return '-' if n is None else str(n)


def backbone_table(rows):
    return _table(
        ['mode', 'input', 'threads', 'backbone', 'ms', 'x baseline',
         'baseline'],
        [[r.get('mode', 'eval'), _size(r['size']),
          _threads(r.get('threads')), r['name'], _f(r['ms'], '.1f'),
          _f(r['ratio'], '.3f'), r['baseline']] for r in rows])


def compile_table(rows):
    return _table(
        ['backbone', 'mode', 'input', 'eager ms', 'compiled ms',
         'compiled / eager', 'compile s', 'baseline', 'x baseline, eager',
         'x baseline, both compiled', 'error'],
        [[r['name'], r['mode'], _size(r['size']),
          _f(r.get('eager_ms'), '.1f'), _f(r.get('compiled_ms'), '.1f'),
          _f(r.get('ratio'), '.3f'), _f(r.get('compile_s'), '.0f'),
          r.get('baseline', '-'), _f(r.get('eager_x_baseline'), '.3f'),
          _f(r.get('compiled_x_baseline'), '.3f'),
          r.get('error', '')] for r in rows])


def _shares(row, top=6):
    return ', '.join(f'{k} {100 * v:.0f}%'
                     for k, v in list(row['share'].items())[:top])


def profile_table(rows):
    return _table(
        ['backbone', 'input', 'forward ms (hooked)', 'own time by module '
         'type'],
        [[r['name'], _size(r['size']), _f(r['total_ms'], '.1f'),
          _shares(r)] for r in rows])


def complexity_table(rows):
    return _table(
        ['backbone', 'params (M)', 'paper', 'diff', 'GFLOPs', 'paper',
         'diff', 'ImageNet fc counted'],
        [[r['name'], _f(r['params_m'], '.3f'), _f(r['paper_params_m'], 'g'),
          _pct(r['params_rel_diff']), _f(r['gflops'], '.3f'),
          _f(r['paper_gflops'], 'g'), _pct(r['gflops_rel_diff']),
          'yes' if r['classifier_included'] else 'no'] for r in rows])


def detector_table(rows):
    return _table(
        ['backbone', 'iteration ms', 'baseline ms', 'x baseline',
         'peak MiB', 'x baseline peak'],
        [[r['name'], _f(r.get('ms'), '.0f'), _f(r.get('baseline_ms'), '.0f'),
          _f(r.get('ratio'), '.3f'), _f(r.get('peak_mib'), '.0f'),
          _f(r.get('peak_ratio'), '.3f')] for r in rows])


def run_markdown(results):
    """The full report of one run."""
    m, cfg = results['machine'], results['config']
    out = [f"# msdet benchmark ({m['device']})", '',
           f'Machine: {one_line(m)}.', '',
           f"Command: `{cfg['command']}`. Timing: {cfg['timing']} CPU "
           f"allocator: {cfg.get('malloc', 'default')}.", '']
    if results.get('convs'):
        out += [f"## One 3x3 layer (batch {cfg['conv_batch']}, fp32; "
                'ratios to the dense conv)', '', conv_table(results['convs']),
                '']
    if results.get('backbones'):
        out += ['## Backbones: eval forward (batch 1, no autograd) and '
                'training step (batch 2, forward + backward)', '',
                backbone_table(results['backbones']), '']
    if results.get('compile'):
        out += ['## Backbones: torch.compile (inductor) vs eager, 1 thread',
                '', compile_table(results['compile']), '']
    if results.get('profile'):
        out += ['## Backbones: eval forward time by module type (1 thread, '
                "each module's own time: its call less its children's)", '',
                profile_table(results['profile']), '']
    if results.get('complexity'):
        out += ['## Backbones: params and GFLOPs (224x224, mmengine.analysis)',
                '', complexity_table(results['complexity']), '']
    if results.get('detector'):
        det = cfg['detector']
        out += [f"## Mask R-CNN training iteration ({det['batch']} x "
                f"{det['size'][0]}x{det['size'][1]}, SGD step)", '',
                detector_table(results['detector']), '']
    return '\n'.join(out).rstrip() + '\n'


def _by(rows, key):
    return {key(r): r for r in rows or []}


def zoo_markdown(cpu, gpu=None):
    """The model_zoo.md table: the CPU run, with GPU columns if ``gpu``."""
    runs = [('CPU', cpu)] + ([('GPU', gpu)] if gpu else [])
    out = ['Generated by `python -m bench.run --model-zoo` (ratios measured '
           'in the same process, interleaved, median of per-round ratios; '
           f"CPU allocator: {cpu['config'].get('malloc', 'default')}, see "
           'bench/timing.py).']
    out += [f"- {name}: {one_line(r['machine'])}" for name, r in runs]
    if not gpu:
        out.append('- GPU: no CUDA run yet (`python -m bench.run --device '
                   'cuda --model-zoo` adds its columns).')
    convs = [_by(r.get('convs'), lambda x: (_shape(x), x['mode']))
             for _, r in runs]
    shapes = [_shape(r) for r in cpu.get('convs', []) if r['mode'] == 'fwd']
    if shapes:
        header = ['PSConv / dense 3x3 (batch 2)']
        for name, _ in runs:
            header += [f'{name} fwd', f'{name} fwd+bwd',
                       f'{name} speed-up vs 3 masked convs']
        rows = []
        for s in shapes:
            row = [s]
            for c in convs:
                f, b = c.get((s, 'fwd')), c.get((s, 'fwd+bwd'))
                row += [_f(f and f['ratio']['psconv']),
                        _f(b and b['ratio']['psconv']),
                        _f(f and f['psconv_speedup_vs_masked3'])]
            rows.append(row)
        out += ['', _table(header, rows)]
    comp = _by(cpu.get('complexity'), lambda x: x['name'])
    fwd = [_by(r.get('backbones'), lambda x: (x['name'], x.get(
        'mode', 'eval'), tuple(x['size']), x.get('threads')))
           for _, r in runs]
    det = [_by(r.get('detector'), lambda x: x['name']) for _, r in runs]
    comps = [_by(r.get('compile'), lambda x: (x['name'], x['mode']))
             for _, r in runs]
    cases = [sorted({k[1:] for k in f}, key=lambda c: (
        c[2] or 0, c[0], c[1])) for f in fwd]
    names = list(comp) or list(dict.fromkeys(k[0] for k in fwd[0]))
    if names:
        header = ['backbone', 'params M (paper)', 'GFLOPs (paper)']
        for (name, _), cs in zip(runs, cases):
            header += [f'{name} {m} {_size(s)}'
                       + ('' if n is None else f' {n}t') + ' (x baseline)'
                       for m, s, n in cs]
            header += [f'{name} Mask R-CNN iter (x)',
                       f'{name} peak mem (x)',
                       f'{name} compiled / eager (eval, train)']
        rows = []
        for n in names:
            c = comp.get(n, {})
            row = [n, f"{_f(c.get('params_m'), '.3f')} "
                   f"({_f(c.get('paper_params_m'), 'g')})",
                   f"{_f(c.get('gflops'), '.3f')} "
                   f"({_f(c.get('paper_gflops'), 'g')})"]
            for f, d, cp, cs in zip(fwd, det, comps, cases):
                row += [_f((f.get((n, ) + k) or {}).get('ratio'), '.3f')
                        for k in cs]
                r = d.get(n, {})
                row += [_f(r.get('ratio'), '.3f'),
                        _f(r.get('peak_ratio'), '.3f'),
                        ', '.join(_compiled(cp.get((n, m)))
                                  for m in ('eval', 'train'))]
            rows.append(row)
        out += ['', 'Baselines: ResNet-50 for PS-ResNet (also in the PSConv '
                "release's form: three convolutions per PSConv), ScaleNet "
                'and Resizable; ResNeXt-50 for (s)Elastic; width 1.0 for '
                'slimmable VGG. Compiled / eager: one backbone per design, '
                '1 thread.', '', _table(header, rows)]
    prof = cpu.get('profile') or []
    if prof:
        first = prof[0]['size']
        out += ['', f'Where the time goes (CPU, eval forward {_size(first)}, '
                "1 thread; each module type's own time as a share of the "
                'forward):', '', _table(
                    ['backbone', 'forward ms (hooked)',
                     'share by module type'],
                    [[r['name'], _f(r['total_ms'], '.1f'), _shares(r, 5)]
                     for r in prof if r['size'] == first])]
    return '\n'.join(out) + '\n'


def _compiled(row):
    if not row:
        return '-'
    return 'fails' if 'error' in row else _f(row.get('ratio'), '.3f')
