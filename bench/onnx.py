"""ONNX export of every msdet backbone type, checked and timed in
onnxruntime against PyTorch eager.

    python -m bench.onnx [--quick] [--threads 1] [--reps 7] \\
        [--det-size 800 1216] [--backbones NAME ...] [--model-zoo [PATH]]

from the repository root. Each backbone (at full size; ``--quick``: the
suite's scaled-down widths and tiny inputs, a smoke test) is exported as
``tools/deployment/export_onnx.py --part backbone`` exports it
(``msdet.deploy``: standard operators only, dynamic batch, height and width,
the graph checked to be the same at another size), once, and that one graph
is then run at 224x224 and at a detection size. At each size the largest
relative error of onnxruntime against the model's PyTorch code (eval mode)
is taken on a random input and on a real-looking image (the embedded demo
dataset's first validation image, resized and normalised as the data
preprocessor does), and both are timed on the image, alternating run by run
in this process with the same number of threads (``torch.set_num_threads``
and onnxruntime's ``intra_op_num_threads``): ``msdet.deploy.verify``, as
``--verify`` does it. The weights are random (no checkpoint is needed for
speed or agreement) with random BN statistics, so that no BN is the
identity.

Writes ``<out-dir>/onnx_cpu.json`` and ``.md`` (``onnx_quick_cpu.*`` with
``--quick``) and, with ``--model-zoo``, the table in model_zoo.md's "ONNX
export" section (between ``<!-- onnx:start -->`` and ``<!-- onnx:end -->``).
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time

import torch
import torch.nn as nn

import msdet  # noqa: F401  (registers msdet's modules)
from msdet.deploy import export_onnx, require
from msdet.deploy.model import random_images
from msdet.deploy.parts import BackbonePart
from msdet.deploy.verify import (compare, demo_image, latency, preprocess,
                                 session)
from msdet.utils.fileio import atomic_open, dump_json

from . import backbones, machine, model_zoo
from .report import _table
from .timing import active_malloc, steady_malloc

START, END = '<!-- onnx:start -->', '<!-- onnx:end -->'

#: The backbones exported (``bench.backbones.SPECS`` names): every msdet
#: backbone type, the switchable ones at two sub-networks, and the dense
#: ResNet-50 they are measured against elsewhere.
NAMES = ('ResNet-50', 'PS-ResNet-50', 'ScaleNet-50',
         'Elastic-ResNeXt-50 32x4d', 'SlimmableVGG-16 w1',
         'SlimmableVGG-16 w0.5', 'Resizable-ResNet-50 1/0.875/0.875/0.875',
         'Resizable-ResNet-50 0.75/0.625/0.625/1')
#: Resizable ResNet as its detection configs build it: the resized stages'
#: outputs restored to the plain ResNet's sizes (computed in the graph).
OVERRIDES = {'ResizableResNet': dict(restore_outputs=True)}

FULL = dict(reps=7, warmup=2, sizes=[(224, 224), (800, 1216)])
#: ScaleNet's SA pooling windows (7 up to stride 16) need 112 px to export
QUICK = dict(reps=2, warmup=1, sizes=[(128, 128), (128, 192)])


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='scaled-down backbones, tiny inputs, few runs: '
                        'a smoke test, not a measurement')
    parser.add_argument('--threads', type=int, default=1,
                        help='threads of PyTorch and of onnxruntime '
                        '(default 1)')
    parser.add_argument('--reps', type=int,
                        help='timed runs of each per size (default 7; quick '
                        '2), after warm-up runs')
    parser.add_argument('--det-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='the detection size (default 800 1216; quick '
                        '128 192); multiples of 32')
    parser.add_argument('--backbones', nargs='+', metavar='NAME',
                        help='only backbones whose name contains one of '
                        'these')
    parser.add_argument('--malloc', choices=('steady', 'default'),
                        default='steady', help="CPU allocator, as in "
                        "bench.run: 'steady' keeps freed memory mapped "
                        "(bench/timing.py steady_malloc)")
    parser.add_argument('--out-dir', default='work_dirs/bench')
    parser.add_argument('--model-zoo', nargs='?', const=model_zoo.DEFAULT,
                        metavar='PATH', help='write the table into the ONNX '
                        'export section of model_zoo.md')
    return parser.parse_args(argv)


class Backbone(nn.Module):
    """A backbone as a detector holds it: ``extract_feat`` (the export
    part ``backbone``) and mmdet's data preprocessor for ImageNet-normalised
    RGB input, padded to 32 (what ``preprocess`` makes of an image)."""

    def __init__(self, backbone):
        super().__init__()
        from mmdet.models.data_preprocessors import DetDataPreprocessor
        self.backbone = backbone
        self.data_preprocessor = DetDataPreprocessor(
            mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True, pad_size_divisor=32)

    def extract_feat(self, x):
        return self.backbone(x)


def random_bn_statistics(model, seed=0):
    """Running means in [-0.5, 0.5), variances in [0.5, 1.5): a fresh BN
    (mean 0, variance 1) is the identity in eval mode, which an exported
    graph would fold away."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) -
                                 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) +
                                0.5)


def select(names):
    specs = {s.name: s for s in backbones.SPECS}
    chosen = [n for n in NAMES if not names or any(k in n for k in names)]
    if not chosen:
        raise SystemExit(f'bench.onnx: --backbones {names} matches none of '
                         f'{list(NAMES)}.')
    return [specs[n] for n in chosen]


