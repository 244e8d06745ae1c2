"""Training components: sub-network switching (MutualNet 3.1-3.2), exact
resume, atomic checkpoints."""
from .bn_calibration import recalibrate_bn
from .checkpoint_hooks import AtomicCheckpointHook, CheckpointFitHook
from .fair_sampler import FairSpatialSampler
from .rescale import rescale_batch
from .rng_state_hook import RNGStateHook
from .samplers import SandwichSampler, Subnet, iteration_rng
from .subnet_hook import SubnetSwitchHook
from .subnet_loops import SubnetEpochBasedTrainLoop, SubnetIterBasedTrainLoop
from .train_step import multi_subnet_train_step

__all__ = [
    'recalibrate_bn', 'rescale_batch', 'AtomicCheckpointHook',
    'CheckpointFitHook', 'FairSpatialSampler', 'RNGStateHook',
    'SandwichSampler', 'Subnet', 'iteration_rng', 'SubnetSwitchHook',
    'SubnetEpochBasedTrainLoop', 'SubnetIterBasedTrainLoop',
    'multi_subnet_train_step'
]
