"""Interleaved timing: every candidate and its baseline alternate within each
round, so load drifts hit them alike; a ratio is the median over rounds of
``t_candidate / t_baseline`` measured in the same round."""
import ctypes
import os
import statistics
import time

import torch

#: glibc ``mallopt`` parameters and the steady-state values set by
#: ``steady_malloc``: never trim the heap, serve blocks up to 32 MiB (the
#: largest allowed) from it, grow it in 256 MiB steps.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
STEADY = {_M_TRIM_THRESHOLD: 2**31 - 1, _M_TOP_PAD: 2**28,
          _M_MMAP_THRESHOLD: 2**25}


def cpu_threads():
    """CPU cores this process may run on (benchmarks use one thread each)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def steady_malloc():
    """Keep freed CPU memory in glibc's heap, so that a tensor allocated
    again reuses mapped pages: by default glibc returns large blocks to the
    OS on free and every call page-faults its buffers afresh (about as long
    as a ResNet-50 stage-1 3x3 conv itself), which penalises layers with
    more temporaries. Returns whether it applied (glibc only)."""
    return set_malloc(STEADY)


#: glibc settings under which every block of 128 KiB or more is its own
#: mapping, unmapped on free: the resident set follows the live tensors
#: (``bench.memory`` measures peaks so, then restores ``STEADY``).
EXACT = {_M_TRIM_THRESHOLD: 2**17, _M_TOP_PAD: 0, _M_MMAP_THRESHOLD: 2**17}
_active = {}


def set_malloc(params):
    """Apply glibc ``mallopt`` settings; whether they applied (glibc)."""
    try:
        mallopt = ctypes.CDLL('libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    ok = all(mallopt(k, v) == 1 for k, v in params.items())
    if ok:
        _active.update(params)
    return ok


def active_malloc():
    """The ``mallopt`` settings this process applied (empty: glibc's)."""
    return dict(_active)


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
    return summarize({name: [round(1e3 * t, 7) for t in ts]
                      for name, ts in times.items()}, baseline)


def summarize(times_ms, baseline):
    """``{name: dict(ms=median, min_ms, ratio, times_ms)}`` of per-round
    times in ms (round ``i`` of every name measured together); ``ratio`` is
    the median per-round ratio to ``baseline``."""
    base = times_ms[baseline]
    return {
        name: dict(ms=statistics.median(ts), min_ms=min(ts),
                   ratio=statistics.median(t / b for t, b in zip(ts, base)),
                   times_ms=ts)
        for name, ts in times_ms.items()
    }
