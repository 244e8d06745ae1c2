"""Resizable-Adapt against the fixed configurations of the lookup table and
the oracle, on one AP-vs-GFLOPs plot (Resizable paper 4.4, fig. 3d, for
detection).

    python tools/analysis/resizable_adapt_report.py CONFIG CHECKPOINT \\
        [--compare CONFIG2 CHECKPOINT2 ...] [--names A B ...] \\
        [--configurations 1,1,1,1 ...] \\
        [--work-dir work_dirs/resizable_adapt_report] [--cfg-options ...]

CONFIG / CHECKPOINT: a trained Resizable-Adapt detector (the config the
targets tool wrote, the learner's checkpoint); ``--compare`` adds others
(e.g. learners for other FLOPs ceilings, or reading another stage). On the
config's test set, at its test scale, one image at a time:

- *adaptive*: each model through msdet's ``ScaleSweepTestLoop``: COCO AP,
  AP_S/M/L and the mean per-image GFLOPs actually spent (routing + the
  chosen configurations, mixed by how often each was chosen);
- *fixed*: every candidate configuration of the learners (plus
  ``--configurations``) run on every image by the first model's frozen
  super-network, evaluated as a whole: the lookup-table points
  (Resizable-NAS, 3.3);
- *oracle*: for every FLOPs ceiling (each candidate's GFLOPs), each image
  routed to its best candidate under the ceiling by its own COCO box AP
  (``msdet.analysis.resizable``), evaluated as a whole; the mean GFLOPs of
  the chosen candidates, without routing cost.

Writes ``results.json`` / ``results.csv`` (rows as
``tools/analysis/scale_benchmark.py``'s, ``model`` = adaptive model name,
``fixed`` or ``oracle``), ``ap_vs_gflops.png`` (whole-model and backbone
GFLOPs) and ``summary.md`` (the table and, per learner, how much of the gap
between the best fixed configuration within its ceiling and the oracle at
that ceiling it closes).
"""
import argparse
import os.path as osp

import msdet  # noqa: F401  (registers msdet modules)
from mmengine.config import ConfigDict
from pycocotools.coco import COCO

from msdet.analysis.resizable import (ImageAP, best_candidates,
                                      cheapest_first,
                                      model_space, one_process_args,
                                      parse_configurations,
                                      run_candidates)
from msdet.evaluation.complexity import subnet_gflops
from msdet.evaluation.scale_loop import find_resize, use_scale_sweep
from msdet.evaluation.scale_report import (plot_adapt_vs_fixed,
                                           record_to_row, subnet_name,
                                           write_results)
from msdet.models.resize_learner import same_configuration
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool
from msdet.utils.config import build_runner, load_config
from msdet.utils.fileio import atomic_open


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Resizable-Adapt report')
    p.add_argument('config', help='a trained ResizableAdaptDetector config')
    p.add_argument('checkpoint', help="the learner's checkpoint")
    p.add_argument('--compare', nargs=2, action='append', default=[],
                   metavar=('CONFIG', 'CHECKPOINT'),
                   help='another Resizable-Adapt model')
    p.add_argument('--names', nargs='+', help='one name per adaptive model')
    p.add_argument('--configurations', nargs='+', metavar='S1,S2,..',
                   help='fixed configurations beyond the candidates')
    p.add_argument('--work-dir', default='work_dirs/resizable_adapt_report')
    return one_process_args(p, argv, 'resizable_adapt_report')


def adaptive_run(config, checkpoint, args, work_dir):
    """Test one Resizable-Adapt model at its config's own test scale, one
    image per batch; returns the runner (its model holds the weights)."""
    check_checkpoint_file(checkpoint)
    cfg = load_config(config, args.cfg_options, work_dir)
    if str(cfg.model.get('type', '')).split('.')[-1] != \
            'ResizableAdaptDetector':
        raise ValueError(f'{config}: the model is {cfg.model.get("type")!r}'
                         '; needs a ResizableAdaptDetector config.')
    cfg.model.targets = None  # testing only
    cfg.load_from = checkpoint
    cfg.test_dataloader.batch_size = 1
    short = min(find_resize(cfg.test_dataloader.dataset.pipeline).scale)
    use_scale_sweep(cfg, scales=[short], count_flops=True)
    runner = build_runner(cfg)
    runner.test()
    return runner


def union(lists):
    out = []
    for c in (c for lst in lists for c in lst):
        if not any(same_configuration(c, d) for d in out):
            out.append(c)
    return out


def evaluate(runner, outputs):
    """COCO box metrics of stored predictions (the config's test metric)."""
    metric = runner.cfg.test_evaluator
    metric = ConfigDict(metric[0] if isinstance(metric, list) else metric)
    metric.metric = 'bbox'
    evaluator = runner.build_evaluator(metric)
    evaluator.dataset_meta = runner.test_dataloader.dataset.metainfo
    evaluator.process(data_samples=outputs, data_batch=None)
    return evaluator.evaluate(len(outputs))


def gap_closed(adaptive, fixed, oracle):
    """(AP_adapt - AP_best_fixed) / (AP_oracle - AP_best_fixed) at the
    adaptive model's ceiling (its most expensive candidate); ``oracle``
    maps each ceiling to its row."""
    ceiling = max(r['gflops_model'] for r in fixed
                  if r['subnet'] in adaptive['choices'])
    best = max((r for r in fixed if r['gflops_model'] <= ceiling),
               key=lambda r: r['bbox_AP'])
    top = oracle[ceiling]
    span = top['bbox_AP'] - best['bbox_AP']
    return dict(ceiling=ceiling, fixed=best, oracle=top,
                closed=None if span <= 0 else
                (adaptive['bbox_AP'] - best['bbox_AP']) / span)


