"""Design studies: per-run scale-sweep results summarised over seeds and
compared with a baseline, paired by seed.

A *run* is one (design, seed): a dict with ``design``, ``seed`` and
``rows`` (the scale sweep's result rows, :mod:`msdet.evaluation.
scale_report`). Runs are grouped by design and *setting* (sub-network and
test short side). Per group: the mean and sample standard deviation over
seeds of every COCO number, GFLOPs and latency, and, for every design but
the baseline, the paired difference to the baseline at the same setting:
``d_s = design_s - baseline_s`` for each seed ``s`` that both have, its
mean and a two-sided Student-t confidence interval,
``mean(d) +- t_{(1 + level) / 2, n - 1} * sd(d) / sqrt(n)`` (the paired
t-interval; needs n >= 2 seeds). The baseline may be several designs whose
settings do not overlap (e.g. sub-networks each trained alone), which
together give one reference per setting.
"""
import csv
import io
import math

from .scale_report import SIZE_KEYS, TASKS, _save, pareto_front
from .scale_metric import STAT_NAMES
from ..utils.fileio import atomic_open, dump_json

#: Numbers averaged per setting besides the COCO ones.
COST_KEYS = ('gflops_backbone', 'gflops_model', 'latency_ms')
METRIC_KEYS = tuple(f'{t}_{s}' for t in TASKS for s in STAT_NAMES)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------
def _t_cdf(x, df):
    """P(T <= x), T ~ Student-t with ``df`` degrees of freedom: 1/2 plus
    the density integrated over [0, x] (composite Simpson, 2000 panels on
    the substitution x = tan(u), where the density is smooth)."""
    if x < 0:
        return 1.0 - _t_cdf(-x, df)
    log_c = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) -
             0.5 * math.log(df * math.pi))

    def g(u):  # density(tan u) * d(tan u)/du
        t = math.tan(u)
        return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df)) / \
            math.cos(u) ** 2

    n, top = 2000, math.atan(x)
    h = top / n
    s = g(0.0) + g(top) + sum((4 if k % 2 else 2) * g(k * h)
                              for k in range(1, n))
    return 0.5 + s * h / 3


def t_quantile(p, df):
    """The ``p`` quantile of Student's t with ``df`` >= 1 degrees of
    freedom (bisection on :func:`_t_cdf`; within 1e-6 of the tables)."""
    if not 0 < p < 1 or df < 1:
        raise ValueError(f't_quantile: p={p!r} must be in (0, 1) and '
                         f'df={df!r} >= 1.')
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_sd(values):
    """Mean and sample standard deviation (``None`` for fewer than 2)."""
    n = len(values)
    if not n:
        return None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean)**2 for v in values) / (n - 1))


def paired_difference(pairs, level=0.95):
    """``pairs``: ``[(design, baseline), ...]`` over seeds. Returns
    ``(mean, low, high, n)`` of ``design - baseline``; the interval is the
    two-sided paired Student-t interval at ``level`` (``None`` with fewer
    than 2 pairs)."""
    diffs = [a - b for a, b in pairs]
    mean, sd = mean_sd(diffs)
    if sd is None:
        return mean, None, None, len(diffs)
    half = t_quantile((1 + level) / 2, len(diffs) - 1) * sd / \
        math.sqrt(len(diffs))
    return mean, mean - half, mean + half, len(diffs)


# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------
def _settings(runs):
    """``{design: {(subnet, short_side): {seed: row}}}`` and the designs
    and settings in first-seen order."""
    table = {}
    for run in runs:
        per = table.setdefault(run['design'], {})
        for row in run['rows']:
            key = (row['subnet'], row['short_side'])
            seeds = per.setdefault(key, {})
            if run['seed'] in seeds:
                raise ValueError(f"design {run['design']!r} seed "
                                 f"{run['seed']}: setting {key} appears "
                                 'twice.')
            seeds[run['seed']] = row
    return table


