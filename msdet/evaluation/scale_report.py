"""Tables, files, plots and budget queries for accuracy-across-scale results.

A result is a list of rows, one per (model, sub-network, test scale); each
row is flat: ``model``, ``subnet`` (e.g. "width=0.5", "" for the model as
built, "adaptive" for a model routing each image to a sub-network),
``width``, ``short_side``, ``gflops_backbone``, ``gflops_model`` (for a
routing model the mean per image spent, routing included),
``gflops_routing``, ``choices`` (fraction of images per sub-network),
``latency_ms``, ``bbox_AP`` ... ``segm_AP_L``, ``bbox_AP_S_resized`` ...,
``gt_small`` ... Missing values (no ground truth in a bucket, a task the
model lacks, a fixed model's routing) are ``None`` and read "n/a".
"""
import csv
import io
import json

from .buckets import BUCKETS
from .scale_metric import STAT_NAMES
from ..utils.fileio import atomic_open, dump_json

_MMDET_KEYS = dict(zip(STAT_NAMES, ('mAP', 'mAP_50', 'mAP_75', 'mAP_s',
                                    'mAP_m', 'mAP_l')))
TASKS = ('bbox', 'segm')
SIZE_KEYS = ('AP_S', 'AP_M', 'AP_L')


def subnet_name(settings):
    """``"resize1=0.5, resize2=1.0"``: a sub-network's settings as text."""
    return ', '.join(f'{k}={v}' for k, v in (settings or {}).items())


def record_to_row(model, record):
    """Flatten one ``ScaleSweepTestLoop`` record into a result row."""
    m = record['metrics']
    subnet = record['subnet'] or {}
    row = dict(model=model, width=subnet.get('width'),
               subnet=record.get('name') or subnet_name(subnet),
               short_side=record['short_side'], scale=record['scale'],
               input_shape=record.get('input_shape'),
               gflops_backbone=record.get('gflops_backbone'),
               gflops_model=record.get('gflops_model'),
               gflops_routing=record.get('gflops_routing'),
               choices=record.get('choices'),
               latency_ms=record['latency_ms'])
    for task in TASKS:
        for name, key in _MMDET_KEYS.items():
            v = m.get(f'coco/{task}_{key}')
            row[f'{task}_{name}'] = None if v is None or v < 0 else v
        for name in SIZE_KEYS:
            row[f'{task}_{name}_resized'] = m.get(
                f'coco/{task}_{name}_resized')
    for suffix in ('', '_resized'):
        for b in BUCKETS:
            row[f'gt_{b}{suffix}'] = m.get(f'coco/gt_{b}{suffix}')
    return row


def _fmt(v, scale=1.0, digits=1):
    return 'n/a' if v is None else f'{v * scale:.{digits}f}'


def markdown_table(rows):
    """One line per row; with several models, AP differences to the first
    model at the same (sub-network, scale) follow each model's line."""
    tasks = [t for t in TASKS if any(r[f'{t}_AP'] is not None for r in rows)]
    head = ['model', 'sub-network', 'scale', 'GFLOPs bb', 'GFLOPs all',
            'ms/img']
    for t in tasks:
        head += [f'{t} {n}' for n in STAT_NAMES]
        head += [f'{t} {n} (resized)' for n in SIZE_KEYS]
    head += ['GT S/M/L', 'GT S/M/L (resized)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    base = {}
    for r in rows:
        key = (r['subnet'], r['short_side'])
        base.setdefault(key, r)
        cells = [r['model'], r['subnet'] or 'full',
                 str(r['short_side']), _fmt(r['gflops_backbone'], digits=2),
                 _fmt(r['gflops_model'], digits=2), _fmt(r['latency_ms'])]
        for t in tasks:
            cells += [_fmt(r[f'{t}_{n}'], 100) for n in STAT_NAMES]
            cells += [_fmt(r[f'{t}_{n}_resized'], 100) for n in SIZE_KEYS]
        for suffix in ('', '_resized'):
            cells.append('/'.join(_fmt(r[f'gt_{b}{suffix}'], digits=0)
                                  for b in BUCKETS))
        lines.append('| ' + ' | '.join(cells) + ' |')
        ref = base[key]
        if ref is not r:
            diff = [f"Δ vs {ref['model']}", '', '', '', '', '']
            for t in tasks:
                diff += [_delta(r, ref, f'{t}_{n}') for n in STAT_NAMES]
                diff += [_delta(r, ref, f'{t}_{n}_resized')
                         for n in SIZE_KEYS]
            lines.append('| ' + ' | '.join(diff + ['', '']) + ' |')
    return '\n'.join(lines)


def _delta(row, ref, key):
    a, b = row[key], ref[key]
    return 'n/a' if a is None or b is None else f'{100 * (a - b):+.1f}'


def write_results(rows, json_path, csv_path):
    """Write the rows as JSON and CSV, atomically."""
    dump_json(rows, json_path, indent=1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: 'n/a' if v is None else v for k, v in r.items()})
    with atomic_open(csv_path) as f:
        f.write(buf.getvalue())


def load_results(path):
    """Rows from a result JSON; one clear error for a missing/empty file."""
    try:
        with open(path) as f:
            rows = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'result file {path!r} not found.') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'result file {path!r} is not JSON: {e}.') from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f'result file {path!r} holds no results; run '
                         'tools/analysis/scale_benchmark.py first.')
    return rows