def measure(spec, quick, sizes, image, threads, reps, warmup, tmp):
    """Export ``spec``'s backbone once (dynamic axes) and check and time
    the graph at every size of ``sizes``."""
    backbone = backbones.build(spec, quick,
                               **OVERRIDES.get(spec.cfg['type'], {}))
    model = Backbone(backbone).eval()
    random_bn_statistics(model)
    part = BackbonePart(model)
    path = osp.join(tmp, 'backbone.onnx')
    h, w = sizes[0]
    start = time.perf_counter()
    export_onnx(part, part.example_inputs(random_images(sizes[0])), path,
                dynamic=True, other_inputs=part.example_inputs(
                    random_images((h + 32, w + 64), batch=2, seed=1)))
    row = dict(name=spec.name, export_s=round(time.perf_counter() - start, 1),
               onnx_mib=round(osp.getsize(path) / 2**20, 1), sizes={})
    sess = session(path, threads)
    for size in sizes:
        random_in = part.example_inputs(random_images(size))
        image_in = part.example_inputs(preprocess(model, image, size))
        err_random, out_random = compare(part, sess, random_in)
        err_image, out_image = compare(part, sess, image_in)
        times = latency(part, sess, image_in, repeat=reps, warmup=warmup)
        key = f'{size[0]}x{size[1]}'
        row['sizes'][key] = dict(
            error_random=err_random, error_random_output=out_random,
            error_image=err_image, error_image_output=out_image,
            torch_ms=round(times['torch'], 2),
            onnxruntime_ms=round(times['onnxruntime'], 2),
            torch_over_onnxruntime=round(times['ratio'], 3))
        print(f'[onnx] {spec.name} {key}: error {err_random:.1e} (random), '
              f'{err_image:.1e} (image); PyTorch {times["torch"]:.1f} ms, '
              f'onnxruntime {times["onnxruntime"]:.1f} ms, '
              f'ratio {times["ratio"]:.2f}', flush=True)
    os.unlink(path)
    return row


def markdown(results):
    """The table (and what it was measured on) of a run."""
    sizes = results['config']['sizes']
    header = ['backbone', 'max rel. error (random / image)']
    for key in sizes:
        header += [f'{key} PyTorch ms', f'{key} onnxruntime ms',
                   f'{key} PyTorch / onnxruntime']
    rows = []
    for r in results['rows']:
        errs = [(s['error_random'], s['error_image'])
                for s in r['sizes'].values()]
        row = [r['name'], f'{max(e[0] for e in errs):.1e} / '
               f'{max(e[1] for e in errs):.1e}']
        for key in sizes:
            s = r['sizes'][key]
            row += [f"{s['torch_ms']:.1f}", f"{s['onnxruntime_ms']:.1f}",
                    f"{s['torch_over_onnxruntime']:.2f}"]
        rows.append(row)
    info, cfg = results['machine'], results['config']
    load = cfg['load_average']
    return (
        f"Generated by `{cfg['command']}`.\n"
        f"- CPU: {machine.one_line(info)}, onnxruntime "
        f"{cfg['onnxruntime']}; {cfg['threads']} thread(s) for both "
        f"PyTorch and onnxruntime.\n"
        f"- Load average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} "
        f"at the end (`os.getloadavg`).\n"
        f"- Timing: {cfg['timing']}\n\n" + _table(header, rows) + '\n')


def main(argv=None):
    args = parse_args(argv)
    ort = require('onnxruntime')
    opts = dict(QUICK if args.quick else FULL)
    if args.reps is not None:
        opts['reps'] = args.reps
    if args.det_size:
        opts['sizes'] = [opts['sizes'][0], tuple(args.det_size)]
    for name, value, low in (('--threads', args.threads, 1),
                             ('--reps', opts['reps'], 1)):
        if value < low:
            raise SystemExit(f'bench.onnx: {name} {value}; allowed: {low} '
                             'or more.')
    if any(v % 32 for size in opts['sizes'] for v in size):
        raise SystemExit(f"bench.onnx: sizes {opts['sizes']}; allowed: "
                         'multiples of 32 (the data preprocessor pads to '
                         '32).')
    specs = select(args.backbones)
    torch.set_num_threads(args.threads)
    if args.malloc == 'steady':
        steady_malloc()
    image = demo_image()
    load = [os.getloadavg()[0]]
    results = dict(machine=machine.describe('cpu'), config=dict(
        command='python -m bench.onnx ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        quick=args.quick, threads=args.threads,
        onnxruntime=ort.__version__,
        sizes=[f'{h}x{w}' for h, w in opts['sizes']],
        malloc='steady' if active_malloc() else 'default',
        timing=f"PyTorch eager and onnxruntime alternating on the image, "
        f"{opts['warmup']} warm-up and {opts['reps']} timed runs of each "
        'per size (median ms; ratio: median per run of PyTorch / '
        'onnxruntime, above 1: onnxruntime faster); one dynamic graph per '
        'backbone, exported at the first size.'), rows=[])
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            results['rows'].append(
                measure(spec, args.quick, opts['sizes'], image,
                        args.threads, opts['reps'], opts['warmup'], tmp))
    load.append(os.getloadavg()[0])
    results['config']['load_average'] = load
    stem = osp.join(args.out_dir,
                    'onnx_' + ('quick_' if args.quick else '') + 'cpu')
    dump_json(results, stem + '.json', indent=1)
    text = markdown(results)
    with atomic_open(stem + '.md', encoding='utf-8') as f:
        f.write(text)
    print(text)
    print(f'wrote {stem}.json and {stem}.md')
    if args.model_zoo:
        model_zoo.write_between(args.model_zoo, START, END, text)
        print(f'updated {args.model_zoo}')
    return results


if __name__ == '__main__':
    main()
