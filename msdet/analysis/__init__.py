from .scale_policy import (ScalePolicyRecorder, compute_scale_policy,
                           elastic_blocks, save_scale_policy)

__all__ = ['ScalePolicyRecorder', 'compute_scale_policy', 'elastic_blocks',
           'save_scale_policy']
