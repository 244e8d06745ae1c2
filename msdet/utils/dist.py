"""Distributed training on CPU machines (torch DDP through mmengine).

mmengine 0.10.7 assumes CUDA when launched with ``--launcher pytorch``: it
calls ``torch.cuda.set_device``, keeps the configs' ``nccl`` backend and
gives DDP ``device_ids``. On a machine without CUDA msdet instead uses the
gloo backend, wraps the CPU model without device ids and reverts SyncBN
(CUDA-only) to plain BN, with a log line saying so. With CUDA nothing
changes.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.dist import utils as dist_utils
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.model.utils import revert_sync_batchnorm

_init_dist_pytorch = dist_utils._init_dist_pytorch
_ddp_init = MMDistributedDataParallel.__init__


def _init_dist_pytorch_cpu(backend, init_backend='torch', **kwargs):
    if torch.cuda.is_available():
        return _init_dist_pytorch(backend, init_backend, **kwargs)
    if backend == 'nccl':
        print_log('no CUDA: distributed backend nccl -> gloo',
                  logger='current')
        backend = 'gloo'
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


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


dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu
MMDistributedDataParallel.__init__ = _ddp_init_cpu
