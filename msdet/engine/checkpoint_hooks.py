"""Checkpoints written atomically, and refused when they do not fit."""
import glob
import hashlib
import os.path as osp
import pickle
import re

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop, EpochBasedTrainLoop
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        find_latest_checkpoint,
                                        save_checkpoint)

from msdet.utils.fileio import atomic_open, remove_stale_parts

ATOMIC = dict(backend='atomic_local')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) that never leaves a
    half-written file: ``default_hooks = dict(checkpoint=dict(
    type='AtomicCheckpointHook'))``.

    Every checkpoint (regular, best and published) and ``last_checkpoint``
    are written to a temp file beside them and renamed (msdet's
    ``'atomic_local'`` file backend, :mod:`msdet.utils.fileio`): a run killed
    mid-write keeps the previous files intact, and ``--resume`` finds a
    complete ``last_checkpoint``. The temp files a killed write leaves
    (``.<name>.<random>.part``) are removed from the checkpoint directory and
    the work dir when the next run starts. Files get the permissions of a
    plain write (the umask's), not 0600.

    With ``backend_args`` given (e.g. a remote store) or a remote
    ``out_dir``, writes go through that backend, as in mmengine (not
    atomic). ``file_client_args`` (deprecated by mmengine) is refused: use
    ``backend_args``.
    """

    def __init__(self, *args, backend_args=None, file_client_args=None,
                 out_dir=None, **kwargs):
        if file_client_args is not None:
            raise ValueError(
                f'AtomicCheckpointHook: file_client_args={file_client_args!r}'
                ' is not supported (deprecated by mmengine); use '
                'backend_args, or leave both unset for atomic local files.')
        self._atomic = backend_args is None and (
            out_dir is None or '://' not in str(out_dir))
        super().__init__(*args, out_dir=out_dir,
                         backend_args=ATOMIC if self._atomic else backend_args,
                         **kwargs)

    def before_train(self, runner):
        super().before_train(runner)
        if self._atomic and is_main_process():
            for directory in {self.out_dir, runner.work_dir}:
                stale = remove_stale_parts(directory)
                if stale:
                    print_log(
                        f'AtomicCheckpointHook: removed {len(stale)} '
                        f'unfinished file(s) of a killed run from '
                        f'{directory}: {", ".join(stale)}', logger='current')

    def _save_checkpoint_with_step(self, runner, step, meta):
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                self._remove_checkpoint(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if is_main_process():
            with atomic_open(osp.join(runner.work_dir,
                                      'last_checkpoint')) as f:
                f.write(self.last_ckpt)

    def _remove_checkpoint(self, step):
        if not is_main_process():
            return
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed's checkpoints
            self.file_backend.rmtree(path)

    def _publish_model(self, runner, ckpt_path):
        if not is_main_process():
            return
        checkpoint = _load_checkpoint(ckpt_path)
        removed = [k for k in checkpoint if k not in self.published_keys]
        for key in removed:
            checkpoint.pop(key)
        if removed:
            print_log(f'Keys {removed} are not in published_keys and are '
                      'left out of the published checkpoint.',
                      logger='current')
        sha = hashlib.sha256(pickle.dumps(checkpoint)).hexdigest()
        path = osp.splitext(ckpt_path)[0] + f'-{sha[:8]}.pth'
        save_checkpoint(checkpoint, path, backend_args=self.backend_args)
        print_log(f'The checkpoint ({ckpt_path}) is published to {path}.',
                  logger='current')


def _heads(names):
    return {n for n in names if 'head' in n}


def _fit_report(own, state):
    """(matching, missing, mis-shaped) keys of ``own`` against ``state``."""
    missing, shaped = [], []
    for key, value in own.items():
        if key not in state:
            missing.append(key)
        elif tuple(getattr(state[key], 'shape', ())) != tuple(value.shape):
            shaped.append(key)
    return len(own) - len(missing) - len(shaped), missing, shaped


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse, before training or testing starts, a checkpoint that does not
    fit: one ``ValueError`` instead of mmengine's warnings and a run that
    trains from random weights or tests at AP 0:
    ``default_hooks = dict(checkpoint_fit=dict(type='CheckpointFitHook'))``
    (or in ``custom_hooks``).

    Checked when the runner loads a checkpoint (``load_from``, ``resume``,
    ``tools/test.py CHECKPOINT``), against the model's ``state_dict``:

    - every tensor must be in the checkpoint with the model's shape, except,
      when a training run starts from ``load_from`` (fine-tuning), the
      tensors of the heads (top-level modules whose name contains ``head``:
      ``rpn_head``, ``roi_head``, ``decode_head``, ...), which may differ,
      e.g. in their number of classes; mmengine warns about those;
    - resuming an epoch-based run (``EpochBasedTrainLoop`` or a subclass)
      from a checkpoint written in the middle of an epoch (an iteration
      checkpoint) is refused: mmengine would replay the whole epoch and
      overrun the schedule. The message names the epoch checkpoint to
      resume from.

    The message counts the matching tensors, names missing and mis-shaped
    ones and the likely cause (a backbone-only checkpoint given as
    ``load_from``, another architecture or config).
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint):
        source = runner.cfg.get('load_from') or \
            find_latest_checkpoint(runner.work_dir)
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        training = isinstance(runner._train_loop, BaseLoop)
        self._check_tensors(model, checkpoint, source,
                            heads_may_differ=training and not runner._resume)
        if runner._resume and isinstance(runner._train_loop,
                                         EpochBasedTrainLoop):
            self._check_epoch_boundary(checkpoint, source)

    @staticmethod
    def _check_tensors(model, checkpoint, source, heads_may_differ):
        state = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state, dict):
            raise ValueError(f'checkpoint {source!r} holds no state_dict.')
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
        own = model.state_dict()
        if heads_may_differ:
            heads = _heads(name for name, _ in model.named_children())
            own = {k: v for k, v in own.items()
                   if k.split('.', 1)[0] not in heads}
        matched, missing, shaped = _fit_report(own, state)
        if not missing and not shaped:
            return
        parts = [f'checkpoint {source!r} does not fit this '
                 f'{type(model).__name__}: {matched} of {len(own)} '
                 f'{"non-head " if heads_may_differ else ""}tensors match']
        if missing:
            parts.append(f'{len(missing)} are not in the checkpoint (e.g. '
                         f'{missing[0]!r})')
        if shaped:
            key = shaped[0]
            parts.append(
                f'{len(shaped)} have other shapes (e.g. {key!r}: '
                f'{tuple(state[key].shape)} in the checkpoint, '
                f'{tuple(own[key].shape)} in the model)')
        prefixed = {f'backbone.{k}' for k in state}
        if any(k.startswith('backbone.') for k in own) and \
                any(k in prefixed for k in own):
            cause = ('Its keys lack the "backbone." prefix: it is a backbone '
                     'checkpoint; give it as model.backbone.init_cfg='
                     "dict(type='Pretrained', checkpoint=...) instead")
        else:
            cause = ('It was likely written for another architecture or '
                     'config; check the config and the checkpoint path')
        raise ValueError('; '.join(parts) + f'. {cause}.')

    @staticmethod
    def _check_epoch_boundary(checkpoint, source):
        meta = checkpoint.get('meta', {})
        info = checkpoint.get('message_hub', {}).get('runtime_info', {})
        if not {'epoch', 'iter'} <= set(meta) or \
                not info.get('max_epochs') or not info.get('max_iters'):
            return
        per_epoch = info['max_iters'] // info['max_epochs']
        epoch, it = meta['epoch'], meta['iter']
        if it == epoch * per_epoch:
            return
        directory = osp.dirname(str(source))
        done = sorted(
            (int(m.group(1)), p) for p in glob.glob(
                osp.join(directory, 'epoch_*.pth'))
            if (m := re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(p)))
            and int(m.group(1)) <= epoch)
        hint = (f'resume from {done[-1][1]!r} (the end of epoch '
                f'{done[-1][0]})' if done else
                'no epoch checkpoint is there to resume from: start the run '
                'again, or save epoch checkpoints '
                '(default_hooks.checkpoint.by_epoch=True)')
        raise ValueError(
            f'checkpoint {source!r} was written at iteration {it}, in the '
            f'middle of epoch {epoch + 1} ({per_epoch} iterations per '
            'epoch); an epoch-based run resumes only from the end of an '
            f'epoch: {hint}.')
