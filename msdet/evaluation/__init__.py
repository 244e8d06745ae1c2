from .scale_loop import ScaleSweepTestLoop
from .scale_metric import ScaleAwareCocoMetric

__all__ = ['ScaleSweepTestLoop', 'ScaleAwareCocoMetric']