def summary_table(rows, fixed):
    """Markdown: one line per row; candidates numbered c0, c1, ... as the
    fixed rows, choices as the share of images per candidate."""
    index = {r['subnet']: f'c{k}' for k, r in enumerate(fixed)}
    head = ['model', 'sub-network', 'GFLOPs (model)', 'GFLOPs (backbone)',
            'bbox AP', 'AP_S', 'AP_M', 'AP_L', 'images per candidate']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def pct(v):
        return 'n/a' if v is None else f'{100 * v:.1f}'

    for r in rows:
        subnet = r['subnet']
        if r['model'] == 'fixed':
            subnet = f'{index[subnet]}: {subnet}'
        choices = ', '.join(f'{index[n]} {100 * f:.0f}%' for n, f in
                            (r['choices'] or {}).items() if f) or '-'
        lines.append('| ' + ' | '.join([
            r['model'], subnet, f"{r['gflops_model']:.3f}",
            f"{r['gflops_backbone']:.3f}", pct(r['bbox_AP']),
            pct(r['bbox_AP_S']), pct(r['bbox_AP_M']), pct(r['bbox_AP_L']),
            choices]) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    models = [(args.config, args.checkpoint)] + [
        tuple(m) for m in args.compare]
    names = args.names or [osp.splitext(osp.basename(c))[0]
                           for c, _ in models]
    if len(names) != len(models) or len(set(names)) != len(names) or \
            {'fixed', 'oracle'} & set(names):
        raise ValueError(f'--names {names!r}: need one distinct name per '
                         f'model ({len(models)}), not "fixed" / "oracle".')
    runners, rows = [], []
    for (config, checkpoint), name in zip(models, names):
        runner = adaptive_run(config, checkpoint, args,
                              osp.join(args.work_dir, name))
        runners.append(runner)
        rows += [record_to_row(name, r) for r in runner.test_loop.records]
    runner = runners[0]
    detector = runner.model.detector
    space = model_space(runner.cfg.model.detector)
    candidates = union([r.model.configurations for r in runners] + [
        parse_configurations(args.configurations or [], space)])

    # every candidate on every test image (the first model's super-network)
    loader = runner.test_loop.dataloader
    dataset = loader.dataset
    first = detector.data_preprocessor(next(iter(loader)), False)
    costs = subnet_gflops(detector, first['inputs'][:1],
                          first['data_samples'][:1], candidates)
    candidates, costs = cheapest_first(candidates, costs)
    run = run_candidates(detector, loader, candidates,
                         ImageAP(COCO(dataset.ann_file), dataset.cat_ids),
                         keep_outputs=True)
    base = dict(short_side=rows[0]['short_side'], scale=rows[0]['scale'],
                input_shape=rows[0]['input_shape'])
    fixed = []
    for k, settings in enumerate(candidates):
        fixed.append(record_to_row('fixed', dict(
            base, subnet=settings, latency_ms=run['latency_ms'][k],
            gflops_backbone=costs[k]['backbone'],
            gflops_model=costs[k]['model'],
            metrics=evaluate(runner, run['outputs'][k]))))
    oracle = {}
    gflops = [c['model'] for c in costs]
    for ceiling in sorted(set(gflops)):
        allowed = [k for k in range(len(candidates)) if gflops[k] <= ceiling]
        best = best_candidates(run['scores'], gflops, allowed)
        n = len(best)
        oracle[ceiling] = record_to_row('oracle', dict(
            base, subnet=None, name=f'oracle <= {ceiling:.3f} GFLOPs',
            latency_ms=None,
            choices={subnet_name(candidates[k]): best.count(k) / n
                     for k in allowed},
            gflops_backbone=sum(costs[k]['backbone'] for k in best) / n,
            gflops_model=sum(gflops[k] for k in best) / n,
            metrics=evaluate(runner, [run['outputs'][k][i]
                                      for i, k in enumerate(best)])))
    rows += fixed + list(oracle.values())

    out = {k: osp.join(args.work_dir, f)
           for k, f in (('json', 'results.json'), ('csv', 'results.csv'),
                        ('png', 'ap_vs_gflops.png'),
                        ('summary', 'summary.md'))}
    write_results(rows, out['json'], out['csv'])
    plot_adapt_vs_fixed(rows, out['png'])
    lines = [summary_table(rows, fixed), '']
    for r in rows[:len(models)]:
        g = gap_closed(r, fixed, oracle)
        closed = ('n/a (no gap)' if g['closed'] is None else
                  f"{100 * g['closed']:.0f}%")
        lines.append(
            f"{r['model']}: {100 * r['bbox_AP']:.1f} AP at "
            f"{r['gflops_model']:.3f} GFLOPs; best fixed within its ceiling "
            f"({g['ceiling']:.3f}): {100 * g['fixed']['bbox_AP']:.1f} AP "
            f"({g['fixed']['subnet']}); oracle: "
            f"{100 * g['oracle']['bbox_AP']:.1f} AP at "
            f"{g['oracle']['gflops_model']:.3f} GFLOPs; gap closed: "
            f'{closed}.')
    text = '\n'.join(lines) + '\n'
    with atomic_open(out['summary']) as f:
        f.write(text)
    print(text)
    print('\n'.join(f'{k}: {v}' for k, v in out.items()))
    return dict(rows=rows, fixed=fixed, oracle=list(oracle.values()),
                files=out)


if __name__ == '__main__':
    run_tool(main)
