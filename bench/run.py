"""msdet benchmark suite: speed and size of the backbones, measured side by
side with their baselines.

    python -m bench.run [--quick] [--device cuda] [--model-zoo]

from the repository root. Sections: ``convs`` (one 3x3 layer: PSConv vs
dense, dilated and the three masked convolutions, at every ResNet-50 stage
shape and detection size), ``backbones`` (whole backbone: eval forward at
224x224 and 800x1216 and a training step, at 1 and 2 threads),
``compile`` (torch.compile inductor vs eager, one backbone per design),
``profile`` (eval forward time per module type), ``complexity`` (params /
GFLOPs next to the papers' figures), ``detector`` (one Mask R-CNN training
iteration per backbone: time, peak memory). PS-ResNet-50 is also timed in
the PSConv release's form (three convolutions per PSConv, bench/convs.py).
Every ratio is to a baseline measured in the same process, interleaved round
by round (median of per-round ratios). CPU threads: ``backbones`` runs
at each of ``--backbone-threads``, ``compile`` and ``profile`` at 1, the
other sections at one per core (``--threads``). Writes
``<out-dir>/bench_<device>.json`` and ``.md`` (``bench_quick_*`` with
``--quick``) and, with ``--model-zoo``, the table in model_zoo.md. The
suite measures and reports; what the numbers should be is stated, and
compared, in model_zoo.md.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import tempfile

import torch

import msdet  # noqa: F401  (registers msdet's modules)
from msdet.utils.fileio import atomic_open, dump_json

from . import (backbones, blocks, convs, detector, machine, model_zoo,
               report)
from .timing import cpu_threads, steady_malloc

#: The repository root, where ``python -m bench.run`` finds ``bench``.
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

SECTIONS = ('convs', 'backbones', 'compile', 'profile', 'complexity',
            'detector')
FULL = dict(reps=21, backbone_reps=7, detector_reps=2, processes=3,
            sizes=[(224, 224), (800, 1216)], train_size=(224, 224))
QUICK = dict(reps=3, backbone_reps=2, detector_reps=1, processes=1,
             sizes=[(64, 64), (64, 96)], train_size=(64, 64))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='tiny shapes and models, few repetitions: a '
                        'smoke test of the suite, not a measurement')
    parser.add_argument('--device', default='cpu', help='cpu (default) or '
                        'cuda[:i] (synchronised timing)')
    parser.add_argument('--sections', nargs='+',
                        choices=SECTIONS + ('blocks', ),
                        default=list(SECTIONS), help="'blocks' (bench."
                        'blocks: block ratios and profile) runs when named')
    parser.add_argument('--backbones', nargs='+', metavar='NAME',
                        help='only backbones whose name contains one of '
                        'these (baselines are kept)')
    parser.add_argument('--threads', type=int, help='CPU threads (default: '
                        'one per core)')
    parser.add_argument('--backbone-threads', type=int, nargs='+',
                        default=[1, 2], metavar='N', help='backbones '
                        'section (CPU): thread counts timed (default 1 2)')
    parser.add_argument('--malloc', choices=('steady', 'default'),
                        default='steady', help="CPU allocator: 'steady' "
                        "keeps freed memory mapped (bench/timing.py "
                        "steady_malloc); 'default' leaves glibc as is")
    parser.add_argument('--reps', type=int, help='rounds per conv shape')
    parser.add_argument('--processes', type=int,
                        help='conv section: split its rounds over this many '
                        'fresh processes (small layers\' ratios differ '
                        'between processes; default 3, quick 1)')
    parser.add_argument('--backbone-reps', type=int)
    parser.add_argument('--detector-reps', type=int)
    parser.add_argument('--det-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='detector input (default 800 1216; quick 128 '
                        '128)')
    parser.add_argument('--det-batch', type=int, help='default 2; quick 1')
    parser.add_argument('--out-dir', default='work_dirs/bench')
    parser.add_argument('--model-zoo', nargs='?', const=model_zoo.DEFAULT,
                        metavar='PATH', help='write the table into '
                        'model_zoo.md (with the other device\'s run from '
                        'out-dir, if any)')
    return parser.parse_args(argv)


def select_backbones(names):
    """The backbone specs named (by substring) and their baselines."""
    if not names:
        return list(backbones.SPECS)
    keep = [s for s in backbones.SPECS if any(n in s.name for n in names)]
    needed = {s.baseline for s in keep}
    return [s for s in backbones.SPECS if s in keep or s.name in needed]


def convs_in_processes(args, opts):
    """The conv section run in ``opts['processes']`` fresh processes, each
    with its share of the rounds, merged (``convs.merge``)."""
    n = opts['processes']
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            out = osp.join(tmp, str(i))
            cmd = [sys.executable, '-m', 'bench.run', '--sections',
                   'convs', '--processes', '1', '--reps',
                   str(max(1, opts['reps'] // n)), '--device', args.device,
                   '--malloc', args.malloc, '--out-dir', out]
            cmd += ['--quick'] if args.quick else []
            cmd += ['--threads', str(args.threads)] if args.threads else []
            print(f'[convs] process {i + 1}/{n}', flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            stem = 'bench_' + ('quick_' if args.quick else '') + \
                torch.device(args.device).type
            with open(osp.join(out, stem + '.json')) as f:
                runs.append(json.load(f)['convs'])
    return convs.merge(runs)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('bench.run: --device cuda but CUDA is not '
                         'available.')
    malloc = 'default'
    cpu = args.threads or cpu_threads()
    if device.type == 'cpu':
        torch.set_num_threads(cpu)
        if args.malloc == 'steady' and steady_malloc():
            malloc = 'steady'
    specs = select_backbones(args.backbones)
    opts = dict(QUICK if args.quick else FULL)
    for key in ('reps', 'backbone_reps', 'detector_reps', 'processes'):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if opts['processes'] < 1:
        raise SystemExit(f"bench.run: --processes {opts['processes']}; "
                         'allowed: 1 or more.')
    threads = args.backbone_threads if device.type == 'cpu' else [None]
    if any(n < 1 for n in args.backbone_threads):
        raise SystemExit(f'bench.run: --backbone-threads '
                         f'{args.backbone_threads}; allowed: ints >= 1.')
    det_size = args.det_size or ([128, 128] if args.quick else [800, 1216])
    det_batch = args.det_batch or (1 if args.quick else 2)
    results = dict(
        machine=machine.describe(device),
        config=dict(
            command='python -m bench.run ' + ' '.join(
                sys.argv[1:] if argv is None else argv),
            quick=args.quick, sections=args.sections, conv_batch=2,
            malloc=malloc,
            timing='interleaved rounds (rotating order), median of '
            'per-round ratios to the baseline; '
            f"{opts['reps']} rounds per conv shape over "
            f"{opts['processes']} process(es) (detection sizes: a quarter, "
            f"at least 3 per process), {opts['backbone_reps']} per backbone, "
            f"{opts['detector_reps']} per detector.",
            detector=dict(size=det_size, batch=det_batch),
            backbone_sizes=opts['sizes'],
            backbone_train_size=list(opts['train_size']),
            backbone_threads=threads))
    if 'convs' in args.sections and opts['processes'] > 1:
        results['convs'] = convs_in_processes(args, opts)
    elif 'convs' in args.sections:
        results['convs'] = convs.run(args.quick, opts['reps'], device)
    if 'backbones' in args.sections:
        results['backbones'] = backbones.timed(
            specs, args.quick, opts['backbone_reps'], device, opts['sizes'],
            opts['train_size'], threads)
    if {'compile', 'profile'} & set(args.sections) and \
            device.type == 'cpu':
        torch.set_num_threads(1)  # the targets are stated at 1 thread
    if 'compile' in args.sections:
        results['compile'] = backbones.compiled(
            specs, args.quick, opts['backbone_reps'], device,
            opts['sizes'][0], opts['train_size'])
    if 'profile' in args.sections:
        results['profile'] = backbones.profile(
            specs, args.quick, opts['backbone_reps'], device, opts['sizes'])
    if device.type == 'cpu':
        torch.set_num_threads(cpu)
    if 'complexity' in args.sections:
        results['complexity'] = backbones.complexity(specs, args.quick,
                                                     device)
    if 'detector' in args.sections:
        results['detector'] = detector.run(specs, args.quick,
                                           opts['detector_reps'], device,
                                           det_size, det_batch)
    if 'blocks' in args.sections:
        results['blocks'] = blocks.run(args.quick, opts['backbone_reps'])
    stem = osp.join(args.out_dir, 'bench_' + ('quick_' if args.quick else '')
                    + device.type)
    dump_json(results, stem + '.json', indent=1)
    with atomic_open(stem + '.md', encoding='utf-8') as f:
        f.write(report.run_markdown(results))
        if results.get('blocks'):
            f.write('\n## Blocks (bench.blocks)\n\n' +
                    blocks.markdown(results['blocks']))
    print(f'wrote {stem}.json and {stem}.md')
    if args.model_zoo:
        other = osp.join(args.out_dir, 'bench_' + (
            'quick_' if args.quick else '') + (
                'cpu' if device.type == 'cuda' else 'cuda') + '.json')
        paths = [stem + '.json'] + ([other] if osp.isfile(other) else [])
        model_zoo.update(args.model_zoo, *model_zoo.load_runs(paths))
        print(f'updated {args.model_zoo}')
    return results


if __name__ == '__main__':
    main()