def summarize(runs, baseline, level=0.95):
    """One summary row per (design, setting); see the module doc.

    Args:
        runs (list[dict]): ``dict(design, seed, rows)`` per finished run.
        baseline (str | Sequence[str]): the reference design(s).
        level (float): confidence level of the intervals, in (0, 1).

    Returns a list of flat dicts: ``design``, ``subnet``, ``width``,
    ``short_side``, ``seeds`` (list), ``n``; per cost key and COCO number
    ``<key>_mean`` / ``<key>_sd``; per COCO number ``<key>_diff``,
    ``<key>_diff_low``, ``<key>_diff_high``, ``<key>_diff_n`` (paired
    seeds) and ``baseline`` (the design paired with), ``None`` for the
    baseline's own rows and where nothing pairs. COCO numbers are
    fractions (0-1) as in the sweep rows.
    """
    if not 0 < level < 1:
        raise ValueError(f'confidence level {level!r}; allowed: (0, 1).')
    baselines = [baseline] if isinstance(baseline, str) else list(baseline)
    table = _settings(runs)
    missing = [b for b in baselines if b not in table]
    if missing:
        raise ValueError(f'baseline {missing} has no finished run; '
                         f'designs with results: {sorted(table)}.')
    reference = {}
    for b in baselines:
        for key, seeds in table[b].items():
            if key in reference:
                raise ValueError(
                    f'baselines {reference[key][0]!r} and {b!r} both have '
                    f'setting {key}; give baselines whose settings do not '
                    'overlap.')
            reference[key] = (b, seeds)
    out = []
    for design, settings in table.items():
        for (subnet, short), seeds in settings.items():
            rows = [seeds[s] for s in sorted(seeds)]
            rec = dict(design=design, subnet=subnet,
                       width=rows[0].get('width'), short_side=short,
                       seeds=sorted(seeds), n=len(seeds))
            for key in COST_KEYS + METRIC_KEYS:
                vals = [r[key] for r in rows if r.get(key) is not None]
                rec[f'{key}_mean'], rec[f'{key}_sd'] = mean_sd(vals)
            ref = None if design in baselines else reference.get(
                (subnet, short))
            rec['baseline'] = ref[0] if ref else None
            for key in METRIC_KEYS:
                pairs = [] if ref is None else [
                    (seeds[s][key], ref[1][s][key]) for s in sorted(seeds)
                    if s in ref[1] and seeds[s].get(key) is not None
                    and ref[1][s].get(key) is not None]
                diff = paired_difference(pairs, level) if pairs else \
                    (None, None, None, 0)
                for suffix, v in zip(('', '_low', '_high', '_n'), diff):
                    rec[f'{key}_diff{suffix}'] = v
            out.append(rec)
    return out


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------
def _pct(v, sign=False):
    if v is None:
        return 'n/a'
    return f'{100 * v:+.1f}' if sign else f'{100 * v:.1f}'


def _mean_sd_cell(rec, key):
    mean, sd = rec[f'{key}_mean'], rec[f'{key}_sd']
    if mean is None:
        return 'n/a'
    return _pct(mean) + ('' if sd is None else f' ± {100 * sd:.1f}')


def _diff_cell(rec, key):
    if rec['baseline'] is None or rec[f'{key}_diff'] is None:
        return ''
    cell = _pct(rec[f'{key}_diff'], sign=True)
    if rec[f'{key}_diff_low'] is not None:
        cell += (f" [{_pct(rec[f'{key}_diff_low'], True)}, "
                 f"{_pct(rec[f'{key}_diff_high'], True)}]")
    return cell


def _num(v, digits):
    return 'n/a' if v is None else f'{v:.{digits}f}'


