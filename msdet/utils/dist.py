"""Distributed training on CPU machines (torch DDP through mmengine).

mmengine 0.10.7 assumes CUDA for every launcher (``--launcher pytorch``,
``slurm`` and ``mpi``): it calls ``torch.cuda.set_device``, keeps the
configs' ``nccl`` backend and gives DDP ``device_ids``. On a machine without
CUDA msdet instead uses the gloo backend, skips ``set_device`` (the rest of
mmengine's launcher setup, e.g. Slurm's ``RANK`` / ``WORLD_SIZE`` /
``MASTER_ADDR`` from ``SLURM_*`` and ``scontrol``, is unchanged), wraps the
CPU model without device ids and reverts SyncBN (CUDA-only) to plain BN,
with a log line saying so. With CUDA nothing changes.

Settings that cannot run without CUDA at all are refused before the run by
:func:`check_cuda_only_settings`.
"""
import functools
from contextlib import contextmanager

import torch
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.dist import utils as dist_utils
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.model.utils import revert_sync_batchnorm

_ddp_init = MMDistributedDataParallel.__init__


@contextmanager
def _without_set_device():
    """``torch.cuda.set_device`` as a no-op (it fails without CUDA)."""
    set_device = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = set_device


def _cpu_fallback(init_dist):
    """mmengine's ``init_dist`` for one launcher, made to work without CUDA:
    gloo for nccl, no ``torch.cuda.set_device``."""

    @functools.wraps(init_dist)
    def init(backend, *args, **kwargs):
        if torch.cuda.is_available():
            return init_dist(backend, *args, **kwargs)
        if backend == 'nccl':
            print_log('no CUDA: distributed backend nccl -> gloo',
                      logger='current')
            backend = 'gloo'
        with _without_set_device():
            return init_dist(backend, *args, **kwargs)

    return init


def _ddp_init_cpu(self, module, detect_anomalous_params=False, **kwargs):
    if not torch.cuda.is_available():
        kwargs.pop('device_ids', None)
        kwargs.pop('output_device', None)
        if any('SyncBatchNorm' in type(m).__name__
               for m in module.modules()):
            print_log('no CUDA: SyncBN layers run as plain BN',
                      logger='current')
            module = revert_sync_batchnorm(module)
    _ddp_init(self, module, detect_anomalous_params, **kwargs)


for _name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
    setattr(dist_utils, _name, _cpu_fallback(getattr(dist_utils, _name)))
MMDistributedDataParallel.__init__ = _ddp_init_cpu

#: optim_wrapper types that need an accelerator (mmengine asserts one).
AMP_WRAPPERS = ('AmpOptimWrapper', 'ApexOptimWrapper')


def _cpu_only():
    """No CUDA, NPU, MLU or MUSA device (those mmengine runs AMP on)."""
    return not (is_cuda_available() or is_npu_available()
                or is_mlu_available() or is_musa_available())


def _type_name(type_):
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', '')
    return name.split('.')[-1]


def check_cuda_only_settings(cfg):
    """On a CPU-only machine, refuse config settings that need CUDA before
    anything is built: one ``ValueError`` naming the config key, its value
    and what to use instead.

    - ``optim_wrapper.type`` ``AmpOptimWrapper`` / ``ApexOptimWrapper``
      (mixed precision, e.g. ``tools/train.py --amp``; any ``dtype``): use
      ``'OptimWrapper'``;
    - ``sync_bn`` (mmengine's switch that converts every BN to SyncBN in a
      distributed run) with a launcher: remove it.

    Not refused, as they run on CPU: the distributed backend ``nccl``
    (``env_cfg.dist_cfg.backend``, mmdet's default; gloo is used instead),
    SyncBN layers from a config's ``norm_cfg`` (they run as plain BN, per
    process statistics, with a log line), ``sync_bn`` without a launcher
    (mmengine ignores it), ``collect_device='gpu'`` (gathers with gloo).
    """
    if not _cpu_only():
        return
    wrappers = cfg.get('optim_wrapper') or {}
    if 'type' in wrappers or 'optimizer' in wrappers:
        wrappers = {None: wrappers}  # else one wrapper per name (mmengine)
    for name, wrapper in wrappers.items():
        type_ = _type_name(wrapper.get('type', 'OptimWrapper')
                           if isinstance(wrapper, dict) else None)
        if type_ in AMP_WRAPPERS:
            key = 'optim_wrapper' + (f'.{name}' if name else '') + '.type'
            raise ValueError(
                f'{key}={type_!r}: mixed precision needs a CUDA (or NPU / '
                'MLU / MUSA) device and this machine has none; on CPU use '
                f"{key}='OptimWrapper' (without --amp).")
    launcher = cfg.get('launcher', 'none')
    if cfg.get('sync_bn') is not None and launcher != 'none':
        raise ValueError(
            f"sync_bn={cfg.sync_bn!r} with launcher={launcher!r}: SyncBN "
            'needs CUDA and this machine has none; on CPU remove sync_bn '
            '(each process then keeps its own BN statistics; SyncBN layers '
            'from norm_cfg run as plain BN).')
