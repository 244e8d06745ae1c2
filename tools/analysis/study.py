"""Does a design help? Train every (config x seed) with msdet's tools, sweep
each checkpoint across test scales, and compare every design with the
baseline at equal schedule, paired by seed.

    python tools/analysis/study.py BASELINE_CONFIG DESIGN_CONFIG ... \
        --seeds 0 1 2 --work-dir work_dirs/study/NAME \
        [--names R50 PS-R50 ...] [--baseline NAME ...] \
        [--epochs N] [--cfg-options k=v ...] [--scales 160 256 384] \
        [--parallel P] [--threads T] [--gpus G] [--gpu-ids 0 1 ...] \
        [--port 29500] [--train-args="--amp"] [--ci 0.95] \
        [--dry-run] [--report-only] [--report-name study]

Each run (design, seed) is independent and lives in
``WORK_DIR/runs/<design>/seed<seed>/``: ``config.py`` (the exact config it
trains: the design's config with ``--cfg-options``, ``randomness.seed`` and
``--epochs`` applied), ``train/`` + ``train.log`` (``tools/train.py``, one
process; ``torchrun`` with ``--gpus`` > 1), ``sweep/`` + ``sweep.log``
(``tools/analysis/scale_benchmark.py`` on the final checkpoint: COCO AP,
AP_S/M/L, GFLOPs and latency per sub-network and test scale; a config whose
``test_cfg`` is a ``ScaleSweepTestLoop`` names its own sub-networks and BN
recalibration) and ``result.json``, written atomically when the run is
complete. Rerunning the same command skips complete runs, keeps a finished
training whose sweep did not complete, and resumes an interrupted training
from its last checkpoint; a run whose ``config.py`` differs from the one
the command would write is refused (use another ``--work-dir``).

``--epochs N`` rescales an epoch-based schedule: ``max_epochs``, validation
and checkpoint intervals that covered the whole run (shorter intervals keep
their length), and the epoch-based LR schedulers' ``begin`` / ``end`` /
``milestones`` in proportion, rounded half up (iteration-based warm-up
keeps its length). Anything else goes through ``--cfg-options``.

``--parallel P`` runs P runs at a time, each with ``--threads T`` CPU
threads (``OMP_NUM_THREADS``; default: the cores divided by P) and, with
``--gpus G``, its own G GPUs (``CUDA_VISIBLE_DEVICES``) and master port.
Latency is measured inside each run: compare it across designs only when
the runs did not compete for the same cores. ``--dry-run`` prints the
commands (e.g. to submit them to a cluster) without running anything.

Report (``WORK_DIR``, file names starting with ``--report-name``, default
``study``): ``study.md`` (per design, sub-network and test
scale: seeds, GFLOPs, latency, AP and AP_S/M/L as mean ± sd over seeds, and
the difference to the baseline paired by seed with its two-sided Student-t
interval, ``--ci`` level; then per run the training time and CPU time),
``study_summary.csv`` / ``.json``, ``study_scale_<task>.png`` (AP_S/M/L
against test scale with ± sd bands) and ``study_flops_<task>.png`` (AP
against backbone and whole-model GFLOPs). ``--report-only`` rebuilds it
from the finished runs, e.g. against another baseline under another
``--report-name``.
"""
import argparse
import json
import os
import os.path as osp
import queue
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop

import msdet  # noqa: F401  (registers msdet's modules)
from msdet.evaluation.scale_report import load_results
from msdet.evaluation.study import (markdown_table, plot_flops, plot_scale,
                                    summarize, tasks_present, write_summary)
