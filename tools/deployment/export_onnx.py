"""Export an msdet model, or a part of it, to ONNX and check it in onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx \
        [--part model|backbone|roi_head] [--shape H W] [--subnet k=v ...] \
        [--recalibrate-bn N] [--static] \
        [--verify [--image IMG] [--repeat N] [--threads N]] \
        [--cfg-options k=v ...]

Parts (``msdet.deploy.parts``): ``model`` (default), a segmentor's seg
logits at the input size, or a detector's features and raw dense-head (RPN)
outputs per level; ``backbone``, the backbone and neck; ``roi_head``, a
two-stage detector's box (and mask) head on given RoIs, without NMS. The
graph's image input is what the model's data preprocessor outputs (BGR to
RGB where the config says so, normalised, padded), ``(N, 3, H, W)``.

``--shape H W`` is the export size (default: the config's test Resize scale,
padded to the preprocessor's divisor). Batch, height and width are dynamic,
and the graph is refused if it is not the same when traced at another size;
``--static`` fixes all three to the export size. ``--subnet width=0.5`` (or
``resize1=0.5 resize2=0.75 ...``) exports that sub-network of a switchable
model. BN statistics are the checkpoint's; ``--recalibrate-bn N``
re-estimates them for the sub-network at the export size on N training
images first (post-statistics: needed for a slimmable model's shared BNs at
a width they were not recalibrated for). Only standard ONNX operators: a
part that needs another operator domain is one error naming it.

``--verify`` runs onnxruntime (CPU) against the model's PyTorch code (eval
mode) on random inputs, on a real-looking image (``--image``, default the
embedded demo dataset's first validation image) and, for a dynamic graph,
on a batch of two at another size, printing the largest relative error
(``max |onnx - torch| / max |torch|``; above 1e-4 is an error), and the
latency of both on the image, measured alternately in one process.
"""
import argparse
import os
import os.path as osp

import msdet  # noqa: F401
from mmengine.config import DictAction

from msdet.deploy import (OPSET, PARTS, apply_subnet, build_part,
                          default_shape, export_onnx, parse_subnet, require)
from msdet.deploy.model import random_images
from msdet.utils.cli import run_tool
from msdet.utils.config import build_model, load_config
from msdet.utils.validation import check_int, check_ints

