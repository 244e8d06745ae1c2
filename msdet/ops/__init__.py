from .feature_resize import feature_resize
from .psconv import PSConv2d
from .scale_aggregation import ScaleAggregation
from .switchable import (Range, SlimmableBatchNorm2d, SlimmableConv2d,
                         Switchable, SwitchableBatchNorm2d, active_channels,
                         make_divisible, set_subnet, subnet_space,
                         unwrap_model)

__all__ = [
    'feature_resize', 'PSConv2d', 'ScaleAggregation', 'Range',
    'SlimmableBatchNorm2d', 'SlimmableConv2d', 'Switchable',
    'SwitchableBatchNorm2d', 'active_channels', 'make_divisible',
    'set_subnet', 'subnet_space', 'unwrap_model'
]
