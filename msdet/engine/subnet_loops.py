"""Training loops that train several sub-networks per iteration
(MutualNet 3.2; Resizable networks' fair sampling)."""
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from .subnet_hook import SubnetSwitchHook
from .train_step import multi_subnet_train_step


class SubnetTrainLoop:
    """What both loops add to mmengine's: each iteration runs
    :func:`multi_subnet_train_step` over the sub-networks the
    ``SubnetSwitchHook`` (in ``custom_hooks``) sampled for it in
    ``before_train_iter``, instead of the model's ``train_step``."""

    def run(self):
        hooks = [h for h in self.runner.hooks
                 if isinstance(h, SubnetSwitchHook)]
        if len(hooks) != 1:
            raise ValueError(
                f'{type(self).__name__}: trains the sub-networks a '
                "SubnetSwitchHook samples; custom_hooks has "
                f'{len(hooks)} SubnetSwitchHook(s), needs exactly one (or '
                "use train_cfg.type='EpochBasedTrainLoop' / "
                "'IterBasedTrainLoop' to train the model as it is).")
        self._switch = hooks[0]
        return super().run()

    def _train_step(self, data_batch):
        return multi_subnet_train_step(self.runner.model, data_batch,
                                       self.runner.optim_wrapper,
                                       self._switch.subnets)


@LOOPS.register_module()
class SubnetEpochBasedTrainLoop(SubnetTrainLoop, EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` (same arguments) training the
    sub-networks of ``SubnetSwitchHook`` every iteration."""

    def run_iter(self, idx, data_batch):
        self.runner.call_hook('before_train_iter', batch_idx=idx,
                              data_batch=data_batch)
        outputs = self._train_step(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=outputs)
        self._iter += 1


@LOOPS.register_module()
class SubnetIterBasedTrainLoop(SubnetTrainLoop, IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` (same arguments) training the
    sub-networks of ``SubnetSwitchHook`` every iteration."""

    def run_iter(self, data_batch):
        self.runner.call_hook('before_train_iter', batch_idx=self._iter,
                              data_batch=data_batch)
        outputs = self._train_step(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=self._iter,
                              data_batch=data_batch, outputs=outputs)
        self._iter += 1
