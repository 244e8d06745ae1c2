"""Distributed training on machines without CUDA (torch DDP through
mmengine's own settings).

mmengine 0.10's launchers (``--launcher pytorch``, ``slurm``, ``mpi``) call
``torch.cuda.set_device`` and its default DDP wrapper passes CUDA device
ids, so neither runs on a CPU machine. msdet leaves both as they are and
adds:

- :func:`init_distributed`, which msdet's tools call before building the
  runner (the runner then keeps the process group): with a CUDA (or NPU /
  MLU / MUSA) device it is mmengine's ``init_dist`` with
  ``env_cfg.dist_cfg``; without one it reads the same environment
  mmengine's launchers read (torchrun's ``RANK`` / ``WORLD_SIZE`` /
  ``LOCAL_RANK`` / ``MASTER_*``; Slurm's ``SLURM_PROCID`` /
  ``SLURM_NTASKS`` / ``SLURM_LOCALID`` and the first node of
  ``SLURM_NODELIST`` from ``scontrol``, port ``MASTER_PORT`` or 29500;
  Open MPI's ``OMPI_COMM_WORLD_*``) and starts the process group with
  ``env_cfg.dist_cfg``'s arguments, gloo for nccl (with a log line);
- :class:`CPUCompatibleDDP`, a DDP wrapper for ``model_wrapper_cfg``
  (registered in mmengine's ``MODEL_WRAPPERS``) that gives DDP no device
  ids when the model is on the CPU and runs SyncBN layers as plain BN
  there (SyncBN is CUDA-only), with a log line.

Settings that cannot run without CUDA at all are refused before the run by
:func:`check_cuda_only_settings`.
"""
import datetime
import os
import subprocess

import torch
import torch.multiprocessing as mp
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.dist import init_dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

LAUNCHERS = ('pytorch', 'slurm', 'mpi')


def _cpu_env(launcher, port=None):
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_*`` from
    what ``launcher`` provides, as mmengine's launchers do."""
    env = os.environ
    if launcher == 'slurm':
        nodes = env['SLURM_NODELIST']
        env.setdefault('MASTER_ADDR', subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1'))
        if port is not None:
            env['MASTER_PORT'] = str(port)
        env.setdefault('MASTER_PORT', '29500')
        env['RANK'] = env['SLURM_PROCID']
        env['WORLD_SIZE'] = env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    elif launcher == 'mpi':
        if 'MASTER_ADDR' not in env:
            raise KeyError('--launcher mpi: set the environment variable '
                           'MASTER_ADDR (the address of rank 0).')
        env.setdefault('MASTER_PORT', '29500')
        env['RANK'] = env['OMPI_COMM_WORLD_RANK']
        env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
        env['LOCAL_RANK'] = env['OMPI_COMM_WORLD_LOCAL_RANK']


def init_distributed(launcher, env_cfg=None):
    """Start the process group for ``launcher`` ('none' does nothing) with
    ``env_cfg['dist_cfg']`` (see the module docstring)."""
    if launcher == 'none' or torch.distributed.is_initialized():
        return
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r}; allowed: none, '
                         f'{", ".join(LAUNCHERS)}.')
    dist_cfg = dict((env_cfg or {}).get('dist_cfg') or {})
    if not _cpu_only():
        init_dist(launcher, **dist_cfg)
        return
    backend = dist_cfg.pop('backend', 'nccl')
    if backend == 'nccl':
        print_log('no CUDA: distributed backend nccl -> gloo',
                  logger='current')
        backend = 'gloo'
    if dist_cfg.pop('init_backend', 'torch') != 'torch':
        raise ValueError("env_cfg.dist_cfg.init_backend: only 'torch' runs "
                         'without CUDA.')
    _cpu_env(launcher, dist_cfg.pop('port', None))
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')  # as mmengine's init_dist
    torch.distributed.init_process_group(backend=backend, **dist_cfg)


@MODEL_WRAPPERS.register_module()
class CPUCompatibleDDP(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` that also runs on the CPU:
    ``model_wrapper_cfg = dict(type='CPUCompatibleDDP')``.

    On a model whose parameters are on the CPU, the ``device_ids`` /
    ``output_device`` the runner passes are dropped (DDP refuses them for
    CPU modules) and SyncBN layers become plain BN (per-process statistics),
    with a log line; on a GPU it is ``MMDistributedDataParallel`` unchanged.
    ``broadcast_buffers`` defaults to False, as in mmengine's runner when
    no ``model_wrapper_cfg`` is given; ``find_unused_parameters`` (default
    False) and other DDP arguments are given here, not at the config's top
    level.
    """

    def __init__(self, module, broadcast_buffers=False, **kwargs):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
            if any(isinstance(m, torch.nn.SyncBatchNorm)
                   or 'SyncBatchNorm' in type(m).__name__
                   for m in module.modules()):
                print_log('no CUDA: SyncBN layers run as plain BN',
                          logger='current')
                module = revert_sync_batchnorm(module)
        super().__init__(module=module, broadcast_buffers=broadcast_buffers,
                         **kwargs)


def check_wrapper_settings(cfg):
    """mmengine reads the config's top-level ``find_unused_parameters`` only
    when there is no ``model_wrapper_cfg``; with one (msdet's configs name
    :class:`CPUCompatibleDDP`) a top-level ``True`` would be silently
    ignored and DDP would fail on the first unused parameter: one
    ``ValueError`` saying where it goes."""
    wrapper = cfg.get('model_wrapper_cfg')
    if cfg.get('find_unused_parameters') and wrapper is not None and \
            'find_unused_parameters' not in wrapper:
        raise ValueError(
            'find_unused_parameters=True at the top level of the config is '
            'ignored by mmengine when model_wrapper_cfg is set; write '
            f"model_wrapper_cfg=dict(type={wrapper.get('type')!r}, "
            'find_unused_parameters=True) instead.')


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
      distributed run) with a launcher: remove it;
    - with a launcher, a ``model_wrapper_cfg`` that is missing (mmengine's
      default DDP wrapper) or names a DDP wrapper other than
      :class:`CPUCompatibleDDP`: use ``dict(type='CPUCompatibleDDP')``.

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
    if launcher == 'none':
        return
    wrapper = (cfg.get('model_wrapper_cfg') or {}).get('type')
    wrapper_cls = MODEL_WRAPPERS.get(wrapper) if wrapper else None
    if wrapper is None or (
            isinstance(wrapper_cls, type)
            and issubclass(wrapper_cls, DistributedDataParallel)
            and not issubclass(wrapper_cls, CPUCompatibleDDP)):
        what = (f'the DDP wrapper {wrapper!r}' if wrapper else
                "mmengine's default DDP wrapper")
        raise ValueError(
            f'model_wrapper_cfg={cfg.get("model_wrapper_cfg")!r} with '
            f'launcher={launcher!r}: {what} needs CUDA device ids and this '
            "machine has no CUDA; on CPU set model_wrapper_cfg=dict("
            "type='CPUCompatibleDDP') (with find_unused_parameters=True "
            'there if the model needs it).')
    if cfg.get('sync_bn') is not None:
        raise ValueError(
            f"sync_bn={cfg.sync_bn!r} with launcher={launcher!r}: SyncBN "
            'needs CUDA and this machine has none; on CPU remove sync_bn '
            '(each process then keeps its own BN statistics; SyncBN layers '
            'from norm_cfg run as plain BN).')
