"""Random-number-generator state in checkpoints, for exact resume."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the RNG states with every checkpoint and restore them on resume.

    mmengine re-seeds a resumed run from ``randomness.seed``, so random data
    augmentation (e.g. ``RandomFlip``, numpy's global RNG with
    ``num_workers=0``) and proposal sampling (torch's RNG) continue
    differently than in the uninterrupted run. With this hook (and
    ``randomness=dict(seed=..., deterministic=True)``) a resumed CPU run
    reproduces the uninterrupted run's weights exactly. The states are the
    saving rank's (rank 0); under DDP other ranks resume from the seed.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = dict(
            python=random.getstate(), numpy=np.random.get_state(),
            torch=torch.get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint):
        state = checkpoint.get('rng_state')
        if state is None or not runner._resume:
            return
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