from msdet.utils.cli import run_tool
from msdet.utils.fileio import atomic_open, dump_json

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO, 'tools', 'train.py')
SWEEP = osp.join(REPO, 'tools', 'analysis', 'scale_benchmark.py')
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]*$')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Compare designs with a baseline: train config x seed, '
        'sweep test scales, paired differences.')
    p.add_argument('configs', nargs='+', help='baseline and design configs')
    p.add_argument('--seeds', nargs='+', type=int, required=True)
    p.add_argument('--work-dir', required=True)
    p.add_argument('--names', nargs='+', help='one name per config '
                   '(default: the config file names)')
    p.add_argument('--baseline', nargs='+', help='the reference design(s) '
                   '(default: the first config); several baselines must '
                   'cover different settings')
    p.add_argument('--epochs', type=int, help='rescale the schedule to N '
                   'epochs')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override keys of every config')
    p.add_argument('--scales', nargs='+', type=int,
                   help='test short sides of the sweep (default: the '
                   "config's sweep scales, else the sweep's default)")
    p.add_argument('--parallel', type=int, default=1,
                   help='runs at a time (default 1)')
    p.add_argument('--threads', type=int,
                   help='CPU threads per run (default: cores / parallel)')
    p.add_argument('--gpus', type=int, default=0,
                   help='GPUs per run (default 0: CPU)')
    p.add_argument('--gpu-ids', nargs='+', type=int,
                   help='GPUs to share out (default: all visible)')
    p.add_argument('--port', type=int, default=29500,
                   help='first master port of multi-GPU runs (one per '
                   'parallel slot)')
    p.add_argument('--train-args', default='',
                   help='extra tools/train.py arguments, e.g. '
                   '--train-args="--amp --auto-scale-lr"')
    p.add_argument('--ci', type=float, default=0.95,
                   help='confidence level of the paired intervals')
    p.add_argument('--dry-run', action='store_true')
    p.add_argument('--report-only', action='store_true',
                   help='only write the report from the finished runs')
    p.add_argument('--report-name', default='study',
                   help='report file name prefix (default: study)')
    return p.parse_args(argv)


def check_args(args):
    """Every argument checked before anything runs; returns the names."""
    names = args.names or [osp.splitext(osp.basename(c))[0]
                           for c in args.configs]
    if len(names) != len(args.configs) or len(set(names)) != len(names):
        raise ValueError(f'--names {names}: need one distinct name per '
                         f'config ({len(args.configs)}).')
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise ValueError(f'design names {bad}: allowed letters, digits and '
                         "'._+-' (they name directories).")
    for c in args.configs:
        if not osp.isfile(c):
            raise FileNotFoundError(f'config {c!r} not found.')
    args.baseline = args.baseline or names[:1]
    unknown = [b for b in args.baseline if b not in names]
    if unknown:
        raise ValueError(f'--baseline {unknown}: not a design; designs: '
                         f'{names}.')
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ValueError(f'--seeds {args.seeds}: need distinct integers '
                         '>= 0.')
    for flag, value, low in (('--parallel', args.parallel, 1),
                             ('--threads', args.threads, 1),
                             ('--gpus', args.gpus, 0),
                             ('--epochs', args.epochs, 1)):
        if value is not None and value < low:
            raise ValueError(f'{flag} {value}: allowed an integer >= {low}.')
    if args.scales is not None and (not args.scales or min(args.scales) < 1):
        raise ValueError(f'--scales {args.scales}: need positive short '
                         'sides in pixels.')
    if not _NAME.match(args.report_name):
        raise ValueError(f'--report-name {args.report_name!r}: allowed '
                         "letters, digits and '._+-'.")
    if not 0 < args.ci < 1:
        raise ValueError(f'--ci {args.ci}: allowed a level in (0, 1).')
    return names


# --------------------------------------------------------------------------
# Run configs
# --------------------------------------------------------------------------
def _scale(value, old, new):
    """An epoch count of the old schedule mapped onto the new one."""
    return new if value >= old else max(1, int(value * new / old + 0.5))


def _interval(value, old, new):
    """An interval that covered the whole old run covers the new one;
    others keep their length (at most the new run's)."""
    return new if value >= old else min(value, new)


