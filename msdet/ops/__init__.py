from .psconv import PSConv2d

__all__ = ['PSConv2d']
from .switchable import (Range, SlimmableBatchNorm2d,  # noqa: E402
                         SlimmableConv2d, SlimmableLinear, Switchable,
                         SwitchableBatchNorm2d, active_channels,
                         make_divisible, set_subnet, subnet_space,
                         unwrap_model)
__all__ += ['Range', 'SlimmableBatchNorm2d', 'SlimmableConv2d',
            'SlimmableLinear', 'Switchable', 'SwitchableBatchNorm2d',
            'active_channels', 'make_divisible', 'set_subnet',
            'subnet_space', 'unwrap_model']
