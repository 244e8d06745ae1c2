"""Checkpoint files are never left half-written nor silently read broken.

- mmengine writes checkpoints (and other local files) through
  ``LocalBackend.put`` / ``put_text``; msdet makes both write a temp file and
  rename it, so a run killed mid-write keeps the previous file intact.
- Local checkpoints are read by msdet's loader (registered for local paths in
  mmengine's ``CheckpointLoader``): a missing, truncated or corrupted file
  gives one error naming it instead of a deep torch error or a partial load.
- A checkpoint whose tensors do not fit the backbone is refused, naming the
  first mismatching key (mmengine only warns and skips it). Mismatches in a
  detector's heads still only warn: fine-tuning a COCO model on other
  classes relies on that.
"""
import os.path as osp

import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.model import is_model_wrapper
from mmengine.runner import checkpoint as mm_checkpoint
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


_load_state_dict = mm_checkpoint.load_state_dict


def _load_state_dict_checked(module, state_dict, strict=False, logger=None):
    target = module.module if is_model_wrapper(module) else module
    own = target.state_dict()
    scope = 'backbone.' if hasattr(target, 'backbone') else ''
    for key, value in state_dict.items():
        if key.startswith(scope) and key in own and \
                hasattr(value, 'shape') and value.shape != own[key].shape:
            raise ValueError(
                f'checkpoint tensor {key!r} has shape {tuple(value.shape)}, '
                f'the model expects {tuple(own[key].shape)}: the checkpoint '
                f'does not fit this {type(target).__name__} (first '
                'mismatching key).')
    return _load_state_dict(module, state_dict, strict, logger)


mm_checkpoint.load_state_dict = _load_state_dict_checked