def rescale_epochs(cfg, epochs):
    """Rescale ``cfg``'s epoch-based schedule to ``epochs`` (module doc)."""
    tc = cfg.get('train_cfg') or {}
    loop = tc.get('type', 'EpochBasedTrainLoop')
    loop_cls = LOOPS.get(loop) if isinstance(loop, str) else loop
    if not (isinstance(loop_cls, type) and
            issubclass(loop_cls, EpochBasedTrainLoop)) or \
            'max_epochs' not in tc:
        raise ValueError(f'--epochs {epochs}: the config trains with '
                         f'{loop} ({dict(tc)}); --epochs needs an epoch-'
                         'based train_cfg with max_epochs. Set the schedule '
                         'with --cfg-options instead.')
    old = tc.max_epochs
    tc.max_epochs = epochs
    if cfg.get('max_epochs') == old:  # the config's own variable, if any
        cfg.max_epochs = epochs
    if 'val_interval' in tc:
        tc.val_interval = _interval(tc.val_interval, old, epochs)
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint')
    if ckpt and ckpt.get('by_epoch', True) and 'interval' in ckpt:
        ckpt.interval = _interval(ckpt.interval, old, epochs)
    scheds = cfg.get('param_scheduler') or []
    for sched in scheds if isinstance(scheds, list) else [scheds]:
        if not sched.get('by_epoch', True):
            continue
        for key in ('begin', 'end'):
            if key in sched and sched[key] > 0:
                sched[key] = _scale(sched[key], old, epochs)
        if 'milestones' in sched:
            sched.milestones = [_scale(m, old, epochs)
                                for m in sched.milestones]
        if 'T_max' in sched:
            sched.T_max = _scale(sched.T_max, old, epochs)


def run_config(path, seed, args):
    """The config one run trains (module doc)."""
    cfg = Config.fromfile(path)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    if args.epochs is not None:
        rescale_epochs(cfg, args.epochs)
    cfg.pop('work_dir', None)
    return cfg


class Run:
    """One (design, seed): its directory, config and state files."""

    def __init__(self, work_dir, design, source, seed):
        self.design, self.source, self.seed = design, source, seed
        self.dir = osp.abspath(osp.join(work_dir, 'runs', design,
                                        f'seed{seed}'))
        self.config = osp.join(self.dir, 'config.py')
        self.train_dir = osp.join(self.dir, 'train')
        self.sweep_dir = osp.join(self.dir, 'sweep')
        self.trained = osp.join(self.dir, 'train_done.json')
        self.result = osp.join(self.dir, 'result.json')

    @property
    def name(self):
        return f'{self.design} seed {self.seed}'

    def done(self):
        return osp.isfile(self.result)

    def write_config(self, cfg):
        """Write the run's config, or check it equals the one on disk."""
        text = cfg.pretty_text
        if osp.isfile(self.config):
            with open(self.config) as f:
                if f.read() != text:
                    raise ValueError(
                        f'run {self.name}: {self.config} holds another '
                        'config than this command makes (the design config,'
                        ' --cfg-options or --epochs changed). Use another '
                        '--work-dir, or remove that run directory to redo '
                        'it.')
            return
        with atomic_open(self.config) as f:
            f.write(text)


# --------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------
def slots(args):
    """One ``dict(gpus, port)`` per parallel slot."""
    if not args.gpus:
        return [dict(gpus=None, port=None)] * args.parallel
    ids = args.gpu_ids
    if ids is None:
        ids = list(range(torch.cuda.device_count()))
    if args.gpus * args.parallel > len(ids):
        raise ValueError(f'--gpus {args.gpus} x --parallel {args.parallel} '
                         f'needs {args.gpus * args.parallel} GPUs; '
                         f'available: {ids}.')
    return [dict(gpus=ids[i * args.gpus:(i + 1) * args.gpus],
                 port=args.port + i) for i in range(args.parallel)]


def command(tool, tool_args, slot):
    """``tool`` in a fresh interpreter, under torchrun for several GPUs."""
    if slot['gpus'] and len(slot['gpus']) > 1:
        return [sys.executable, '-m', 'torch.distributed.run',
                f"--nproc_per_node={len(slot['gpus'])}",
                f"--master_port={slot['port']}", tool, *tool_args,
                '--launcher', 'pytorch']
    return [sys.executable, tool, *tool_args]


def environment(args, slot):
    env = dict(os.environ)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    if slot['gpus'] is not None:
        env['CUDA_VISIBLE_DEVICES'] = ','.join(map(str, slot['gpus']))
    return env


