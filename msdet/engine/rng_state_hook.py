"""Random-number-generator states in checkpoints, for exact resume."""
import random
from contextlib import contextmanager

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS


def rng_state():
    """This process's Python, numpy and torch (CPU) generator states."""
    return dict(python=random.getstate(), numpy=np.random.get_state(),
                torch=torch.get_rng_state())


def set_rng_state(state):
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])


@contextmanager
def preserved_rng():
    """Run the block without moving the training's random streams: the
    generator states are restored afterwards (for work beside training, e.g.
    validation or BN recalibration, that would otherwise draw from them)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save every rank's RNG states with each checkpoint, restore them on
    resume, so that a resumed run continues exactly as the uninterrupted one:
    ``default_hooks = dict(rng_state=dict(type='RNGStateHook'))`` (or in
    ``custom_hooks``).

    mmengine re-seeds a resumed run from ``randomness.seed``, so random data
    augmentation (e.g. ``RandomFlip``, numpy's global RNG in the main process
    with ``num_workers=0``) and proposal sampling (torch's RNG) would continue
    differently. This hook

    - captures the Python, numpy and torch (CPU) generator states of every
      rank after each training iteration and epoch, once all other hooks of
      that point have run and before the checkpoint hook (priority ``LOW``);
      checkpoints store the list (one entry per rank) as ``rng_state``;
    - runs validation inside :func:`preserved_rng`, so validating (or not,
      as a resumed run does not repeat the validation before its first
      epoch) leaves the training's random streams as they were;
    - on resume, gives each rank its own saved states back just before
      training starts (after mmengine's re-seeding).

    With ``randomness=dict(seed=...)`` a run resumed from an epoch
    checkpoint, with the same number of processes, ends with the weights of
    the uninterrupted run, in one process and under DDP, given that the data
    workers restart as they did: ``num_workers=0``, or workers that are not
    persistent (mmengine seeds them alike every epoch). Not restored: CUDA
    generators (CUDA kernels are not bit-reproducible anyway), the state of
    persistent data workers, and states after a change in the number of
    processes (a log line says so). Resuming from an iteration checkpoint of
    an epoch-based run is refused by ``CheckpointFitHook``.
    """
    priority = 'LOW'  # after the NORMAL hooks, before CheckpointHook

    def __init__(self):
        self._states = None  # every rank's, at the last capture
        self._resumed = None
        self._val_state = None
        self._every_iter = True

    def _capture(self):
        # every rank runs these hook points, so a collective is safe here
        # (before_save_checkpoint runs on rank 0 only)
        own = rng_state()
        world = get_dist_info()[1]
        self._states = all_gather_object(own) if world > 1 else [own]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self._every_iter:
            self._capture()

    def after_train_epoch(self, runner):
        self._capture()

    def before_val(self, runner):
        self._val_state = rng_state()

    def after_val(self, runner):
        set_rng_state(self._val_state)

    def before_save_checkpoint(self, runner, checkpoint):
        if self._states is not None:
            checkpoint['rng_state'] = self._states

    def after_load_checkpoint(self, runner, checkpoint):
        states = checkpoint.get('rng_state')
        if states is None or not runner._resume:
            return
        if isinstance(states, dict):  # older checkpoints: rank 0's only
            states = [states]
        rank, world = get_dist_info()
        if len(states) != world:
            print_log(
                f'RNGStateHook: the checkpoint holds the RNG states of '
                f'{len(states)} process(es), this run has {world}: they are '
                'not restored, the resumed run draws other random numbers '
                'than the uninterrupted one.', logger='current')
            return
        self._resumed = states[rank]

    def before_train(self, runner):
        # states are needed after every iteration only if a checkpoint can
        # be written there (iteration-based checkpoints)
        self._every_iter = any(
            isinstance(h, CheckpointHook) and not h.by_epoch
            for h in runner.hooks)
        if self._resumed is not None:
            set_rng_state(self._resumed)
            self._states = None
            self._resumed = None