#: largest relative error --verify accepts
TOLERANCE = 1e-4


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Export an msdet model to ONNX (and check it)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--part', default='model', choices=PARTS)
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                   help='export size (default: the config\'s test size)')
    p.add_argument('--subnet', nargs='+', metavar='KEY=VALUE',
                   help='sub-network of a switchable model, e.g. width=0.5')
    p.add_argument('--recalibrate-bn', type=int, default=0, metavar='N',
                   help='re-estimate BN statistics for the sub-network on N '
                   'training images at the export size first')
    p.add_argument('--static', action='store_true',
                   help='fixed batch and size instead of dynamic axes')
    p.add_argument('--verify', action='store_true',
                   help='compare with PyTorch and time both')
    p.add_argument('--image', help='--verify: a real image (default: a '
                   'demo dataset image)')
    p.add_argument('--repeat', type=int, default=10,
                   help='--verify: timed runs of each (default 10)')
    p.add_argument('--threads', type=int,
                   help='--verify: threads of both (default: torch\'s)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def other_shape(shape):
    """The second size of the size-independence check and --verify."""
    return shape[0] + 32, shape[1] + 64


def main(argv=None):
    args = parse_args(argv)
    require('onnx')
    if args.verify:
        require('onnxruntime')
    if not args.out.endswith('.onnx'):
        raise ValueError(f'--out {args.out!r}: must end with .onnx.')
    check_int('export_onnx', '--repeat', args.repeat, 1)
    check_int('export_onnx', '--recalibrate-bn', args.recalibrate_bn, 0)
    if args.threads is not None:
        check_int('export_onnx', '--threads', args.threads, 1)
    if args.image is not None and not osp.isfile(args.image):
        raise FileNotFoundError(f'--image {args.image!r} not found.')
    settings = parse_subnet(args.subnet)
    cfg = load_config(args.config, args.cfg_options)
    shape = check_ints('export_onnx', '--shape', args.shape, count=2,
                       low=32) if args.shape else default_shape(cfg)
    model = build_model(cfg, args.checkpoint)
    subnet = apply_subnet(model, settings)
    if args.recalibrate_bn:
        recalibrate(model, cfg, args.recalibrate_bn, shape)
    part = build_part(model, args.part)
    inputs = part.example_inputs(random_images(shape))
    other = None if args.static else part.example_inputs(
        random_images(other_shape(shape), batch=2, seed=1))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    export_onnx(part, inputs, args.out, dynamic=not args.static,
                other_inputs=other)
    size = 'static' if args.static else 'dynamic batch, height, width'
    print(f'exported {part.description}')
    if subnet:
        print(f'sub-network: {subnet}')
    print(f'inputs: {", ".join(part.input_names)} (export size '
          f'{shape[0]}x{shape[1]}, {size}); outputs: '
          f'{", ".join(part.output_names)}; opset {OPSET}')
    print(f'written: {args.out} '
          f'({osp.getsize(args.out) / 2**20:.1f} MiB)')
    if args.verify:
        return verify(args, model, part, inputs, other, shape)
    return 0


def recalibrate(model, cfg, num_images, shape):
    """BN statistics of the current sub-network at ``shape`` (its long and
    short side) from ``num_images`` training images (post-statistics, as
    the scale sweep's ``--recalibrate-bn``)."""
    from mmengine.runner import Runner

    from msdet.engine import recalibrate_bn
    loader = cfg.train_dataloader
    loader.update(num_workers=0, persistent_workers=False)
    used = recalibrate_bn(model, Runner.build_dataloader(loader), num_images,
                          scale=(max(shape), min(shape)), distributed=False)
    model.eval()
    print(f'BN statistics re-estimated on {used} training images')


def verify(args, model, part, inputs, other, shape):
    import mmcv
    import torch

    from msdet.deploy.parts import proposals
    from msdet.deploy.verify import (compare, demo_image, latency,
                                     preprocess, session)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    sess = session(args.out, threads)
    image = mmcv.imread(args.image) if args.image else demo_image()
    images = preprocess(model, image, shape)
    real = part.example_inputs(images, **(
        dict(rois=proposals(model, images)) if args.part == 'roi_head'
        else {}))
    checks = [('random', inputs), ('image', real)]
    if other is not None:
        checks.append(('random, other size', other))
    rows = []
    for name, feed in checks:
        err, output = compare(part, sess, feed)
        dims = 'x'.join(map(str, feed[0].shape))
        if args.part == 'roi_head':
            dims += f', {len(feed[-1])} RoIs'
        rows.append((name, dims, err, output))
    print(f'{"input":<20} {"shape":<24} {"max rel. error":>14}  output')
    for name, dims, err, output in rows:
        print(f'{name:<20} {dims:<24} {err:>14.2e}  {output}')
    times = latency(part, sess, real, repeat=args.repeat)
    print(f'latency on the image ({threads} thread(s), median of '
          f'{args.repeat}, alternating runs): PyTorch eager '
          f'{times["torch"]:.1f} ms, onnxruntime '
          f'{times["onnxruntime"]:.1f} ms (PyTorch / onnxruntime, median '
          f'per run: {times["ratio"]:.2f})')
    bad = [r for r in rows if not r[2] <= TOLERANCE]
    if bad:
        name, dims, err, output = bad[0]
        raise ValueError(
            f'{args.out}: onnxruntime differs from PyTorch on the {name} '
            f'input ({dims}): max relative error {err:.2e} in {output}, '
            f'allowed {TOLERANCE:g}.')
    return dict(errors={r[0]: r[2] for r in rows},
                latency_ms={k: times[k] for k in ('torch', 'onnxruntime')},
                torch_over_onnxruntime=times['ratio'])


if __name__ == '__main__':
    run_tool(main)