def execute(cmd, log_path, env):
    """Run ``cmd`` with output to ``log_path``; returns (exit status, wall
    seconds, CPU seconds of the process and its children)."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    with open(log_path, 'a') as log:
        log.write(f'$ {shlex.join(cmd)}\n')
        log.flush()
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, round(time.time() - start, 1),
            round(usage.ru_utime + usage.ru_stime, 1))


def _tail(path, lines=15):
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def train_command(run, args, slot):
    tool_args = [run.config, '--work-dir', run.train_dir]
    if osp.isfile(osp.join(run.train_dir, 'last_checkpoint')):
        tool_args.append('--resume')
    return command(TRAIN, tool_args + shlex.split(args.train_args), slot)


def sweep_command(run, checkpoint, args, slot):
    tool_args = [run.config, checkpoint, '--work-dir', run.sweep_dir,
                 '--names', run.design]
    if args.scales:
        tool_args += ['--scales', *map(str, args.scales)]
    return command(SWEEP, tool_args, slot)


def _checkpoint_meta(path):
    """Epoch and iteration stored in a checkpoint (None if unreadable)."""
    try:
        meta = torch.load(path, map_location='cpu').get('meta', {})
    except Exception:  # report what there is; the sweep reads it anyway
        return None, None
    return meta.get('epoch'), meta.get('iter')


def train(run, args, slot):
    """Train ``run`` unless done; returns the train record or raises."""
    if osp.isfile(run.trained):
        return load_results_dict(run.trained)
    cmd = train_command(run, args, slot)
    rc, wall, cpu = execute(cmd, osp.join(run.dir, 'train.log'),
                            environment(args, slot))
    last = osp.join(run.train_dir, 'last_checkpoint')
    if rc or not osp.isfile(last):
        raise RuntimeError(f'training failed (exit status {rc}); log: '
                           f"{osp.join(run.dir, 'train.log')}:\n"
                           + _tail(osp.join(run.dir, 'train.log')))
    with open(last) as f:
        checkpoint = f.read().strip()
    epoch, iteration = _checkpoint_meta(checkpoint)
    # times of this process only: a resumed training's are partial
    record = dict(checkpoint=checkpoint, wall_s=wall, cpu_s=cpu,
                  resumed='--resume' in cmd, epochs=epoch, iters=iteration,
                  threads=environment(args, slot)['OMP_NUM_THREADS'],
                  gpus=slot['gpus'])
    dump_json(record, run.trained, indent=1)
    return record


def load_results_dict(path):
    with open(path) as f:
        return json.load(f)


def sweep(run, record, args, slot):
    stale = osp.join(run.sweep_dir, 'results.json')
    if osp.isfile(stale):
        os.remove(stale)
    rc, wall, cpu = execute(sweep_command(run, record['checkpoint'], args,
                                          slot),
                            osp.join(run.dir, 'sweep.log'),
                            environment(args, slot))
    if rc or not osp.isfile(stale):
        raise RuntimeError(f'scale sweep failed (exit status {rc}); log: '
                           f"{osp.join(run.dir, 'sweep.log')}:\n"
                           + _tail(osp.join(run.dir, 'sweep.log')))
    return load_results(stale), dict(wall_s=wall, cpu_s=cpu)


def do_run(run, args, free):
    slot = free.get()
    try:
        print(f'{run.name}: training ({run.dir})', flush=True)
        record = train(run, args, slot)
        print(f"{run.name}: trained ({record['wall_s']} s, CPU "
              f"{record['cpu_s']} s); sweeping", flush=True)
        rows, info = sweep(run, record, args, slot)
        dump_json(dict(design=run.design, seed=run.seed, config=run.source,
                       train=record, sweep=info, rows=rows),
                  run.result, indent=1)
        print(f'{run.name}: done', flush=True)
    finally:
        free.put(slot)


def execute_all(runs, args):
    """Run every unfinished run; returns ``[(run, error)]`` of failures."""
    todo = [r for r in runs if not r.done()]
    print(f'{len(runs) - len(todo)} of {len(runs)} runs complete; '
          f'{len(todo)} to run, {args.parallel} at a time.', flush=True)
    free = queue.Queue()
    for slot in slots(args):
        free.put(slot)
    failures = []
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [(r, pool.submit(do_run, r, args, free)) for r in todo]
        for run, fut in futures:
            try:
                fut.result()
            except Exception as e:  # a failed run must not stop the others
                print(f'{run.name}: FAILED: {e}', file=sys.stderr,
                      flush=True)
                failures.append((run, e))
    return failures


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
def runs_table(results):
    lines = ['| design | seed | epochs | iterations | train s | train CPU s '
             '| CPU s / iteration | sweep s |', '|' + '---|' * 8]
    for r in results:
        t = r['train']
        per_iter = ('n/a (resumed)' if t.get('resumed') else
                    f"{t['cpu_s'] / t['iters']:.2f}" if t.get('iters')
                    else 'n/a')
        lines.append(f"| {r['design']} | {r['seed']} | {t.get('epochs')} | "
                     f"{t.get('iters')} | {t['wall_s']} | {t['cpu_s']} | "
                     f"{per_iter} | {r['sweep']['wall_s']} |")
    return '\n'.join(lines)


def report(runs, args):
    results = [load_results_dict(r.result) for r in runs if r.done()]
    if not results:
        print('no complete run yet: nothing to report.')
        return None
    summary = summarize(results, args.baseline, args.ci)
    out = osp.join(osp.abspath(args.work_dir), args.report_name)
    level = f'{round(100 * args.ci)}%'
    parts = [f'# Study: {", ".join(dict.fromkeys(r.design for r in runs))}',
             '', f"Baseline: {', '.join(args.baseline)}. Seeds: "
             f"{' '.join(map(str, args.seeds))}. Cells: mean ± sample sd "
             f'over seeds; Δ: design minus baseline at the same sub-network '
             f'and test scale, paired by seed, [{level} two-sided Student-t '
             'interval of the mean paired difference, n - 1 degrees of '
             'freedom]. AP in %.']
    missing = [r.name for r in runs if not r.done()]
    if missing:
        parts += ['', f'Incomplete runs (not included): {missing}.']
    for task in tasks_present(summary):
        parts += ['', f'## {task}', '', markdown_table(summary, task,
                                                       args.ci)]
        plot_scale(summary, f'{out}_scale_{task}.png', task)
        plot_flops(summary, f'{out}_flops_{task}.png', task)
    parts += ['', '## Runs', '', runs_table(results), '']
    text = '\n'.join(parts)
    with atomic_open(f'{out}.md') as f:
        f.write(text)
    spec = dict(configs=dict(zip((r.design for r in runs),
                                 (r.source for r in runs))),
                baseline=args.baseline, seeds=args.seeds, epochs=args.epochs,
                cfg_options=args.cfg_options, scales=args.scales,
                ci=args.ci)
    write_summary(summary, f'{out}_summary.json', f'{out}_summary.csv',
                  extra=dict(spec=spec, runs=results))
    print(text)
    print(f'report: {out}.md, {out}_summary.csv / .json, '
          f'{out}_scale_*.png, {out}_flops_*.png')
    return summary


def main(argv=None):
    args = parse_args(argv)
    names = check_args(args)
    runs = [Run(args.work_dir, name, path, seed)
            for name, path in zip(names, args.configs)
            for seed in args.seeds]
    if args.report_only:
        return report(runs, args)
    cfgs = {(n, s): run_config(p, s, args)
            for n, p in zip(names, args.configs) for s in args.seeds}
    if args.dry_run:
        slot = slots(args)[0]
        for run in runs:
            print(f'# {run.name}: {run.config}')
            print(shlex.join(train_command(run, args, slot)))
            print(shlex.join(sweep_command(run, 'CHECKPOINT', args, slot)))
        return None
    for run in runs:
        run.write_config(cfgs[run.design, run.seed])
    failures = execute_all(runs, args)
    summary = report(runs, args)
    if failures:
        print(f'{len(failures)} run(s) failed: '
              f'{[r.name for r, _ in failures]}; fix and rerun the same '
              'command to complete them.', file=sys.stderr)
        sys.exit(1)
    return summary


if __name__ == '__main__':
    run_tool(main)