def markdown_table(summary, task='bbox', level=0.95):
    """Per design and setting: seeds, GFLOPs (backbone / whole model),
    latency, ``task`` AP and AP_S/M/L as mean ± sd over seeds, and the
    paired differences to the baseline with their ``level`` t-interval."""
    keys = ['AP'] + list(SIZE_KEYS)
    ci = f'{round(100 * level)}% CI'
    head = (['design', 'sub-network', 'scale', 'seeds', 'GFLOPs bb',
             'GFLOPs all', 'ms/img'] + [f'{task} {k}' for k in keys] +
            [f'Δ{k} [{ci}]' for k in keys])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for rec in summary:
        cells = [rec['design'], rec['subnet'] or 'full',
                 str(rec['short_side']), str(rec['n']),
                 _num(rec['gflops_backbone_mean'], 2),
                 _num(rec['gflops_model_mean'], 2),
                 _num(rec['latency_ms_mean'], 1)]
        cells += [_mean_sd_cell(rec, f'{task}_{k}') for k in keys]
        cells += [_diff_cell(rec, f'{task}_{k}') for k in keys]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def tasks_present(summary):
    return [t for t in TASKS
            if any(r[f'{t}_AP_mean'] is not None for r in summary)]


def write_summary(summary, json_path, csv_path, extra=None):
    """The summary as JSON (``extra`` merged in at the top level) and CSV,
    both written atomically."""
    dump_json(dict(extra or {}, summary=summary), json_path, indent=1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(summary[0]))
    writer.writeheader()
    for rec in summary:
        writer.writerow({k: ('n/a' if v is None else
                             ' '.join(map(str, v)) if isinstance(v, list)
                             else v) for k, v in rec.items()})
    with atomic_open(csv_path) as f:
        f.write(buf.getvalue())


def _by_design(summary):
    out = {}
    for rec in summary:
        out.setdefault(rec['design'], []).append(rec)
    return out


def _main_subnet(recs):
    """A design's sub-network for the per-scale plot: its widest, else the
    first listed."""
    return max(recs, key=lambda r: r['width'] or 0)['subnet']


def plot_scale(summary, path, task='bbox'):
    """AP_S / AP_M / AP_L (mean over seeds, band: ± one sd) against the test
    short side, one curve per design (its main sub-network)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for design, recs in _by_design(summary).items():
        pick = _main_subnet(recs)
        sel = sorted((r for r in recs if r['subnet'] == pick),
                     key=lambda r: r['short_side'])
        xs = [r['short_side'] for r in sel]
        for ax, size in zip(axes, SIZE_KEYS):
            key = f'{task}_{size}'
            mean = [_nan(r[f'{key}_mean']) for r in sel]
            sd = [r[f'{key}_sd'] or 0.0 for r in sel]
            (line, ) = ax.plot(xs, mean, marker='o', label=design)
            ax.fill_between(xs, [m - s * 100 for m, s in zip(mean, sd)],
                            [m + s * 100 for m, s in zip(mean, sd)],
                            color=line.get_color(), alpha=0.2)
    for ax, size in zip(axes, SIZE_KEYS):
        ax.set_title(f'{task} {size} (mean ± sd over seeds)')
        ax.set_xlabel('test short side (px)')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('AP')
    axes[-1].legend(fontsize=8)
    _save(fig, path)
    return axes


def _nan(v):
    return float('nan') if v is None else 100 * v


def plot_flops(summary, path, task='bbox'):
    """AP (mean, error bar ± one sd) against backbone GFLOPs (left) and
    whole-model GFLOPs (right): every setting of a design as a point, the
    design's Pareto front as its line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, cost in zip(axes, ('gflops_backbone', 'gflops_model')):
        for design, recs in _by_design(summary).items():
            pts = [(r[f'{cost}_mean'], 100 * r[f'{task}_AP_mean'],
                    100 * (r[f'{task}_AP_sd'] or 0.0)) for r in recs
                   if r[f'{cost}_mean'] is not None
                   and r[f'{task}_AP_mean'] is not None]
            if not pts:
                continue
            front = pareto_front([p[:2] for p in pts])
            (line, ) = ax.plot(*zip(*front), label=design)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                        yerr=[p[2] for p in pts], fmt='o', ms=4,
                        color=line.get_color(), alpha=0.6, capsize=2)
        ax.set_xlabel(f"GFLOPs per image ({cost.split('_')[1]})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f'{task} AP')
    axes[-1].legend(fontsize=8)
    _save(fig, path)
    return axes
