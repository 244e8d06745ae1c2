"""Write the benchmark table into model_zoo.md between the markers
``<!-- bench:start -->`` and ``<!-- bench:end -->`` (nothing else changes).

    python -m bench.model_zoo work_dirs/bench/bench_cpu.json \\
        [work_dirs/bench/bench_cuda.json] [--model-zoo model_zoo.md]
"""
import argparse
import json
import os.path as osp

from msdet.utils.fileio import atomic_open

from .report import zoo_markdown

START, END = '<!-- bench:start -->', '<!-- bench:end -->'
DEFAULT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                   'model_zoo.md')


def update(path, cpu, gpu=None):
    """Replace the text between the markers of ``path`` with the table of
    the CPU run ``cpu`` (and GPU run ``gpu``); atomic."""
    write_between(path, START, END, zoo_markdown(cpu, gpu))


def write_between(path, start, end, body):
    """Replace the text between the lines ``start`` and ``end`` of ``path``
    (exactly one of each, in that order) with ``body``; atomic."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if text.count(start) != 1 or text.count(end) != 1 or \
            text.index(start) > text.index(end):
        raise ValueError(f'{path}: needs exactly one {start} followed by one '
                         f'{end} line to write the benchmark table between.')
    head, rest = text.split(start)
    tail = rest.split(end)[1]
    with atomic_open(path, encoding='utf-8') as f:
        f.write(head + start + '\n' + body + end + tail)


def load_runs(paths):
    """(cpu, gpu) results among the JSON files ``paths``."""
    runs = {}
    for p in paths:
        with open(p, encoding='utf-8') as f:
            results = json.load(f)
        kind = 'gpu' if results['machine']['device'].startswith('cuda') \
            else 'cpu'
        runs[kind] = results
    if 'cpu' not in runs:
        raise ValueError('model_zoo.md shows the CPU run first: give a CPU '
                         f'results file (got {list(paths)}).')
    return runs['cpu'], runs.get('gpu')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results', nargs='+',
                        help='JSON files written by bench.run')
    parser.add_argument('--model-zoo', default=DEFAULT)
    args = parser.parse_args(argv)
    update(args.model_zoo, *load_runs(args.results))
    print(f'updated {args.model_zoo}')


if __name__ == '__main__':
    main()
