"""Checkpoint files are never left half-written nor silently read broken.

- mmengine writes checkpoints (and other local files) through
  ``LocalBackend.put`` / ``put_text``; msdet makes both write a temp file and
  rename it, so a run killed mid-write keeps the previous file intact.
- Local checkpoints are read by msdet's loader (registered for local paths in
  mmengine's ``CheckpointLoader``): a missing, truncated or corrupted file
  gives one error naming it instead of a deep torch error or a partial load.
"""
import os.path as osp

import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.runner.checkpoint import CheckpointLoader

from .fileio import atomic_open


def _atomic_put(self, obj, filepath):
    with atomic_open(filepath, 'wb') as f:
        f.write(obj)


def _atomic_put_text(self, obj, filepath, encoding='utf-8'):
    with atomic_open(filepath, 'w', encoding=encoding) as f:
        f.write(obj)


LocalBackend.put = _atomic_put
LocalBackend.put_text = _atomic_put_text


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename, map_location=None):
    """``torch.load`` a local checkpoint with clear errors."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} not found.')
    try:
        return torch.load(filename, map_location=map_location)
    except Exception as err:
        if 'Unsupported global' in str(err):
            raise  # a type weights_only refuses: torch's message names it
        raise RuntimeError(
            f'checkpoint {filename!r} cannot be read: it is truncated, '
            'corrupted or not a PyTorch checkpoint '
            f'({type(err).__name__}).') from err
