"""The best setting under a FLOPs or latency budget, from a saved result file
of tools/analysis/scale_benchmark.py (MutualNet's query table,
Resizable-NAS's lookup table).

    python tools/analysis/query_budget.py results.json --max-gflops 40 \
        [--max-latency-ms 200] [--metric bbox_AP] [--model NAME]
"""
import argparse

from msdet.evaluation.scale_report import load_results, query_best  # noqa
from msdet.utils.cli import run_tool


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results')
    p.add_argument('--max-gflops', type=float)
    p.add_argument('--max-latency-ms', type=float)
    p.add_argument('--metric', default='bbox_AP')
    p.add_argument('--model')
    args = p.parse_args(argv)
    best = query_best(load_results(args.results), args.max_gflops,
                      args.max_latency_ms, args.metric, args.model)
    print(f"best: model={best['model']} sub-network="
          f"{best.get('subnet') or 'full'} "
          f"short_side={best['short_side']} {args.metric}="
          f"{100 * best[args.metric]:.1f} GFLOPs={best['gflops_model']} "
          f"latency_ms={best['latency_ms']:.1f}")
    return best


if __name__ == '__main__':
    run_tool(main)
