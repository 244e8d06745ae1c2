"""The hook that trains several sub-networks per iteration (MutualNet 3.2)."""
from mmengine.dataset import DefaultSampler
from mmengine.dist import broadcast_object_list
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, TASK_UTILS
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

from msdet.ops.switchable import set_subnet, subnet_space

from .bn_calibration import recalibrate_bn
from .rng_state_hook import preserved_rng
from .samplers import iteration_rng


@HOOKS.register_module()
class SubnetSwitchHook(Hook):
    """Switch sub-network (width, input scale, ...) during training.

    Every iteration the sampler picks the sub-networks (for MutualNet the
    sandwich rule with random input scales, ``SandwichSampler``, fig. 2 and
    section 4.3) from seed + iteration, identical on every DDP rank and
    continued on resume. The training loop, msdet's
    ``SubnetEpochBasedTrainLoop`` or ``SubnetIterBasedTrainLoop``
    (``train_cfg.type``; any other loop is refused before training), trains
    them with :func:`multi_subnet_train_step`: the same mini-batch through
    every sub-network, gradients accumulated, one optimizer step. Per
    sub-network losses are logged as ``largest_loss``, ``smallest_loss``,
    ``random1_loss``, ... ; the iteration's sub-networks themselves are in
    the message hub, ``runner.message_hub.get_info('subnets')``: a list of
    ``dict(name, settings, scale)`` in training order.

    Between iterations the model is left at the sampler's default (largest)
    sub-network. As BN statistics are shared by all sub-networks, those of
    the default sub-network are recalibrated (post-statistics, section 3.1)
    on ``calib_images`` training images at the end of every training epoch
    (before the checkpoint is written) and before every validation, so
    validation numbers and epoch checkpoints hold valid full-width
    statistics. Iteration-based checkpoints are not recalibrated; call
    ``msdet.engine.recalibrate_bn`` before using them. Recalibration leaves
    the global random generators as it found them, so it does not change
    the training's random draws.

    The seed is the runner's (``randomness.seed``), taken from rank 0.
    With a fixed list of widths (switchable BN) some BN parameters are unused
    by each sub-network: set ``find_unused_parameters=True`` for DDP.

    Args:
        sampler (dict): sub-network sampler config, e.g.
            ``dict(type='SandwichSampler', width_range=(0.25, 1.0),
            scales=[(1000, 600), (1000, 480)], num_subnets=4,
            mode='mutualnet')``.
        calib_images (int): images for BN post-statistics; 0 disables.
            Default 2000 (section 3.1).
    """
    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) after an epoch

    def __init__(self, sampler, calib_images=2000):
        self.sampler = TASK_UTILS.build(sampler)
        if not (isinstance(calib_images, int) and calib_images >= 0):
            raise ValueError(f'SubnetSwitchHook: calib_images={calib_images!r}'
                             '; allowed: an int >= 0 (0 disables).')
        self.calib_images = calib_images
        self.seed = None
        self.subnets = None
        self._training = False
        self._calibrated = False
        self._calib_loader = None

    def before_train(self, runner):
        from .subnet_loops import SubnetTrainLoop
        loop = runner.train_loop
        if not isinstance(loop, SubnetTrainLoop):
            kind = ('Iter' if isinstance(loop, IterBasedTrainLoop)
                    else 'Epoch')
            raise ValueError(
                'SubnetSwitchHook: the sub-networks it samples are trained '
                f"by msdet's train loop; train_cfg.type is "
                f'{type(loop).__name__!r}, set '
                f"train_cfg.type='Subnet{kind}BasedTrainLoop' (same "
                'arguments as mmengine\'s loop).')
        ow = runner.optim_wrapper
        if not isinstance(ow, OptimWrapper) or \
                getattr(ow, '_accumulative_counts', 1) != 1:
            raise ValueError(
                'SubnetSwitchHook: needs one OptimWrapper without '
                'accumulative_counts (it accumulates gradients over the '
                'sub-networks of an iteration itself).')
        model = runner.model
        self.sampler.bind(subnet_space(model))
        set_subnet(model, **self.sampler.default().settings)
        seed = [runner.seed]
        broadcast_object_list(seed, src=0)
        self.seed = seed[0]
        self._training = True

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.subnets = self.sampler.sample(
            iteration_rng(self.seed, runner.iter), runner.iter, runner.epoch)
        runner.message_hub.update_info('subnets', [
            dict(name=s.name, settings=dict(s.settings), scale=s.scale)
            for s in self.subnets])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        set_subnet(runner.model, **self.sampler.default().settings)
        self._calibrated = False

    def after_train_epoch(self, runner):
        self._recalibrate(runner)

    def before_val(self, runner):
        if self._training:
            set_subnet(runner.model, **self.sampler.default().settings)
            self._recalibrate(runner)

    def after_train(self, runner):
        self._training = False

    def _recalibrate(self, runner):
        if self._calibrated or not self.calib_images:
            return
        default = self.sampler.default()
        with preserved_rng():
            used = recalibrate_bn(runner.model, self._loader(runner),
                                  self.calib_images, default.settings,
                                  default.scale)
        MMLogger.get_current_instance().info(
            f'SubnetSwitchHook: BN statistics of {default.settings} at '
            f'scale {default.scale} recalibrated on {used} images per rank.')
        self._calibrated = True

    def _loader(self, runner):
        """The training set, shuffled once with the seed, own workers."""
        if self._calib_loader is None:
            src = runner.train_dataloader
            batch_size = src.batch_size or src.batch_sampler.batch_size
            self._calib_loader = DataLoader(
                src.dataset, batch_size=batch_size,
                sampler=DefaultSampler(src.dataset, seed=self.seed),
                num_workers=src.num_workers, collate_fn=src.collate_fn)
        return self._calib_loader