def _by_model(rows):
    models = {}
    for r in rows:
        models.setdefault(r['model'], []).append(r)
    return models


def pareto_front(points):
    """Points (cost, value) not dominated by a cheaper, at least as good one,
    sorted by cost."""
    front, best = [], float('-inf')
    for cost, value in sorted(points, key=lambda p: (p[0], -p[1])):
        if value > best:
            front.append((cost, value))
            best = value
    return front


def plot_ap_vs_scale(rows, path, task='bbox'):
    """AP_S / AP_M / AP_L against the test short side, one curve per model
    (its widest sub-network, or its first listed one). Returns the axes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for name, mrows in _by_model(rows).items():
        pick = max(mrows, key=lambda r: r['width'] or 0)['subnet']
        sel = sorted((r for r in mrows if r['subnet'] == pick),
                     key=lambda r: r['short_side'])
        for ax, size in zip(axes, SIZE_KEYS):
            ys = [r[f'{task}_{size}'] for r in sel]
            ax.plot([r['short_side'] for r in sel],
                    [float('nan') if y is None else 100 * y for y in ys],
                    marker='o', label=name)
    for ax, size in zip(axes, SIZE_KEYS):
        ax.set_title(f'{task} {size}')
        ax.set_xlabel('test short side (px)')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('AP')
    axes[-1].legend()
    _save(fig, path)
    return axes


def plot_ap_vs_flops(rows, path, task='bbox'):
    """AP against whole-model GFLOPs, one curve per model: all settings for a
    fixed model, the Pareto front for a switchable one (its other settings
    as dots). Returns the axes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, mrows in _by_model(rows).items():
        pts = [(r['gflops_model'], 100 * r[f'{task}_AP']) for r in mrows
               if r['gflops_model'] is not None and
               r[f'{task}_AP'] is not None]
        curve = pareto_front(pts) if len({r['subnet'] for r in mrows}) > 1 \
            else sorted(pts)
        (line, ) = ax.plot(*zip(*curve), marker='o', label=name)
        others = [p for p in pts if p not in curve]
        if others:
            ax.scatter(*zip(*others), color=line.get_color(), alpha=0.4)
    ax.set_xlabel('GFLOPs (whole model, per image)')
    ax.set_ylabel(f'{task} AP')
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    return ax


def plot_adapt_vs_fixed(rows, path, task='bbox'):
    """Resizable-Adapt next to the fixed configurations and the oracle (the
    paper's fig. 3d): AP against whole-model (left) and backbone (right)
    GFLOPs per image. Rows of model ``fixed``: dots and their Pareto front
    (the lookup table); ``oracle``: a line over the FLOPs ceilings; any
    other model: one marker per row (an adaptive model). Returns the axes.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    models = _by_model(rows)
    colors = ('tab:blue', 'tab:orange', 'tab:red', 'tab:purple',
              'tab:brown', 'tab:pink', 'tab:olive', 'tab:cyan')
    for ax, part in zip(axes, ('model', 'backbone')):
        def points(mrows):
            return [(r[f'gflops_{part}'], 100 * r[f'{task}_AP'])
                    for r in mrows if r[f'{task}_AP'] is not None]

        adaptive = 0
        for name, mrows in models.items():
            pts = points(mrows)
            if name == 'fixed':
                front = pareto_front(pts)
                ax.scatter(*zip(*pts), color='0.6', s=16,
                           label='fixed configurations')
                ax.plot(*zip(*front), color='0.3', marker='o',
                        label='fixed: Pareto front (lookup table)')
            elif name == 'oracle':
                ax.plot(*zip(*sorted(pts)), color='tab:green', ls='--',
                        marker='^', label='oracle (best per image)')
            else:
                ax.scatter(*zip(*pts), marker='*', s=180, zorder=3,
                           color=colors[adaptive % len(colors)],
                           label=f'Resizable-Adapt: {name}')
                adaptive += 1
        ax.set_xlabel(f'GFLOPs per image, {part}'
                      + (' (adaptive: routing + mean spent)'
                         if part == 'model' else ' (adaptive: + routing)'))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f'{task} AP')
    axes[-1].legend(fontsize=8)
    _save(fig, path)
    return axes


def _save(fig, path):
    import matplotlib.pyplot as plt
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100, bbox_inches='tight')
    plt.close(fig)


def query_best(rows, max_gflops=None, max_latency_ms=None, metric='bbox_AP',
               model=None):
    """The row with the highest ``metric`` whose cost fits the budget
    (MutualNet 3.2 query table, Resizable-NAS 3.3 lookup table)."""
    if max_gflops is None and max_latency_ms is None:
        raise ValueError('give a budget: max_gflops and/or max_latency_ms.')
    if metric not in rows[0]:
        allowed = [k for k in rows[0] if k.startswith(TASKS)]
        raise ValueError(f'metric {metric!r} not in the results; allowed: '
                         f'{allowed}.')
    fits = [r for r in rows
            if (model is None or r['model'] == model)
            and r[metric] is not None
            and (max_gflops is None or (r['gflops_model'] is not None and
                                        r['gflops_model'] <= max_gflops))
            and (max_latency_ms is None or r['latency_ms'] <= max_latency_ms)]
    if not fits:
        raise ValueError(f'no setting fits max_gflops={max_gflops}, '
                         f'max_latency_ms={max_latency_ms}'
                         + (f' for model {model!r}' if model else '') + '.')
    return max(fits, key=lambda r: r[metric])
