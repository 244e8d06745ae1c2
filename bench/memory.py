"""Peak memory of one call: CUDA allocator peak on a GPU; on CPU the growth
of the process's peak resident set (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``) over the resident set before the call, after
freed heap memory was handed back (glibc ``malloc_trim``). Where the
process changed glibc's settings (``timing.steady_malloc``), every large
block is its own mapping during the call (``timing.EXACT``), so that the
peak is that of the live tensors, not of the heap's history."""
import ctypes
import gc

import torch

from .timing import EXACT, active_malloc, set_malloc


def _status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def _trim():
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def cpu_peak_supported():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        _status_kib('VmHWM')
    except OSError:
        return False
    return True


def peak_mib(fn, device='cpu'):
    """Run ``fn()``; return its peak extra memory in MiB (``None`` where it
    cannot be measured: a CPU without ``/proc`` peak tracking)."""
    gc.collect()
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if not cpu_peak_supported():
        fn()
        return None
    restore = active_malloc()
    # Under glibc's defaults nothing changes: their dynamic mmap threshold
    # could not be put back afterwards.
    if restore:
        set_malloc(EXACT)
    try:
        _trim()
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = _status_kib('VmRSS')
        fn()
        return (_status_kib('VmHWM') - before) / 1024
    finally:
        set_malloc(restore)
