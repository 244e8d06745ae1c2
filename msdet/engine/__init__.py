"""Training and calibration of switchable models (MutualNet 3.1-3.2)."""
from .bn_calibration import recalibrate_bn
from .fair_sampler import FairSpatialSampler
from .rescale import rescale_batch
from .rng_state_hook import RNGStateHook
from .samplers import SandwichSampler, Subnet, iteration_rng
from .subnet_hook import SubnetSwitchHook
from .train_step import multi_subnet_train_step

__all__ = [
    'recalibrate_bn', 'rescale_batch', 'FairSpatialSampler', 'RNGStateHook',
    'SandwichSampler', 'Subnet', 'iteration_rng', 'SubnetSwitchHook',
    'multi_subnet_train_step'
]
