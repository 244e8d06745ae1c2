"""Interleaved timing: every candidate and its baseline alternate within each
round, so load drifts hit them alike; a ratio is the median over rounds of
``t_candidate / t_baseline`` measured in the same round."""
import os
import statistics
import time

import torch


def cpu_threads():
    """CPU cores this process may run on (benchmarks use one thread each)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def measure(fns, baseline, reps, warmup=1, device='cpu'):
    """Time ``fns`` (name -> zero-argument callable) interleaved.

    Each round calls every function once, starting from a rotating offset;
    CUDA work is synchronised before and after each call. Returns
    ``{name: dict(ms=median, min_ms, ratio, times_ms)}`` where ``ratio`` is
    the median per-round ratio to ``fns[baseline]``.
    """
    names = list(fns)
    if baseline not in fns:
        raise KeyError(f'baseline {baseline!r} is not among {names}')
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    base = times[baseline]
    return {
        name: dict(
            ms=1e3 * statistics.median(ts),
            min_ms=1e3 * min(ts),
            ratio=statistics.median(t / b for t, b in zip(ts, base)),
            times_ms=[round(1e3 * t, 4) for t in ts])
        for name, ts in times.items()
    }
